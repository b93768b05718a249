"""BOHB: a Bayesian model (kernel densities, as TPE) proposing trials for Hyperband brackets.

Ray Tune's TuneBOHB (hpbandster's BOHB over a ConfigSpace space) with Ray's
HyperBandForBOHB scheduler (``search.scheduler: hyperband``): the model is fit
on results at each budget (epochs), so cheap low-epoch results guide the
expensive ones. The space is built as a ConfigSpace here so that conditional
settings (momentum for SGD) are ConfigSpace conditions.
"""

from __future__ import annotations

import importlib.util

from ._base import Searcher
from ._distributions import Distribution
from ._hyperparameters import SEP, condition, iter_hyperparameters
from ._space import constants, is_conditional, limited, searcher_points, start_points


def config_space(hp, seed: int):
    import ConfigSpace as CS

    space = CS.ConfigurationSpace(seed=seed)
    made = {}
    for path, dist in iter_hyperparameters(hp):
        if not isinstance(dist, Distribution):
            continue
        name, (kind, args) = SEP.join(path), (dist.kind, dist.args)
        if kind in ("uniform", "loguniform"):
            param = CS.UniformFloatHyperparameter(name, args[0], args[1], log=kind == "loguniform")
        elif kind == "quniform":  # hpbandster's BOHB has no ordinal or quantized floats: the values as choices
            low, high, q = args
            steps = int(round((high - low) / q))
            param = CS.CategoricalHyperparameter(name, [round(low + i * q, 12) for i in range(steps + 1)])
        elif kind == "randint":
            param = CS.UniformIntegerHyperparameter(name, args[0], args[1] - 1)
        else:
            param = CS.CategoricalHyperparameter(name, list(args))
        space.add(param)
        made[path] = param
    for path, param in made.items():
        if is_conditional(hp, path):
            parent, applies = condition(path)
            parent_param = made[path[:2] + (parent,)]
            values = [v for v in applies if v in parent_param.choices]
            space.add(CS.InCondition(param, parent_param, values))
    return space


class BOHB(Searcher):
    name = "bohb"
    model_based = True

    def own_problems(self, spec):
        out = []
        missing = [m for m in ("hpbandster", "ConfigSpace") if importlib.util.find_spec(m) is None]
        if missing:
            out.append(("search.strategy", f"bohb needs {' and '.join(missing)}: pip install hpbandster ConfigSpace"))
        if spec.search.scheduler != "hyperband":
            out.append(
                (
                    "search.scheduler",
                    f"got '{spec.search.scheduler}'; BOHB's model is fit across Hyperband "
                    "brackets: use scheduler 'hyperband' (the default for bohb)",
                )
            )
        if spec.search.objectives:
            out.append(("search.objectives", "bohb optimises one objective: use strategy bayesian for several"))
        return out

    def build(self, spec, warm_trials=None):
        from ray.tune.search.bohb import TuneBOHB

        search = spec.search
        searcher = TuneBOHB(
            space=config_space(spec.hyperparameters, search.seed),
            metric=search.metric,
            mode=search.mode,
            seed=search.seed,
            points_to_evaluate=searcher_points(start_points(spec)),
        )
        return constants(spec.hyperparameters), limited(searcher, spec)
