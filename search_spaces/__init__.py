"""Search spaces and strategies: the hyperparameter vocabulary, and a spec's search as Tune objects.

Bottom first, each layer importing only those below it (and never the service):

- the vocabulary: :mod:`._distributions` (a fixed value or a distribution, and
  the domain each setting accepts) and :mod:`._hyperparameters` (the settings'
  choices, which depends on which, their flat names);
- :mod:`._space`: the spec's hyperparameters as Tune domains, an Optuna
  define-by-run space, grids, the center of the space;
- the strategies, one module each, behind the contract in :mod:`._base`: a
  searcher ("what to try", ``search.strategy``) or a scheduler ("when to stop",
  ``search.scheduler``), kept apart as Ray Tune keeps them and imported lazily
  from :data:`SEARCHERS` and :data:`SCHEDULERS` (Ray Tune's
  ``search/__init__.py`` does the same).

The service asks two things: :func:`problems` (validation, before anything
runs) and :func:`build` (the driver, for a validated spec). Both take a
:class:`SearchInput`, a shape defined here (:mod:`._inputs`: the hyperparameters,
the search section, the trial's workers) that the service's spec has; nothing of
the service is imported here, type hints included.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ._base import MAX_GRID_TRIALS, Problem, Scheduler, Searcher
from ._distributions import DISTRIBUTIONS, Distribution, Domain, Relative, upper
from ._hyperparameters import (
    CONDITIONS,
    LR_SCHEDULERS,
    OPTIMIZERS,
    SEP,
    flatten,
    iter_hyperparameters,
    searched,
    unflatten_points,
)
from ._inputs import SearchInput
from ._space import DefineByRun, param_space, to_tune_domain

# name -> (module, class): the searchers ("what to try"), named by ``search.strategy``
SEARCHERS = {
    "grid": ("search_spaces.grid", "GridSearch"),
    "random": ("search_spaces.random", "RandomSearch"),
    "bayesian": ("search_spaces.bayesian", "Bayesian"),
    "bohb": ("search_spaces.bohb", "BOHB"),
}
# name -> (module, class): the schedulers of ``search.scheduler``
SCHEDULERS = {
    "fifo": ("search_spaces.fifo", "FIFO"),
    "asha": ("search_spaces.asha", "ASHA"),
    "hyperband": ("search_spaces.hyperband", "Hyperband"),
    "median": ("search_spaces.median", "MedianStopping"),
    "pbt": ("search_spaces.pbt", "PBT"),
}
# Named presets for ``search.strategy`` (searcher, scheduler), besides any "SEARCHER+SCHEDULER" pair.
PRESETS = {
    "asha": ("random", "asha"),
    "hyperband": ("random", "hyperband"),
    "pbt": ("random", "pbt"),
    "bohb": ("bohb", "hyperband"),
}
# Optuna's samplers for strategy bayesian (``search.sampler``)
SAMPLERS = ("tpe", "gp", "cmaes", "qmc")

__all__ = [
    "CONDITIONS",
    "DISTRIBUTIONS",
    "LR_SCHEDULERS",
    "MAX_GRID_TRIALS",
    "OPTIMIZERS",
    "PRESETS",
    "SAMPLERS",
    "SCHEDULERS",
    "SEP",
    "SEARCHERS",
    "DefineByRun",
    "Distribution",
    "Domain",
    "Problem",
    "Relative",
    "Scheduler",
    "SearchInput",
    "SearchPlan",
    "Searcher",
    "build",
    "flatten",
    "iter_hyperparameters",
    "param_space",
    "problems",
    "searched",
    "to_tune_domain",
    "unflatten_points",
    "upper",
]


@dataclass
class SearchPlan:
    param_space: dict
    search_alg: Any
    scheduler: Any  # None: FIFO


def _load(registry: dict, kind: str, name: str):
    if name not in registry:
        raise ValueError(f"search.{kind}={name!r}; accepted: {', '.join(registry)}")
    module, cls = registry[name]
    return getattr(importlib.import_module(module), cls)()


def searcher(name: str) -> Searcher:
    """The searcher registered as ``name`` (``search.strategy``)."""
    return _load(SEARCHERS, "strategy", name)


def scheduler(name: str) -> Scheduler:
    """The scheduler registered as ``name`` (``search.scheduler``)."""
    return _load(SCHEDULERS, "scheduler", name)


def problems(spec: SearchInput) -> list[Problem]:
    """Why this searcher and scheduler cannot run this spec: the searcher's refusals, then the scheduler's."""
    return searcher(spec.search.strategy).problems(spec) + scheduler(spec.search.scheduler).problems(spec)


def build(spec: SearchInput, warm_trials: list | None = None) -> SearchPlan:
    """The Tune search space, searcher and scheduler for a validated ``spec``.

    ``warm_trials`` (``(params, objective values)`` of earlier trials) seed a searcher that warm-starts.
    """
    kwargs = {"warm_trials": warm_trials} if warm_trials else {}
    space, search_alg = searcher(spec.search.strategy).build(spec, **kwargs)
    return SearchPlan(space, search_alg, scheduler(spec.search.scheduler).build(spec))
