"""The driver: a validated spec in, a finished sweep (and its MLflow runs) out.

spec -> pre-flight checks -> ``search_spaces.build`` (param_space, searcher,
scheduler) -> ``tune.Tuner`` around the task's trainable, with per-trial
resources, checkpoint config and the MLflow callback -> ``Tuner.fit()`` ->
:class:`SweepResult`, written to MLflow and returned.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Union

from ray.tune.stopper import Stopper

from . import preflight, report, tracking
from ._distributions import Distribution
from .result import SweepResult, TrialResult, pareto_front
from .spec import SweepSpec, iter_hyperparameters, load_spec, smoke_spec

log = logging.getLogger(__name__)


def searched_params(spec: SweepSpec) -> list[str]:
    """Dotted names of the hyperparameters the sweep searches over."""
    return [".".join(path) for path, v in iter_hyperparameters(spec.hyperparameters) if isinstance(v, Distribution)]


def _run_name(searched: list[str]):
    def name(trial) -> str:
        return f"{trial.trial_id} {report.trial_label(trial.config, searched)}".rstrip()

    return name


def _trial_count(plan, search) -> int | None:
    """Trials the sweep will run: num_samples times the grid's size."""

    def grid_size(node) -> int:
        if isinstance(node, dict) and set(node) == {"grid_search"}:
            return len(node["grid_search"])
        if isinstance(node, dict):
            size = 1
            for value in node.values():
                size *= grid_size(value)
            return size
        return 1

    return search.num_samples * grid_size(plan.param_space)


