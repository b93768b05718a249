"""FIFO: Ray Tune's default, no scheduler: every trial runs all its epochs (early stopping aside)."""

from __future__ import annotations

from ._base import Scheduler


class FIFO(Scheduler):
    name = "fifo"

    def build(self, spec):
        return None  # Tune's FIFOScheduler
