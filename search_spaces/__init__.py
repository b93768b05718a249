"""Strategies: a spec's search section -> (param_space, searcher, scheduler).

"What to try" (a Tune searcher, ``search.strategy``) and "when to stop" (a Tune
scheduler, ``search.scheduler``) are kept apart, as Ray Tune does, and any
sensible pair may be combined. One module per strategy, exposing ``build(spec)
-> (param_space, search_alg)`` (the searcher decides how the space is written),
and one per scheduler, exposing ``build(spec) -> scheduler``, imported lazily
from :data:`STRATEGIES` and :data:`SCHEDULERS` (Ray Tune's
``search/__init__.py`` does the same). A module may also expose
``problems(spec)``: pairings that cannot work, refused when the spec is
validated. A strategy applies ``search.max_concurrent_trials`` to its searcher
itself: Tune ignores the TuneConfig setting for variant generators.
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
    "bohb": "search_spaces.bohb",
}
SCHEDULERS = {
    "fifo": None,  # Tune's default: every trial runs to the end
    "asha": "search_spaces.asha",
    "hyperband": "search_spaces.hyperband",
    "median": "search_spaces.median",
    "pbt": "search_spaces.pbt",
}

__all__ = ["SCHEDULERS", "STRATEGIES", "SearchPlan", "build", "problems", "param_space", "to_tune_domain"]


@dataclass
class SearchPlan:
    param_space: dict
    search_alg: Any
    scheduler: Any  # None: FIFO


def _module(registry: dict, kind: str, name: str):
    if name not in registry:
        raise ValueError(f"search.{kind}={name!r}; accepted: {', '.join(registry)}")
    return importlib.import_module(registry[name]) if registry[name] else None


def problems(spec: SweepSpec) -> list[tuple[str, str]]:
    """Why this strategy and scheduler cannot run this spec (pairings that would fail or stall)."""
    out: list[tuple[str, str]] = []
    for registry, kind, name in (
        (STRATEGIES, "strategy", spec.search.strategy),
        (SCHEDULERS, "scheduler", spec.search.scheduler),
    ):
        module = _module(registry, kind, name)
        if module is not None and hasattr(module, "problems"):
            out += module.problems(spec)
    return out


def build(spec: SweepSpec, warm_trials: list | None = None) -> SearchPlan:
    """The Tune search space, searcher and scheduler for ``spec``.

    ``warm_trials`` (``(params, objective values)`` of earlier trials) seed a
    model-based searcher.
    """
    searcher = _module(STRATEGIES, "strategy", spec.search.strategy)
    scheduler = _module(SCHEDULERS, "scheduler", spec.search.scheduler)
    kwargs = {"warm_trials": warm_trials} if warm_trials else {}
    space, search_alg = searcher.build(spec, **kwargs)
    return SearchPlan(space, search_alg, scheduler.build(spec) if scheduler else None)