def _start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` or start Ray in-process; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=True)
    return True


def run_sweep(
    spec: Union[SweepSpec, dict, str, Path],
    *,
    smoke_test: bool = False,
    tracking_uri: str | None = None,
    address: str | None = None,
    storage_path: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
) -> SweepResult:
    """Run a sweep to the end and return its :class:`SweepResult`.

    ``spec`` is a :class:`SweepSpec`, a dict or a YAML path; it is validated
    (and the data and model checked) before Ray starts, raising
    :class:`SpecError`. Ray is started in-process unless it is running already
    or ``address`` names a cluster; what this call starts, it stops. Tracking
    goes to ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the spec's,
    else ``sqlite:///mlflow.db``. ``smoke_test`` runs the same sweep shrunk
    (:func:`tune_service.spec.smoke_spec`).
    """
    spec = load_spec(spec)
    if smoke_test:
        spec = smoke_spec(spec)
    preflight.check(spec)
    uri = tracking.resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    warm_trials = _warm_start(spec, uri)

    import ray
    from ray import tune

    import search_spaces
    from trainables.loop import MODEL_DIR

    plan = search_spaces.build(spec, warm_trials)
    searched = searched_params(spec)
    sweep_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    storage = str(Path(storage_path or Path.home() / "ray_results").resolve())
    tracker = tracking.SweepTracker(uri, spec.mlflow.experiment or spec.name)
    search = spec.search
    tracker.start_sweep(
        name=sweep_id,
        sweep_id=sweep_id,
        strategy=search.strategy,
        spec_yaml=spec.to_yaml(),
        search_space=spec.to_dict()["hyperparameters"],
        params={f"search.{k}": v for k, v in search.model_dump(mode="json").items()}
        | {"smoke_test": smoke_test, "warm_start_trials": len(warm_trials or [])},
        description=spec.description,
    )
    started = time.time()
    started_ray = False
    try:
        started_ray = _start_ray(address, num_cpus)
        trainable = tune.with_parameters(
            preflight.task_module(spec.task.type).tune_trainable,
            task=preflight.task_config(spec),
            run={"monitor": search.metric, "mode": search.mode, "num_threads": max(1, int(spec.resources.cpu))},
        )
        trainable = tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
        callbacks = [tracking.MlflowTrialCallback(tracker, _run_name(searched))]
        if verbose:
            callbacks.append(report.Progress(search.metric, search.mode, _trial_count(plan, search), searched))
        tuner = tune.Tuner(
            trainable,
            param_space=plan.param_space,
            tune_config=tune.TuneConfig(
                metric=search.metric,
                mode=search.mode,
                num_samples=search.num_samples,
                time_budget_s=search.time_budget_s,
                search_alg=plan.search_alg,
                scheduler=plan.scheduler,
                trial_dirname_creator=lambda t: t.trial_id,
            ),
            run_config=tune.RunConfig(
                name=sweep_id,
                storage_path=storage,
                callbacks=callbacks,
                verbose=0,  # report.Progress prints instead
                stop=EpochBudget(search.max_total_epochs) if search.max_total_epochs else None,
                checkpoint_config=tune.CheckpointConfig(
                    # PBT continues trials from others' checkpoints: keep a few, as Ray advises
                    num_to_keep=4 if search.scheduler == "pbt" else 1,
                    checkpoint_score_attribute=search.metric,
                    checkpoint_score_order=search.mode,
                ),
            ),
        )
        grid = tuner.fit()
        result = _summarize(grid, spec, sweep_id, uri, tracker, storage, time.time() - started)
        if spec.mlflow.log_checkpoints:
            for t in result.trials:
                if t.checkpoint and t.mlflow_run_id:
                    tracker.log_checkpoint(t.trial_id, os.path.join(t.checkpoint, MODEL_DIR))
        tracker.finish_sweep(
            best_trial_id=result.best_trial_id,
            best_metrics=result.best_metrics,
            best_config=result.best_config,
            trials_table=report.trials_table(result, searched),
            pareto=report.pareto_record(result) if len(result.objectives) > 1 else None,
            stopped_by=result.stopped_by,
        )
        if verbose:
            print(report.summary(result, searched), file=sys.stdout, flush=True)
        return result
    except BaseException as exc:
        tracker.fail_open_runs("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        if started_ray:
            ray.shutdown()


class EpochBudget(Stopper):
    """Tune stopper: end the sweep once its trials have trained ``limit`` epochs in all."""

    def __init__(self, limit: int):
        self.limit, self.spent = limit, 0
        self._last: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict) -> bool:
        # a trial's final result comes twice (the second marked done): count each epoch once
        iteration = result.get("training_iteration")
        if self._last.get(trial_id) != iteration:
            self._last[trial_id] = iteration
            self.spent += 1
        return False

    def stop_all(self) -> bool:
        return self.spent >= self.limit


def _warm_start(spec: SweepSpec, uri: str) -> list | None:
    """The earlier sweep's evaluated trials (``search.warm_start``), read before Ray starts."""
    warm = spec.search.warm_start
    if warm is None:
        return None
    from .spec import SpecError, searched

    try:
        trials, skipped = tracking.earlier_trials(
            tracking.resolve_tracking_uri(warm.tracking_uri, None) if warm.tracking_uri else uri,
            experiment=warm.experiment,
            parent_run_id=warm.parent_run_id,
            accepts={name: d.contains for name, d in searched(spec.hyperparameters).items()},
            objectives=spec.search.all_objectives,
        )
    except tracking.WarmStartError as exc:
        raise SpecError([("search.warm_start", str(exc))]) from None
    log.info("warm start: %d earlier trials (%d outside this space skipped)", len(trials), skipped)
    return trials


def _summarize(grid, spec: SweepSpec, sweep_id: str, uri: str, tracker, storage: str, wall: float) -> SweepResult:
    metric, mode = spec.search.metric, spec.search.mode
    trials: list[TrialResult] = []
    unstarted = 0
    for r in grid:
        if r.config is None:  # created, but a budget ended the sweep before it ran: nothing to report
            unstarted += 1
            continue
        trial_id = r.metrics.get("trial_id") or Path(r.path).name
        df = r.metrics_dataframe
        best_row: dict[str, Any] = {}
        if df is not None and metric in df and df[metric].notna().any():
            idx = df[metric].idxmax() if mode == "max" else df[metric].idxmin()
            best_row = tracking.numeric_metrics(df.loc[idx].to_dict())
        ckpt = r.get_best_checkpoint(metric, mode) if r.best_checkpoints else None
        trials.append(
            TrialResult(
                trial_id=trial_id,
                status="ERROR" if r.error else "TERMINATED",
                config=r.config,
                metrics={k: v for k, v in best_row.items() if not k.startswith("config/")},
                epochs=0 if df is None else len(df),
                checkpoint=ckpt.path if ckpt else None,
                mlflow_run_id=tracker.trial_runs.get(trial_id),
                error=None if r.error is None else f"{type(r.error).__name__}: {r.error}",
            )
        )
    scored = [t for t in trials if metric in t.metrics]
    best = None
    if scored:
        best = (max if mode == "max" else min)(scored, key=lambda t: t.metrics[metric])
    if unstarted:
        log.info("%d trials were created but never ran before the sweep ended", unstarted)
    objectives = spec.search.all_objectives
    front: list[str] = []
    if len(objectives) > 1:
        points = {
            t.trial_id: [t.metrics[m] for m, _ in objectives]
            for t in trials
            if all(m in t.metrics for m, _ in objectives)
        }
        front = pareto_front(points, [o for _, o in objectives])
    stopped_by = None
    budget = spec.search.max_total_epochs
    if budget and sum(t.epochs for t in trials) >= budget:
        stopped_by = "max_total_epochs"
    elif spec.search.time_budget_s and wall >= spec.search.time_budget_s:
        stopped_by = "time_budget_s"
    return SweepResult(
        name=spec.name,
        sweep_id=sweep_id,
        strategy=spec.search.strategy,
        metric=metric,
        mode=mode,
        best_trial_id=best.trial_id if best else None,
        best_config=best.config if best else None,
        best_metrics=best.metrics if best else {},
        best_checkpoint=best.checkpoint if best else None,
        tracking_uri=uri,
        experiment_id=tracker.experiment_id,
        parent_run_id=tracker.parent_run_id,
        best_run_id=best.mlflow_run_id if best else None,
        storage_path=os.path.join(storage, sweep_id),
        wall_time_s=wall,
        trials=trials,
        objectives=[list(o) for o in objectives],
        pareto_front=front,
        stopped_by=stopped_by,
    )
