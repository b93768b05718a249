"""Bayesian optimisation through Optuna, seeded from the spec.

Ray Tune's OptunaSearch drives an Optuna study over a define-by-run space
(:class:`~search_spaces._space.DefineByRun`), so a conditional setting is only
suggested where it applies. The sampler is ``search.sampler``: TPE (default),
GP, CMA-ES or QMC; ``search.startup_trials`` its random trials before its model
guides. With ``search.objectives`` the study is multi-objective.
Optuna's own pruning stays off: stopping trials early is the scheduler's job
(``search.scheduler``), never done twice.

Warm start: the evaluated trials of an earlier sweep are told to the study
before the first suggestion (its storage is handed to OptunaSearch, which loads
the study by name).
"""

from __future__ import annotations

import warnings

from ._base import Searcher
from ._hyperparameters import searcher_names
from ._space import DefineByRun, constants, limited, searcher_points, start_points

STUDY = "tune-service"


def make_sampler(spec):
    import optuna

    seed, kind = spec.search.seed, spec.search.sampler or "tpe"
    startup = {} if spec.search.startup_trials is None else {"n_startup_trials": spec.search.startup_trials}
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **startup)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, **startup)
    if kind == "cmaes":
        # categorical settings fall back to independent (random) sampling, as Optuna documents
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, **startup)
    if kind == "qmc":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"search.sampler={kind!r}; accepted: tpe, gp, cmaes, qmc")


def _objectives(spec):
    objectives = spec.search.all_objectives
    if len(objectives) == 1:
        return objectives[0]
    return [m for m, _ in objectives], [o for _, o in objectives]


def warm_storage(spec, trials: list[tuple[dict, list]]):
    """An in-memory Optuna storage holding the study with ``trials`` ((dotted params, values)) told."""
    import optuna

    metric, mode = _objectives(spec)
    modes = mode if isinstance(mode, list) else [mode]
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY,
        sampler=optuna.samplers.RandomSampler(seed=spec.search.seed),
        directions=["maximize" if m == "max" else "minimize" for m in modes],
    )
    space = DefineByRun(spec.hyperparameters)
    for params, values in trials:
        study.enqueue_trial(searcher_names(params), skip_if_exists=True)
        trial = study.ask()
        space(trial)
        study.tell(trial, values if len(values) > 1 else values[0])
    return storage


class Bayesian(Searcher):
    name = "bayesian"
    model_based = True
    takes_sampler = True
    warm_starts = True

    def own_problems(self, spec):
        out = []
        if spec.search.sampler == "cmaes" and spec.search.objectives:
            out.append(("search.sampler", "cmaes optimises one objective: use tpe or gp with search.objectives"))
        startup = spec.search.startup_trials
        if spec.search.sampler == "qmc" and startup is not None:
            out.append(
                (
                    "search.startup_trials",
                    f"got {startup}, but sampler qmc follows its sequence from the "
                    "first trial: drop it, or use sampler tpe, gp or cmaes",
                )
            )
        return out

    def build(self, spec, warm_trials=None):
        from ray.tune.search.optuna import OptunaSearch

        metric, mode = _objectives(spec)
        searcher = OptunaSearch(
            space=DefineByRun(spec.hyperparameters),
            metric=metric,
            mode=mode,
            sampler=make_sampler(spec),
            points_to_evaluate=searcher_points(start_points(spec, warm=bool(warm_trials))),
            storage=warm_storage(spec, warm_trials) if warm_trials else None,
            study_name=STUDY,
        )
        return constants(spec.hyperparameters), limited(searcher, spec)
