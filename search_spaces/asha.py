"""ASHA: asynchronous successive halving over epochs.

Every trial runs ``grace_period`` epochs; at each rung only the best
``1/reduction_factor`` go on, up to the longest trial's epochs. Asynchronous, so
it never waits for a whole bracket (unlike synchronous Hyperband).
"""

from __future__ import annotations

from ._base import Scheduler
from ._space import max_epochs


class ASHA(Scheduler):
    name = "asha"

    def build(self, spec):
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=max(max_epochs(spec.hyperparameters), spec.search.grace_period),
            grace_period=spec.search.grace_period,
            reduction_factor=spec.search.reduction_factor,
        )
