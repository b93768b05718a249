"""The driver: a validated spec in, a finished sweep (and its MLflow runs) out.

spec -> pre-flight checks -> ``search_spaces.build`` (param_space, searcher,
scheduler) -> ``tune.Tuner`` around the task's trainable, with per-trial
resources, checkpoint config and the MLflow callback -> ``Tuner.fit()`` ->
:class:`SweepResult`, written to MLflow and returned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Union

from ray.tune.logger import JsonLoggerCallback
from ray.tune.stopper import Stopper

from trainables.distributed import CHECKPOINT_PATH

from . import preflight, report, resources, streaming, tracking, trial
from ._distributions import Distribution
from .result import SweepInterrupted, SweepResult, TrialResult, pareto_front
from .spec import SweepSpec, iter_hyperparameters, load_spec, smoke_spec

log = logging.getLogger(__name__)
#: Tune's storage when none is passed: a cluster sets it once on every node (cluster/README.md)
STORAGE_ENV = "TUNE_SERVICE_STORAGE_PATH"
#: set on a cluster whose autoscaler adds nodes on demand: trials are not checked against today's nodes
AUTOSCALING_ENV = "TUNE_SERVICE_AUTOSCALING"


def searched_params(spec: SweepSpec) -> list[str]:
    """Dotted names of the hyperparameters the sweep searches over."""
    return [".".join(path) for path, v in iter_hyperparameters(spec.hyperparameters) if isinstance(v, Distribution)]


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


def _ray_running() -> bool:
    import ray

    return ray.is_initialized()


def _check_address(address: str, timeout_s: float = 5.0) -> None:
    """Raise ``ClusterUnreachable`` when nothing listens at a Ray address (``HOST:PORT`` or ``ray://HOST:PORT``).

    ``ray.init`` would otherwise retry for minutes. ``auto`` and ``local`` are Ray's to resolve.
    """
    import socket

    from .jobs import ClusterUnreachable

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or "://" in target:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        raise ClusterUnreachable(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): check the head node's address and port "
            "(the GCS port, 6379 by default, or ray://HOST:10001 for Ray Client)"
        ) from None


class _ResultLog(JsonLoggerCallback):
    """Tune's result.json writer, keeping the driver's own copy when a trial restarts within the run.

    Before a trial with a checkpoint starts again, Tune's logger copies its result.json back from
    storage, for a driver that is new (a resumed sweep). Within one run the driver's copy is the
    newer: storage catches up only at Tune's experiment snapshots. PBT restarts trials from other
    trials' checkpoints and keeps every checkpoint, so Tune never forces a snapshot, and the copy
    would drop every epoch since the last one (all of them before the first).
    """

    def _restore_from_remote(self, file_name: str, trial) -> None:
        if not Path(trial.local_path, file_name).exists():
            super()._restore_from_remote(file_name, trial)


@contextlib.contextmanager
def _no_default_loggers():
    """Tune adds its CSV, JSON and TensorBoard loggers unless told not to; the sweep passes the JSON one itself."""
    before = os.environ.get(_NO_AUTO_LOGGERS)
    os.environ[_NO_AUTO_LOGGERS] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_NO_AUTO_LOGGERS, None)
        else:
            os.environ[_NO_AUTO_LOGGERS] = before


_NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


def _start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` or start Ray in-process; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")  # set for a Ray Job's driver
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # "local": a new in-process Ray, even when a cluster started with `ray start` runs on this machine
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=True)
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
    sweep_id: str | None = None,
    _resume_parent: str | None = None,
) -> SweepResult:
    """Run a sweep to the end and return its :class:`SweepResult`.

    ``spec`` is a :class:`SweepSpec`, a dict or a YAML path; it is validated
    (and the data and model checked) before Ray starts, raising
    :class:`SpecError`. Ray is started in-process unless it is running already
    or ``address`` names a cluster; what this call starts, it stops. Tracking
    goes to ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the spec's,
    else ``sqlite:///mlflow.db``. ``smoke_test`` runs the same sweep shrunk
    (:func:`tune_service.spec.smoke_spec`). ``storage_path`` is Tune's storage:
    a local folder (default ``$TUNE_SERVICE_STORAGE_PATH``, else ``~/ray_results``), a path every node of a cluster
    shares, or a cloud URI (``s3://``, ``gs://``). ``sweep_id`` names the sweep
    (default: the spec's name, a timestamp and a random suffix).
    """
    spec = load_spec(spec)
    if smoke_test:
        spec = smoke_spec(spec)
    uri = tracking.resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    # what does not answer is known before the data is loaded: the tracking server, the cluster
    tracking.check_server(uri)
    if (address or os.environ.get("RAY_ADDRESS")) and not _ray_running():
        _check_address(address or os.environ["RAY_ADDRESS"])
    preflight.check(spec)
    warm_trials = None if _resume_parent else _warm_start(spec, uri)  # a resumed searcher has its own state

    import ray
    from ray import tune

    import search_spaces

    plan = search_spaces.build(spec, warm_trials)
    searched = searched_params(spec)
    sweep_id = sweep_id or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    storage = _storage(storage_path)
    search = spec.search
    code = tracking.code_tags()
    # a trial larger than the in-process Ray this call would start is refused before it starts
    if not (address or os.environ.get("RAY_ADDRESS") or _ray_running()):
        resources.check_fits(spec.resources, [resources.local_node(num_cpus)])
    # then Ray: whether the store can take writes from every node is known once connected
    started_ray = _start_ray(address, num_cpus)
    tracker = None
    try:
        if not os.environ.get(AUTOSCALING_ENV):  # nodes that do not exist yet cannot be checked
            resources.check_fits(spec.resources, resources.cluster_nodes())
        _check_reach(uri)
        tracker = tracking.SweepTracker(uri, spec.mlflow.experiment or spec.name)
        if _resume_parent:
            tracker.reopen_sweep(_resume_parent)
        else:
            _start_parent(tracker, spec, sweep_id, code, warm_trials, smoke_test)
        if verbose:
            print(
                f"sweep {sweep_id}{' resumed' if _resume_parent else ''}; if it stops, finish it with:\n"
                f"  tune-service resume {sweep_id} --tracking-uri {uri} --storage-path {storage}",
                flush=True,
            )
        started = time.time()
        trial_tracking = streaming.TrialTracking(
            tracking_uri=uri,
            experiment_id=tracker.experiment_id,
            parent_run_id=tracker.parent_run_id,
            sweep_id=sweep_id,
            monitor=search.metric,
            mode=search.mode,
            searched=tuple(searched),
            keep_checkpoints=spec.mlflow.keep_checkpoints,
            log_checkpoints=spec.mlflow.log_checkpoints,
            tags={tracking.TAG_SWEEP_ID: sweep_id, "tune_service.task": spec.task.type, **code},
            credentials=ray.put(streaming.credentials_from_env()),
        )
        streaming.start_writers(trial_tracking)
        trainable = tune.with_parameters(
            trial.trainable,
            task_type=spec.task.type,
            task=preflight.task_config(spec),
            run={
                "monitor": search.metric,
                "mode": search.mode,
                "num_threads": max(1, int(spec.resources.cpu)),
                "precision": spec.resources.precision,
            },
            tracking=trial_tracking,
            parallel=_parallel(spec, storage, sweep_id),
        )
        trainable = tune.with_resources(trainable, resources.trial_resources(spec.resources))
        # Tune's loggers write each trial's files on the driver, and Tune copies them all to storage at each
        # experiment snapshot: a cost that grows with the trial count. result.json alone (what
        # Result.metrics_dataframe reads); no progress.csv, no TensorBoard files: MLflow has the curves.
        callbacks = [tracking.TrialStatusCallback(sweep_id), _ResultLog()]
        if verbose:
            callbacks.append(report.Progress(search.metric, search.mode, _trial_count(plan, search), searched))
        if _resume_parent:  # Tune's experiment state: finished trials stay, unfinished ones continue
            tuner = tune.Tuner.restore(
                f"{storage.rstrip('/')}/{sweep_id}",
                trainable,
                resume_unfinished=True,
                resume_errored=True,
                param_space=plan.param_space,
            )
        else:
            pbt = search.scheduler == "pbt"
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
                    reuse_actors=search.reuse_actors,
                ),
                run_config=tune.RunConfig(
                    name=sweep_id,
                    storage_path=storage,
                    callbacks=callbacks,
                    verbose=0,  # report.Progress prints instead
                    stop=EpochBudget(search.max_total_epochs) if search.max_total_epochs else None,
                    # a trial that fails (an exception, its process or node lost) restarts from its last checkpoint
                    failure_config=tune.FailureConfig(max_failures=search.max_failures),
                    checkpoint_config=tune.CheckpointConfig(
                        # Keep the 2 best (with the latest, which Tune always keeps): the storage a trial's epochs
                        # take stays flat, and Tune forces an experiment snapshot at every 2nd checkpoint of a
                        # trial, not every one (a snapshot writes every trial's state: a cost in trials x
                        # checkpoints). A trial retried within the sweep keeps the driver's result.json
                        # (_ResultLog), so it needs no snapshot to match its checkpoint. MLflow keeps the top
                        # mlflow.keep_checkpoints.
                        # PBT continues a trial from another's checkpoint, which must outlive the wait: keep them
                        # all. Any limit can delete the one being cloned: by score, once a newer one ranks above
                        # it; by recency too, since PBT's own save of a trial registers the checkpoint it last
                        # reported a second time, and pruning the older entry deletes the folder both name.
                        num_to_keep=None if pbt else 2,
                        checkpoint_score_attribute=None if pbt else search.metric,
                        checkpoint_score_order=search.mode,
                    ),
                ),
            )
        with _no_default_loggers():
            grid = tuner.fit()
        if sweep_id in tracking.INTERRUPTED:  # Tune stopped on Ctrl-C, its state saved: resumable, not finished
            tracking.INTERRUPTED.discard(sweep_id)
            raise SweepInterrupted(sweep_id)
        writes = streaming.flush_writers(sweep_id, spec.mlflow.flush_timeout_s)
        tracker.log_metrics({f"tracking/{k}": v for k, v in writes.items()})
        if writes["failed"]:
            log.warning("MLflow refused %d trial writes (see the writers' Ray worker logs)", writes["failed"])
        result, histories = _summarize(grid, spec, sweep_id, uri, tracker, storage, time.time() - started)
        tracker.close_trial_runs({t.trial_id: "FAILED" if t.status == "ERROR" else "FINISHED" for t in result.trials})
        _publish(spec, result, tracker, histories, searched)
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
        if tracker is not None and tracker.parent_run_id is not None:
            # Ctrl-C, or SIGTERM (a stopped Ray Job, whose driver has until SIGKILL): the user ended it.
            # The runs are ended first, then again after the flush, for a run a writer opened meanwhile.
            status = "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED"
            try:
                tracker.fail_open_runs(status)
            except Exception as end_exc:  # the server away: the flush still lands what the writers hold
                log.warning("MLflow runs not ended before the flush: %s", end_exc)
            try:
                streaming.flush_writers(sweep_id, 30)
            except Exception as flush_exc:  # the sweep's own error matters more
                log.warning("MLflow writers not flushed: %s", flush_exc)
            tracker.fail_open_runs(status)
        raise
    finally:
        if started_ray:
            ray.shutdown()


def resume_sweep(
    sweep_id: str,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    storage_path: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
) -> SweepResult:
    """Finish a sweep whose driver died (killed, its machine lost) or was interrupted.

    The spec comes back from the sweep's parent run in MLflow, Tune's experiment
    state (trials, checkpoints, the searcher's state) from ``storage_path``.
    Finished trials stay finished; the others continue from their last
    checkpoints, in the same MLflow runs (epochs already logged are not logged
    again). Give the same tracking URI and storage path as the first run.
    """
    import yaml
    from mlflow.tracking import MlflowClient
    from ray import tune

    from .spec import SpecError

    uri = tracking.resolve_tracking_uri(tracking_uri, None)
    tracking.check_server(uri)
    parent = tracking.find_sweep(uri, sweep_id)
    client = MlflowClient(tracking_uri=uri)
    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(
            yaml.safe_load(Path(client.download_artifacts(parent.info.run_id, "spec.yaml", tmp)).read_text())
        )
    path = f"{_storage(storage_path).rstrip('/')}/{sweep_id}"
    if not tune.Tuner.can_restore(path):
        raise SpecError([("storage_path", f"no Tune experiment state of sweep {sweep_id!r} at {path}: give the "
                                          "--storage-path the sweep ran with")])  # fmt: skip
    damaged = _damaged_state(path)
    if damaged:
        raise SpecError([("storage_path", f"Tune's experiment state of sweep {sweep_id!r}, {damaged}, is empty or "
                          "cut short: the driver was killed while Tune was writing it, and the sweep cannot continue "
                          "from it. Its MLflow runs keep every epoch logged: a new sweep can start from them with "
                          f"search.warm_start (parent_run_id: {parent.info.run_id})")])  # fmt: skip
    return run_sweep(
        spec,
        tracking_uri=uri,
        address=address,
        storage_path=storage_path,
        num_cpus=num_cpus,
        verbose=verbose,
        sweep_id=sweep_id,
        _resume_parent=parent.info.run_id,
    )


def _damaged_state(path: str) -> str | None:
    """The newest of Tune's experiment state files under a local ``path`` when it cannot be read, else None.

    Tune writes the file in place at each snapshot: a driver killed in the middle leaves it empty, and
    ``Tuner.restore`` would then start the sweep over with what remains of the searcher's state.
    """
    if "://" in path:
        return None
    states = sorted(Path(path).glob("experiment_state-*.json"))  # named by each session's start time
    if not states:
        return None
    try:
        json.loads(states[-1].read_text())
    except (OSError, ValueError):
        return str(states[-1])
    return None


def _start_parent(tracker, spec: SweepSpec, sweep_id: str, code: dict, warm_trials, smoke_test: bool) -> None:
    """The sweep's parent run: its tags, the spec, the search space and the search settings."""
    search = spec.search
    tracker.start_sweep(
        name=sweep_id,
        tags={
            tracking.TAG_SWEEP_ID: sweep_id,
            tracking.TAG_STRATEGY: search.strategy,
            "tune_service.task": spec.task.type,
        }
        | code
        | tracking.ray_job_tags(),
        spec_yaml=spec.to_yaml(),
        search_space=spec.to_dict()["hyperparameters"],
        params={f"search.{k}": v for k, v in search.model_dump(mode="json").items()}
        | {"smoke_test": smoke_test, "warm_start_trials": len(warm_trials or [])},
        description=spec.description,
    )


def _parallel(spec: SweepSpec, storage: str, sweep_id: str) -> dict | None:
    """How a multi-worker trial runs under Ray Train; None for one worker."""
    res = spec.resources
    if res.workers == 1:
        return None
    return {
        "workers": res.workers,
        "resources_per_worker": resources.worker_bundle(res),
        "storage_path": f"{storage.rstrip('/')}/{sweep_id}",
        "keep_checkpoints": spec.mlflow.keep_checkpoints,
    }


def _storage(storage_path: str | None) -> str:
    """Tune's storage: the argument, else $TUNE_SERVICE_STORAGE_PATH, else ~/ray_results; a URI as given."""
    storage_path = storage_path or os.environ.get(STORAGE_ENV)
    if storage_path and "://" in storage_path:
        return storage_path
    return str(Path(storage_path or Path.home() / "ray_results").expanduser().resolve())


def _check_reach(uri: str) -> None:
    """Trials write to MLflow from their own nodes: a store on this machine's disk cannot span a cluster."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and tracking.is_local_store(uri):
        raise tracking.TrackingError(
            f"tracking URI {uri} is a store on this machine's disk, but the Ray cluster has {len(nodes)} nodes "
            "whose trials write to MLflow themselves: run an MLflow tracking server (see cluster/README.md) "
            "and pass its http(s) URI (--tracking-uri, MLFLOW_TRACKING_URI or mlflow.tracking_uri)"
        )


def _publish(spec: SweepSpec, result: SweepResult, tracker, histories, searched: list[str]) -> None:
    """Reports on the parent run and the best checkpoint in the Model Registry."""
    from . import reports

    if spec.mlflow.reports:
        try:
            tracker.log_figures(reports.figures(spec, histories))
        except Exception as exc:  # a report is never worth losing the sweep's record
            log.warning("reports not drawn: %s", exc)
    if spec.mlflow.register_model and spec.mlflow.log_checkpoints and result.best_run_id:
        flat = streaming.flatten(result.best_config or {})
        tags = {k: streaming.param_value(flat[k]) for k in searched if k in flat}
        tags |= {
            tracking.TAG_SWEEP_ID: result.sweep_id,
            "tune_service.task": spec.task.type,
            "tune_service.config": streaming.param_value(result.best_config),
            result.metric: str(result.best_value),
        }
        try:
            result.model_version = tracker.register_best(
                spec.name,
                result.best_run_id,
                tags,
                description=f"best of sweep {result.sweep_id}: {result.metric}={result.best_value:.4g}",
            )
        except tracking.TrackingError as exc:
            log.warning("best model not registered: %s", exc)


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


def _summarize(grid, spec: SweepSpec, sweep_id: str, uri: str, tracker, storage: str, wall: float):
    """The :class:`SweepResult`, and each trial's history for the reports."""
    from search_spaces._space import unflatten_points

    from .reports import TrialHistory

    metric, mode = spec.search.metric, spec.search.mode
    objectives = spec.search.all_objectives
    runs = tracker.child_runs()
    pbt = spec.search.scheduler == "pbt"
    trials: list[TrialResult] = []
    histories: list[TrialHistory] = []
    unstarted = 0
    for r in grid:
        if r.config is None:  # created, but a budget ended the sweep before it ran: nothing to report
            unstarted += 1
            continue
        # the trial's folder is named by its id (trial_dirname_creator). Under PBT its last result is not
        # always its own: a trial restarted from another's final checkpoint ends without reporting, and
        # Tune keeps the donor's result (id and config) as its last.
        trial_id = Path(r.path).name
        config = r.config
        df = r.metrics_dataframe
        steps = None if df is None else df.get("epoch", df.get("training_iteration"))  # each result's epoch
        best_row: dict[str, Any] = {}
        if df is not None and metric in df and df[metric].notna().any():
            idx = df[metric].idxmax() if mode == "max" else df[metric].idxmin()
            row = df.loc[idx].to_dict()
            best_row = tracking.numeric_metrics(row)
            if pbt:  # the hyperparameters its best epoch trained with: PBT changes them as it goes
                # a config/... column per setting; NaN where a null met numbers in the column
                prefix = "config/"
                point = {k.removeprefix(prefix).replace("/", "."): v for k, v in row.items() if k.startswith(prefix)}
                config = unflatten_points([{k: None if v != v else v for k, v in point.items()}])[0]
        ckpt = r.get_best_checkpoint(metric, mode) if r.best_checkpoints else None
        ckpt_path = ckpt.path if ckpt else None
        if ckpt_path is None and best_row and CHECKPOINT_PATH in df:  # a multi-worker trial: Ray Train's
            ckpt_path = df.loc[idx, CHECKPOINT_PATH]
        trials.append(
            TrialResult(
                trial_id=trial_id,
                status="ERROR" if r.error else "TERMINATED",
                config=config,
                metrics={k: v for k, v in best_row.items() if not k.startswith("config/")},
                # an epoch a retried trial trained again (its checkpoint not yet recorded) counts once
                epochs=0 if steps is None else int(steps.nunique()),
                checkpoint=ckpt_path,
                mlflow_run_id=runs[trial_id].info.run_id if trial_id in runs else None,
                error=None if r.error is None else f"{type(r.error).__name__}: {r.error}",
            )
        )
        if df is not None and metric in df and best_row:
            curve = {int(e): float(v) for e, v in zip(steps, df[metric]) if v == v}
            histories.append(TrialHistory(trial_id, config, [best_row.get(m) for m, _ in objectives], curve))
    scored = [t for t in trials if metric in t.metrics]
    best = None
    if scored:
        best = (max if mode == "max" else min)(scored, key=lambda t: t.metrics[metric])
    if unstarted:
        log.info("%d trials were created but never ran before the sweep ended", unstarted)
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
        storage_path=f"{storage.rstrip('/')}/{sweep_id}",
        wall_time_s=wall,
        trials=trials,
        objectives=[list(o) for o in objectives],
        pareto_front=front,
        stopped_by=stopped_by,
    ), histories
