"""Median stopping: a trial stops when its best result so far falls below the
median of the other trials' running averages at the same epoch."""

from __future__ import annotations

from ._base import Scheduler


class MedianStopping(Scheduler):
    name = "median"

    def build(self, spec):
        from ray.tune.schedulers import MedianStoppingRule

        return MedianStoppingRule(
            time_attr="training_iteration",
            grace_period=spec.search.grace_period,
            min_samples_required=2,
        )
