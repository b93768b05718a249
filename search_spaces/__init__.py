"""Strategies: a spec's search section -> (param_space, searcher, scheduler).

"What to try" (a Tune searcher) and "when to stop" (a Tune scheduler) are kept
apart, as Ray Tune does. One module per strategy, each exposing
``build(spec, space) -> (search_alg, scheduler)``, imported lazily from
:data:`STRATEGIES` (Ray Tune's ``search/__init__.py`` does the same). A
strategy applies ``search.max_concurrent_trials`` to its searcher itself:
Tune ignores the TuneConfig setting for variant generators.
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
}

__all__ = ["STRATEGIES", "SearchPlan", "build", "param_space", "to_tune_domain"]


@dataclass
class SearchPlan:
    param_space: dict
    search_alg: Any
    scheduler: Any


def build(spec: SweepSpec) -> SearchPlan:
    """The Tune search space, searcher and scheduler for ``spec``."""
    strategy = spec.search.strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"search.strategy={strategy!r}; accepted: {', '.join(STRATEGIES)}")
    module = importlib.import_module(STRATEGIES[strategy])
    space = param_space(spec.hyperparameters, enumerate_choices=getattr(module, "ENUMERATES_CHOICES", False))
    search_alg, scheduler = module.build(spec, space)
    return SearchPlan(space, search_alg, scheduler)
