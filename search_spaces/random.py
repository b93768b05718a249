"""Random search: ``num_samples`` draws from the distributions (grids crossed), FIFO."""

from __future__ import annotations

from ray.tune.search.basic_variant import BasicVariantGenerator

ENUMERATES_CHOICES = False


def build(spec, space: dict):
    # Tune ignores TuneConfig.max_concurrent_trials for a variant generator: set it here.
    limit = spec.search.max_concurrent_trials or 0
    return BasicVariantGenerator(max_concurrent=limit, random_state=spec.search.seed)
