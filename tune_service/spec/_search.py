"""``search``: the searcher and the scheduler, the objectives, the trial count, and trusting the winner."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from search_spaces import PRESETS, SAMPLERS, SCHEDULERS, SEARCHERS

from ._fields import Section


class Objective(Section):
    """One more objective besides ``search.metric`` (multi-objective search)."""

    metric: str
    mode: Literal["max", "min"]


class Confirm(Section):
    """After the search, the best configs train again with new seeds; the winner is the best mean."""

    top_k: int = Field(3, ge=1, le=20, description="how many of the best configs run again")
    seeds: int = Field(3, ge=1, le=20, description="new seeds each (the seed plus 1, 2, ...)")


class CrossValidation(Section):
    """Each trial trains one model per fold of the training data and reports the folds' mean (and spread)."""

    folds: int = Field(5, ge=2, le=20, description="K: the training rows cut into K parts, each one fold's validation")
    stratified: Optional[bool] = Field(
        None, description="each fold keeps the classes' proportions; default: true when the dataset has labels"
    )
    refit: bool = Field(
        False,
        description="after the search, the winning config trains once more on every training row, for the epochs "
        "its folds' mean peaked at; that model is the one registered (default: the winner's best fold's model)",
    )


class WarmStart(Section):
    """Seed the searcher with the evaluated trials of an earlier sweep, read back from MLflow."""

    experiment: Optional[str] = Field(None, description="every finished trial in this MLflow experiment")
    parent_run_id: Optional[str] = Field(None, description="the trials of one earlier sweep (its parent run)")
    tracking_uri: Optional[str] = Field(None, description="where the earlier sweep is tracked; default: this sweep's")

    @model_validator(mode="after")
    def _one_source(self) -> WarmStart:
        if (self.experiment is None) == (self.parent_run_id is None):
            raise ValueError("give exactly one of experiment (a name) or parent_run_id")
        return self


def _preset(strategy: str, scheduler: Any) -> tuple[str, str]:
    """``(searcher, scheduler)`` of a preset (``asha``) or a ``SEARCHER+SCHEDULER`` pair."""
    searcher, _, paired = strategy.partition("+")
    if strategy in PRESETS:
        searcher, paired = PRESETS[strategy]
    if searcher not in SEARCHERS or paired not in SCHEDULERS:
        raise ValueError(
            f"strategy '{strategy}' is not a preset; presets are {', '.join(PRESETS)} or "
            f"STRATEGY+SCHEDULER with a strategy in {', '.join(SEARCHERS)} "
            f"and a scheduler in {', '.join(SCHEDULERS)}"
        )
    if scheduler is not None and scheduler != paired:
        raise ValueError(f"strategy '{strategy}' sets scheduler '{paired}', but scheduler is '{scheduler}'")
    return searcher, paired


def _objective_lists(data: dict) -> dict:
    """``metric: [a, b]`` with ``mode: [max, min]``, as Optuna and Ray's OptunaSearch write it, as objectives."""
    metric, mode = data.get("metric"), data.get("mode")
    if isinstance(metric, list) and metric:
        modes = mode if isinstance(mode, list) else [mode or "max"] * len(metric)
        if len(modes) != len(metric):
            raise ValueError(f"metric lists {len(metric)} objectives but mode lists {len(modes)}")
        data["metric"], data["mode"] = metric[0], modes[0]
        extra = [{"metric": m, "mode": o} for m, o in zip(metric[1:], modes[1:])]
        data["objectives"] = extra + list(data.get("objectives") or [])
    return data


