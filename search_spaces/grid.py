"""Grid search: every combination of the grid (and choice) values, FIFO scheduling."""

from __future__ import annotations

from ray.tune.search.basic_variant import BasicVariantGenerator

ENUMERATES_CHOICES = True


def build(spec, space: dict):
    # Tune ignores TuneConfig.max_concurrent_trials for a variant generator: set it here.
    limit = spec.search.max_concurrent_trials or 0
    return BasicVariantGenerator(max_concurrent=limit, random_state=spec.search.seed)
