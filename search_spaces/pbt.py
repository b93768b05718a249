"""Population based training (Ray Tune's PopulationBasedTraining).

Every ``perturbation_interval`` epochs, a trial in the bottom quarter copies the
checkpoint (weights, optimizer and schedule state) of one in the top quarter and
continues with its hyperparameters perturbed: each searched continuous setting
(the per-group learning rates first among them) is multiplied by 0.8 or 1.2, or
with probability 0.25 redrawn, and kept inside its distribution's range.
Categorical and integer settings keep the values drawn at the start.
"""

from __future__ import annotations

from ._base import Scheduler
from ._distributions import Distribution
from ._hyperparameters import set_path
from ._space import max_epochs, mutable, to_tune_domain


class ClipToSpace:
    """PBT's custom explore step: a perturbed value is kept inside its distribution."""

    def __init__(self, dists: dict):
        self.dists = dists

    def __call__(self, config: dict) -> dict:
        for path, dist in self.dists.items():
            node = config
            for key in path[:-1]:
                node = node[key]
            low, high = dist.args[0], dist.args[1]
            value = min(max(node[path[-1]], low), high)
            if dist.kind == "quniform":
                q = dist.args[2]
                value = min(max(round(value / q) * q, low), high)
            node[path[-1]] = value
        return config


class PBT(Scheduler):
    name = "pbt"

    def problems(self, spec):
        search, hp = spec.search, spec.hyperparameters
        if search.strategy != "random":
            why = (
                "a grid enumerates fixed points, while PBT replaces trials' values as they train"
                if search.strategy == "grid"
                else "Ray Tune's PBT draws its population itself; a model-based searcher would learn "
                "from values PBT later changes"
            )
            return [("search.scheduler", f"pbt runs with strategy 'random' only, got '{search.strategy}': {why}")]
        out = []
        if isinstance(hp.epochs, Distribution):
            out.append(("hyperparameters.epochs", "pbt trains the whole population for the same epochs: fix epochs"))
        if not mutable(hp):
            out.append(
                (
                    "search.scheduler",
                    "pbt perturbs searched continuous hyperparameters (uniform, loguniform, "
                    "quniform), and none is searched",
                )
            )
        if search.perturbation_interval >= max_epochs(hp):
            out.append(
                (
                    "search.perturbation_interval",
                    f"got {search.perturbation_interval}, but trials train "
                    f"{max_epochs(hp)} epochs: PBT would never perturb; lower it or train longer",
                )
            )
        if isinstance(hp.model, Distribution):
            out.append(
                (
                    "task.model",
                    "scheduler 'pbt' continues a trial from another's checkpoint, which a different "
                    "base model cannot load: search task.model with another scheduler",
                )
            )
        if spec.resources.workers > 1:
            out.append(
                (
                    "resources.workers",
                    f"got {spec.resources.workers}, but scheduler 'pbt' continues trials "
                    "from each other's Tune checkpoints, which a multi-worker trial keeps in Ray Train instead: "
                    "use workers: 1 with pbt, or another scheduler",
                )
            )
        return out

    def build(self, spec):
        from ray.tune.schedulers import PopulationBasedTraining

        dists = mutable(spec.hyperparameters)
        mutations: dict = {}
        for path, dist in dists.items():
            set_path(mutations, path, to_tune_domain(dist))
        return PopulationBasedTraining(
            time_attr="training_iteration",
            perturbation_interval=spec.search.perturbation_interval,
            hyperparam_mutations=mutations,
            custom_explore_fn=ClipToSpace(dists),
            quantile_fraction=0.25,
            resample_probability=0.25,
        )