class SearchSpec(Section):
    """What to try (``strategy``, a searcher) and when to stop trials (``scheduler``), kept apart."""

    strategy: Literal[tuple(SEARCHERS)] = Field(
        "random",
        description="the searcher: grid, random, bayesian (Optuna), bohb; or a preset naming a searcher and a "
        "scheduler: asha, hyperband, pbt, or SEARCHER+SCHEDULER such as bayesian+asha",
    )
    scheduler: Literal[tuple(SCHEDULERS)] = Field(
        "fifo",
        description="fifo: every trial runs all its epochs; asha, hyperband, median: poor trials stop early; "
        "pbt: trials copy better ones and perturb their hyperparameters",
    )
    sampler: Optional[Literal[SAMPLERS]] = Field(None, description="bayesian: Optuna's sampler (default tpe)")
    startup_trials: Optional[int] = Field(
        None,
        ge=1,
        description="bayesian with sampler tpe, gp or cmaes: trials drawn at random before the sampler's model "
        "picks the next (Optuna's n_startup_trials; default the sampler's own: 10 for tpe and gp, 1 for cmaes)",
    )
    grace_period: int = Field(1, ge=1, description="asha, median: epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(
        2, gt=1, description="asha, hyperband: 1/reduction_factor of trials go on at each rung"
    )
    perturbation_interval: int = Field(1, ge=1, description="pbt: epochs between exploit/explore steps")
    metric: str = Field("val_accuracy", description="default: the task's first metric (val_accuracy for text)")
    mode: Literal["max", "min"] = "max"
    objectives: list[Objective] = Field(
        default_factory=list,
        description="more objectives besides metric (multi-objective: the Pareto front is reported)",
    )
    num_samples: int = Field(
        8, ge=1, description="random: trials drawn (default 8); grid: times the whole grid runs (default 1)"
    )
    max_concurrent_trials: Optional[int] = Field(None, ge=1)
    time_budget_s: Optional[float] = Field(None, gt=0, description="stop the sweep after this long")
    max_total_epochs: Optional[int] = Field(None, ge=1, description="stop the sweep after this many epochs in all")
    max_failures: int = Field(
        2, ge=0, le=100, description="times a failed trial is retried, each time from its last checkpoint"
    )
    reuse_actors: bool = Field(
        True,
        description="run the next trial in the process that ran the last (no new Python, torch or transformers "
        "import, and the data loaded and tokenized once per process); false gives each trial a fresh process",
    )
    points_to_evaluate: list[dict[str, Any]] = Field(
        default_factory=list,
        description="configurations tried first: {dotted.name: value} over searched hyperparameters",
    )
    warm_start: Optional[WarmStart] = None
    center_first: bool = Field(
        True,
        description="the first trial runs the middle of the searched ranges (a log range's geometric middle, "
        "numeric choices' lower middle, other choices' first), as Ax and SMAC start; not with grid or a grid "
        "entry, sampler qmc (its sequence runs the center early), points_to_evaluate or warm_start",
    )
    seed: int = Field(0, ge=0, description="seed of the searcher")
    test_top_k: int = Field(
        1, ge=1, le=100, description="with task.dataset.test_split: how many of the best trials are scored on it"
    )
    confirm: Optional[Confirm] = Field(
        None, description="the top_k configs run again with `seeds` new seeds each; the winner by the mean"
    )
    cross_validation: Optional[CrossValidation] = Field(
        None, description="each trial trains on K folds of the training data; the folds' mean is what is searched"
    )

    @model_validator(mode="before")
    @classmethod
    def _presets_and_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _objective_lists(dict(data))
        strategy = data.get("strategy")
        # "bohb" names a searcher and a preset: the searcher, with its scheduler as a default below
        if isinstance(strategy, str) and ((strategy in PRESETS and strategy not in SEARCHERS) or "+" in strategy):
            data["strategy"], data["scheduler"] = _preset(strategy, data.get("scheduler"))
        if data.get("strategy") == "bohb":
            data.setdefault("scheduler", "hyperband")
        # Ray Tune repeats a grid num_samples times; a grid search runs each point once unless asked.
        if data.get("strategy") == "grid":
            data.setdefault("num_samples", 1)
        return data

    @property
    def all_objectives(self) -> list[tuple[str, str]]:
        """``(metric, mode)`` of every objective, the primary (``metric``) first."""
        return [(self.metric, self.mode)] + [(o.metric, o.mode) for o in self.objectives]
