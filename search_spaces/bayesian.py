"""Bayesian optimisation through Optuna (TPE), seeded from the spec.

Ray Tune's OptunaSearch drives an Optuna study; each finished trial's metric
updates the sampler's model. Optuna's own pruning stays off: stopping trials
early is the scheduler's job (``search.scheduler``), never done twice.
"""

from __future__ import annotations

ENUMERATES_CHOICES = False


def build(spec, space: dict):
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna.samplers.TPESampler(seed=spec.search.seed)
    searcher = OptunaSearch(sampler=sampler)
    limit = spec.search.max_concurrent_trials
    return ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher
