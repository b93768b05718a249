"""Random search: ``num_samples`` draws from the distributions (grids crossed), seeded.

Tune's variant generator draws every trial's values from the spec's seed;
``points_to_evaluate`` run first, their missing values drawn. A conditional
setting (momentum when the group's optimizer is SGD) is drawn only when it
applies and is ``None`` otherwise.
"""

from __future__ import annotations

from ._base import Searcher
from ._hyperparameters import unflatten_points
from ._space import param_space, start_points


class RandomSearch(Searcher):
    name = "random"

    def build(self, spec, warm_trials=None):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        search = spec.search
        space = param_space(spec.hyperparameters)
        # Tune ignores TuneConfig.max_concurrent_trials for a variant generator: set it here.
        searcher = BasicVariantGenerator(
            max_concurrent=search.max_concurrent_trials or 0,
            random_state=search.seed,
            points_to_evaluate=unflatten_points(start_points(spec)) or None,
        )
        return space, searcher
