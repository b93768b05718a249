"""Synchronous Hyperband over epochs (Ray Tune's HyperBandScheduler).

Trials are dealt into brackets; in each bracket all trials run to a rung, the
best ``1/reduction_factor`` go on and the rest stop. Synchronous: a bracket
waits until every one of its trials reaches the rung, so a concurrency limit
below the largest bracket would keep it from ever filling (Ray Tune then runs
every trial to the end, silently). Such a spec is refused. With strategy
``bohb`` the scheduler is Ray's HyperBandForBOHB, which feeds BOHB's model.
"""

from __future__ import annotations

import math

from ._base import Scheduler
from ._space import max_epochs


def brackets(max_t: int, eta: float) -> list[tuple[int, int]]:
    """``(trials, first-rung epochs)`` of each bracket, as Ray's HyperBandScheduler deals them."""
    s_max_1 = int(round(math.log(max_t) / math.log(eta))) + 1
    return [(int(math.ceil(s_max_1 / (s + 1) * eta**s)), int(max_t * eta ** (-s))) for s in range(s_max_1)]


class Hyperband(Scheduler):
    name = "hyperband"

    def problems(self, spec):
        search = spec.search
        limit = search.max_concurrent_trials
        if search.strategy == "bohb" or not limit:
            return []
        largest = max(n for n, _ in brackets(max_epochs(spec.hyperparameters), search.reduction_factor))
        if limit >= largest:
            return []
        return [
            (
                "search.max_concurrent_trials",
                f"got {limit}; synchronous hyperband waits for whole brackets and its largest holds {largest} "
                f"trials, so it would never fill (every trial would run to the end): set max_concurrent_trials "
                f">= {largest}, leave it unset, raise reduction_factor, or use scheduler 'asha'",
            )
        ]

    def build(self, spec):
        from ray.tune.schedulers import HyperBandForBOHB, HyperBandScheduler

        cls = HyperBandForBOHB if spec.search.strategy == "bohb" else HyperBandScheduler
        return cls(
            time_attr="training_iteration",
            max_t=max_epochs(spec.hyperparameters),
            reduction_factor=spec.search.reduction_factor,
        )
