"""The errors the service raises where a user must act, besides :class:`~tune_service.spec.SpecError`
(bad input) and those of :mod:`tune_service.tracking` (MLflow)."""

from __future__ import annotations


class SweepJobError(RuntimeError):
    """A submitted sweep could not be reached, submitted, or did not produce a result."""


class ClusterUnreachable(SweepJobError):
    """The Ray cluster (its job API, or the address a sweep joins) did not answer."""
