"""Grid search: every combination of the ``grid`` (and ``choice``) values, once each.

A group whose optimizer (or LR schedule) is on the grid together with settings
that apply only to some of its values (momentum for SGD) is enumerated jointly,
so no two points differ only in a setting that does not apply.
"""

from __future__ import annotations

from ._base import Searcher
from ._space import grid_space


class GridSearch(Searcher):
    name = "grid"
    enumerates = True

    def build(self, spec, warm_trials=None):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Tune ignores TuneConfig.max_concurrent_trials for a variant generator: set it here.
        limit = spec.search.max_concurrent_trials or 0
        return grid_space(spec.hyperparameters), BasicVariantGenerator(max_concurrent=limit)
