"""Strategies: a spec's search section -> (param_space, searcher, scheduler).

"What to try" (a Tune searcher, ``search.strategy``) and "when to stop" (a Tune
scheduler, ``search.scheduler``) are kept apart, as Ray Tune does, and any pair
may be combined. One module per strategy, exposing ``build(spec, space) ->
search_alg``, and one per scheduler, exposing ``build(spec) -> scheduler``,
imported lazily from :data:`STRATEGIES` and :data:`SCHEDULERS` (Ray Tune's
``search/__init__.py`` does the same). A strategy applies
``search.max_concurrent_trials`` to its searcher itself: Tune ignores the
TuneConfig setting for variant generators.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._space import param_space, to_tune_domain

if TYPE_CHECKING:
    from tune_service.spec import SweepSpec

STRATEGIES = {
    "grid": "search_spaces.grid",
    "random": "search_spaces.random",
    "bayesian": "search_spaces.bayesian",
}
SCHEDULERS = {
    "fifo": None,  # Tune's default: every trial runs to the end
    "asha": "search_spaces.asha",
    "median": "search_spaces.median",
}

__all__ = ["SCHEDULERS", "STRATEGIES", "SearchPlan", "build", "param_space", "to_tune_domain"]


@dataclass
class SearchPlan:
    param_space: dict
    search_alg: Any
    scheduler: Any  # None: FIFO


def _module(registry: dict, kind: str, name: str):
    if name not in registry:
        raise ValueError(f"search.{kind}={name!r}; accepted: {', '.join(registry)}")
    return importlib.import_module(registry[name]) if registry[name] else None


def build(spec: SweepSpec) -> SearchPlan:
    """The Tune search space, searcher and scheduler for ``spec``."""
    searcher = _module(STRATEGIES, "strategy", spec.search.strategy)
    scheduler = _module(SCHEDULERS, "scheduler", spec.search.scheduler)
    space = param_space(spec.hyperparameters, enumerate_choices=getattr(searcher, "ENUMERATES_CHOICES", False))
    return SearchPlan(space, searcher.build(spec, space), scheduler.build(spec) if scheduler else None)
