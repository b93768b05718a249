"""The driver: a sweep spec in, a finished sweep (and its MLflow runs) out.

:func:`run_sweep` reads as its steps: validate everything (:mod:`.validate`), build
the search (``search_spaces.build``), then inside a Ray session (started or joined,
left as found) and the sweep's MLflow parent run (opened, or reopened on resume;
ended FAILED or KILLED on an error or interrupt), build the ``Tuner``, fit it, and
summarize. :func:`resume_sweep` is the spec from MLflow, then the same steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ray.tune.logger import JsonLoggerCallback
from ray.tune.stopper import Stopper

import search_spaces
from search_spaces import searched
from trainables.manifest import TASKS as TASK_MANIFESTS

from . import confirm, console, refit, resources, shared_data, summary, tracking, trial, validate
from .jobs import sweep_id_for
from .result import SweepInterrupted, SweepResult
from .spec import SpecError, SweepSpec, smoke_spec
from .tracking import writers

log = logging.getLogger(__name__)
#: Tune's storage when none is passed: a cluster sets it once on every node (cluster/README.md)
STORAGE_ENV = "TUNE_SERVICE_STORAGE_PATH"
_NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


@dataclass(frozen=True)
class _Sweep:
    """What the steps of one run of a sweep share."""

    spec: SweepSpec
    sweep_id: str
    tracking_uri: str
    storage: str  # Tune's storage root; the sweep's experiment is storage/sweep_id
    searched: tuple[str, ...]  # the searched hyperparameters' dotted names
    resumed_parent: str | None = None  # the parent run a resumed sweep continues
    prepared: Mapping[str, Any] = field(default_factory=dict)  # each trial task's prepared data, in Ray's object store
    datasets: tuple = ()  # the rows the trials learn from and are validated on, as MLflow dataset inputs

    @property
    def experiment_path(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.sweep_id}"


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
    spec = validate.load_spec(spec)
    if smoke_test:
        spec = validate.load_spec(smoke_spec(spec))
    uri = tracking.resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    warm_trials, prepared, datasets = _checked(spec, uri, address, num_cpus, resuming=_resume_parent is not None)
    plan = search_spaces.build(spec, warm_trials)
    sweep = _Sweep(
        spec, sweep_id or sweep_id_for(spec.name), uri, _storage(storage_path),
        tuple(searched(spec.hyperparameters)), _resume_parent,
    )  # fmt: skip
    with _ray_session(address, num_cpus):
        validate.check_cluster(spec, uri)
        sweep = dataclasses.replace(sweep, prepared=shared_data.put(prepared), datasets=datasets)
        del prepared  # the driver keeps no copy of the data: the object store holds it
        with _parent_run(sweep, warm_trials, smoke_test) as tracker:
            if verbose:
                print(_resume_hint(sweep), flush=True)
            tuner = _tuner(sweep, plan, tracker, verbose)
            started = time.time()
            grid = _fit(tuner, sweep.sweep_id)
            return _finish(sweep, grid, tracker, time.time() - started, verbose)


def _checked(spec: SweepSpec, uri: str, address: str | None, num_cpus: int | None, resuming: bool) -> tuple:
    """Every check that can run before Ray starts (:mod:`.validate`, steps 2 to 5): the warm start's trials,
    the data as the checks loaded and prepared it (:func:`.shared_data.prepare`), and the rows described for
    MLflow."""
    joining = address or os.environ.get("RAY_ADDRESS")  # set for a Ray Job's driver
    validate.check_reachable(uri, None if _ray_running() else joining)
    prepared = shared_data.prepare(spec, validate.check_task(spec))
    datasets = _datasets(spec)
    warm_trials = None if resuming else validate.warm_trials(spec, uri)  # a resumed searcher has its own state
    if not (joining or _ray_running()):
        validate.check_local_resources(spec, num_cpus)
    return warm_trials, prepared, datasets


def _datasets(spec: SweepSpec) -> tuple:
    """The rows the trials learn from and are validated on, described once for MLflow (source, digest, schema)."""
    module = TASK_MANIFESTS[spec.task.type].trainable()
    try:
        return tuple(
            writers.dataset_inputs(module.Adapter.rows_used(spec.trial_task()), spec.task.dataset.model_dump())
        )
    except Exception as exc:  # a record of the data is never worth the sweep
        log.warning("the sweep's datasets are not logged: %s", exc)
        return ()


def _ray_running() -> bool:
    import ray

    return ray.is_initialized()


@contextlib.contextmanager
def _ray_session(address: str | None, num_cpus: int | None) -> Iterator[None]:
    """Ray as the sweep finds it: joined if running, else connected to ``address``, else started in-process;
    what this starts, it stops."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")  # set for a Ray Job's driver
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # "local": a new in-process Ray, even when a cluster started with `ray start` runs on this machine
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _parent_run(sweep: _Sweep, warm_trials: list | None, smoke_test: bool) -> Iterator[tracking.SweepTracker]:
    """The sweep's MLflow parent run: opened (or reopened on resume), and on an error or an interrupt its
    runs ended FAILED or KILLED once the writers have landed what they hold."""
    spec = sweep.spec
    tracker = tracking.SweepTracker(sweep.tracking_uri, spec.mlflow.experiment or spec.name)
    if sweep.resumed_parent:
        tracker.reopen_sweep(sweep.resumed_parent)
    else:
        tracker.start_sweep(
            name=sweep.sweep_id,
            tags=_sweep_tags(sweep) | tracking.ray_job_tags(),
            spec_yaml=spec.to_yaml(),
            search_space=spec.to_dict()["hyperparameters"],
            params={f"search.{k}": v for k, v in spec.search.model_dump(mode="json").items()}
            | {"smoke_test": smoke_test, "warm_start_trials": len(warm_trials or [])},
            description=spec.description,
        )
    try:
        yield tracker
    except BaseException as exc:
        # Ctrl-C, or SIGTERM (a stopped Ray Job, whose driver has until SIGKILL): the user ended it.
        _end_open_runs(
            tracker, sweep.sweep_id, "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED"
        )
        raise


def _end_open_runs(tracker, sweep_id: str, status: str) -> None:
    """The runs are ended first, then again after the flush, for a run a writer opened meanwhile."""
    try:
        tracker.fail_open_runs(status)
    except Exception as end_exc:  # the server away: the flush still lands what the writers hold
        log.warning("MLflow runs not ended before the flush: %s", end_exc)
    try:
        writers.flush_writers(sweep_id, 30)
    except Exception as flush_exc:  # the sweep's own error matters more
        log.warning("MLflow writers not flushed: %s", flush_exc)
    tracker.fail_open_runs(status)


def _sweep_tags(sweep: _Sweep) -> dict[str, str]:
    return {
        tracking.TAG_SWEEP_ID: sweep.sweep_id,
        tracking.TAG_STRATEGY: sweep.spec.search.strategy,
        tracking.TAG_TASK: sweep.spec.task.type,
    } | tracking.code_tags()


def _resume_hint(sweep: _Sweep) -> str:
    return (
        f"sweep {sweep.sweep_id}{' resumed' if sweep.resumed_parent else ''}; if it stops, finish it with:\n"
        f"  tune-service resume {sweep.sweep_id} --tracking-uri {sweep.tracking_uri} --storage-path {sweep.storage}"
    )


def _tuner(sweep: _Sweep, plan, tracker, verbose: int):
    """The ``Tuner`` around the task's trainable (a new one, or Tune's saved state for a resumed sweep)."""
    from ray import tune

    trainable = tune.with_resources(_trainable(sweep, tracker), resources.trial_resources(sweep.spec.resources))
    if sweep.resumed_parent:  # Tune's experiment state: finished trials stay, unfinished ones continue
        return tune.Tuner.restore(
            sweep.experiment_path, trainable, resume_unfinished=True, resume_errored=True, param_space=plan.param_space
        )
    search = sweep.spec.search
    return tune.Tuner(
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
        run_config=_run_config(sweep, plan, verbose),
    )


def _trainable(sweep: _Sweep, tracker, task: dict | None = None):
    """The trial function with what every trial shares bound to it; the writers started on every node.

    ``task``: the task section the trials get; default, the spec's as trials receive it (``trial_task``).
    """
    import ray
    from ray import tune

    spec = sweep.spec
    trial_tracking = writers.TrialTracking(
        tracking_uri=sweep.tracking_uri,
        experiment_id=tracker.experiment_id,
        parent_run_id=tracker.parent_run_id,
        sweep_id=sweep.sweep_id,
        metric=spec.search.metric,
        mode=spec.search.mode,
        searched=sweep.searched,
        keep_checkpoints=spec.mlflow.keep_checkpoints,
        log_checkpoints=spec.mlflow.log_checkpoints,
        tags={tracking.TAG_SWEEP_ID: sweep.sweep_id, tracking.TAG_TASK: spec.task.type, **tracking.code_tags()},
        credentials=ray.put(writers.credentials_from_env()),
        datasets=sweep.datasets,
    )
    writers.start_writers(trial_tracking)
    return tune.with_parameters(
        trial.trainable,
        task_type=spec.task.type,
        task=task if task is not None else spec.trial_task(),
        run={
            "metric": spec.search.metric,
            "mode": spec.search.mode,
            "num_threads": max(1, int(spec.resources.cpu)),
            "precision": spec.resources.precision,
            "compile": spec.resources.compile,
        },
        tracking=trial_tracking,
        parallel=_parallel(spec, sweep.experiment_path),
        prepared=dict(sweep.prepared),
    )


def _run_config(sweep: _Sweep, plan, verbose: int):
    from ray import tune

    search = sweep.spec.search
    pbt = search.scheduler == "pbt"
    # Tune's loggers write each trial's files on the driver, and Tune copies them all to storage at each
    # experiment snapshot: a cost that grows with the trial count. result.json alone (what
    # Result.metrics_dataframe reads); no progress.csv, no TensorBoard files: MLflow has the curves.
    callbacks = [writers.TrialStatusCallback(sweep.sweep_id), _ResultLog()]
    if verbose:
        total = search.num_samples * _grid_size(plan.param_space)
        callbacks.append(console.Progress(search.metric, search.mode, total, sweep.searched))
    return tune.RunConfig(
        name=sweep.sweep_id,
        storage_path=sweep.storage,
        callbacks=callbacks,
        verbose=0,  # console.Progress prints instead
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
    )


def _grid_size(node) -> int:
    """Points of the grids in a param space (1 without one): the trials per num_samples."""
    if isinstance(node, dict) and set(node) == {"grid_search"}:
        return len(node["grid_search"])
    size = 1
    for value in node.values() if isinstance(node, dict) else ():
        size *= _grid_size(value)
    return size


def _fit(tuner, sweep_id: str):
    """``tuner.fit()``; :class:`SweepInterrupted` when a Ctrl-C ended it.

    On SIGINT Tune stops its trials, saves its state and returns as from a finished run, having put
    back the SIGINT handler it found (so a second Ctrl-C is Python's): that handler back in place
    is how an interrupted fit is told from a finished one. A finished one leaves Tune's handler
    installed, which is put back here.
    """
    watching = threading.current_thread() is threading.main_thread() and not int(
        os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0")
    )
    before = signal.getsignal(signal.SIGINT) if watching else None
    with _no_default_loggers():
        grid = tuner.fit()
    if watching and signal.getsignal(signal.SIGINT) is before:
        raise SweepInterrupted(sweep_id)
    if watching:
        signal.signal(signal.SIGINT, before)
    return grid


def _finish(sweep: _Sweep, grid, tracker, wall: float, verbose: int) -> SweepResult:
    """The last writes landed, the result summarized, the reports and the registry, the parent run ended.

    How long each step took goes on the parent run (``end/STEP_s``): on thousands of trials, the end is
    worth watching."""
    spec = sweep.spec
    clock = _Laps()
    repeats = _confirm(sweep, grid, tracker, verbose) if spec.search.confirm else None
    clock.lap("confirm")
    writes = writers.flush_writers(sweep.sweep_id, spec.mlflow.flush_timeout_s)
    tracker.log_metrics({f"tracking/{k}": v for k, v in writes.items()})
    if writes["failed"]:
        log.warning("MLflow refused %d trial writes (see the writers' Ray worker logs)", writes["failed"])
    clock.lap("writes")
    result, histories = summary.summarize(grid, spec, sweep.sweep_id, sweep.tracking_uri, tracker, sweep.storage, wall)
    if repeats is not None:
        confirm.merge(result, repeats, tracker)
    clock.lap("summary")
    if spec.search.cross_validation is not None and spec.search.cross_validation.refit:
        _refit(sweep, result, tracker, verbose)
    errors = _start_error_analysis(spec, result, sweep.prepared)  # its Ray task runs beside the steps below
    if spec.task.dataset.test_split is not None:
        _score_on_test(spec, result, tracker, sweep.prepared)
    clock.lap("best_trials")
    tracker.close_trial_runs({t.trial_id: "FAILED" if t.status == "ERROR" else "FINISHED" for t in result.trials})
    clock.lap("close_runs")
    _report(spec, tracker, histories)
    clock.lap("reports")
    if spec.mlflow.register_model and result.best_run_id:
        _register(sweep, result, tracker)
    clock.lap("registry")
    _log_error_analysis(errors, tracker)
    clock.lap("error_analysis")
    tracker.log_metrics(clock.laps)
    tracker.finish_sweep(
        best_trial_id=result.best_trial_id,
        best_metrics=result.best_metrics,
        best_config=result.best_config,
        trials_table=console.trials_table(result, sweep.searched),
        pareto=console.pareto_record(result) if len(result.objectives) > 1 else None,
        stopped_by=result.stopped_by,
    )
    if verbose:
        print(console.summary(result, sweep.searched), file=sys.stdout, flush=True)
    return result


class _Laps:
    """Seconds since the last lap, by step (``end/STEP_s``)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[f"end/{step}_s"] = round(now - self._last, 3)
        self._last = now


def _confirm(sweep: _Sweep, grid, tracker, verbose: int) -> list:
    """``search.confirm``: the finalists' configs trained again with new seeds, in a Tuner of their own."""
    spec = sweep.spec
    first, _ = summary.summarize(grid, spec, sweep.sweep_id, sweep.tracking_uri, tracker, sweep.storage, 0.0)
    points = confirm.configs(spec, first)
    if not points:
        return []
    if verbose:
        print(f"Confirming the {spec.search.confirm.top_k} best configs with {spec.search.confirm.seeds} new seeds "
              f"each: {len(points)} trials", flush=True)  # fmt: skip
    return _train_again(sweep, tracker, points, "confirm", spec.trial_task(), verbose)


def _refit(sweep: _Sweep, result: SweepResult, tracker, verbose: int) -> None:
    """``cross_validation.refit``: the winner's config on every training row; its model becomes the best."""
    point = refit.config(result)
    if point is None:
        return
    if verbose:
        print(f"Refitting the winner ({result.best_trial_id}) on every training row for {point['epochs']} epochs",
              flush=True)  # fmt: skip
    ranked = dataclasses.replace(sweep, spec=refit.ranked_by_epoch(sweep.spec))
    (refitted,) = _train_again(ranked, tracker, [point], "refit", refit.task(sweep.spec, result), verbose)
    writers.flush_writers(sweep.sweep_id, sweep.spec.mlflow.flush_timeout_s)
    refitted.config = confirm.unwrapped(refitted.config)
    refit.adopt(result, refitted)


def _train_again(sweep: _Sweep, tracker, points: list[dict], name: str, task: dict, verbose: int) -> list:
    """Configs chosen after the search, each a trial of a Tuner of its own (``SWEEP-NAME``) on ``task``."""
    from ray import tune

    spec = sweep.spec
    plan = search_spaces.SearchPlan(confirm.param_space(points), None, None)
    tuner = tune.Tuner(
        tune.with_resources(_trainable(sweep, tracker, task), resources.trial_resources(spec.resources)),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            metric=spec.search.metric,
            mode=spec.search.mode,
            max_concurrent_trials=spec.search.max_concurrent_trials,
            trial_dirname_creator=lambda t: t.trial_id,
            reuse_actors=spec.search.reuse_actors,
        ),  # fmt: skip
        run_config=dataclasses.replace(_run_config(sweep, plan, verbose), name=f"{sweep.sweep_id}-{name}"),
    )
    again, _ = summary.summarize(
        _fit(tuner, sweep.sweep_id), spec, sweep.sweep_id, sweep.tracking_uri, tracker, sweep.storage, 0.0
    )
    return again.trials


def _score_on_test(spec: SweepSpec, result: SweepResult, tracker, prepared: Mapping) -> None:
    from . import held_out

    try:
        held_out.score_on_test(spec, result, tracker, prepared)
    except Exception as exc:  # the sweep's record is worth more than its test scores
        log.warning("the best trials were not scored on the test split: %s", exc)


def _start_error_analysis(spec: SweepSpec, result: SweepResult, prepared: Mapping):
    """The best trial's error analysis started (``mlflow.error_analysis``, a classifier's), or None."""
    from . import error_analysis

    if not (spec.mlflow.error_analysis and TASK_MANIFESTS[spec.task.type].classifies):
        return None
    try:
        return error_analysis.start(spec, result, prepared)
    except Exception as exc:  # the sweep's record is worth more than its error analysis
        log.warning("no error analysis of the best trial: %s", exc)
        return None


def _log_error_analysis(pending, tracker) -> None:
    from . import error_analysis

    if pending is None:
        return
    try:
        error_analysis.log(pending, tracker.client)
    except Exception as exc:  # the sweep's record is worth more than its error analysis
        log.warning("no error analysis of the best trial: %s", exc)


def _report(spec: SweepSpec, tracker, histories) -> None:
    """The report figures on the parent run (``mlflow.reports``)."""
    from . import figures

    if spec.mlflow.reports:
        try:
            tracker.log_figures(figures.figures(spec, histories))
        except Exception as exc:  # a report is never worth losing the sweep's record
            log.warning("reports not drawn: %s", exc)


def _register(sweep: _Sweep, result: SweepResult, tracker) -> None:
    """The best checkpoint logged as an MLflow Model of its run, registered, and promoted if it earns it."""
    import ray

    from . import logged_model, registry

    spec, searched = sweep.spec, sweep.searched
    flat = search_spaces.flatten(result.best_config or {})
    tags = {k: tracking.param_value(flat[k]) for k in searched if k in flat}
    tags |= {
        tracking.TAG_SWEEP_ID: result.sweep_id,
        tracking.TAG_TASK: spec.task.type,
        tracking.TAG_CONFIG: tracking.param_value(result.best_config),
        result.metric: str(result.best_value),
        **{k: str(v) for k, v in result.test_metrics.items()},  # scored on rows no trial saw
    }
    adapter = getattr(spec.task, "adapter", None)
    if adapter is not None:  # the version holds the adapter and what trained in full: it says which base it needs
        tags |= {tracking.TAG_ADAPTER: adapter.type, tracking.TAG_BASE_MODEL: logged_model.base_model(spec, result)}
    best = logged_model.winner(result)
    target = tracking.ModelTarget(
        tracking_uri=result.tracking_uri, experiment_id=result.experiment_id, run_id=result.best_run_id,
        step=best.epochs if best else 0, model_type=spec.task.type, tags=tags,
        credentials=ray.put(writers.credentials_from_env()),
    )  # fmt: skip
    try:
        result.model_id = logged_model.log_winner(spec, result, target, sweep.prepared)
        registry.publish(spec, result, tracker, result.model_id, tags)
    except Exception as exc:  # the sweep's record is worth more than its registered model
        log.warning("best model not logged or registered: %s", exc)


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
    from ray import tune

    uri = tracking.resolve_tracking_uri(tracking_uri, None)
    tracking.check_server(uri)
    parent_run_id, spec_yaml = tracking.sweep_spec(uri, sweep_id)
    spec = validate.load_spec(yaml.safe_load(spec_yaml))
    path = f"{_storage(storage_path).rstrip('/')}/{sweep_id}"
    if not tune.Tuner.can_restore(path):
        raise SpecError([("storage_path", f"no Tune experiment state of sweep {sweep_id!r} at {path}: give the "
                                          "--storage-path the sweep ran with")])  # fmt: skip
    damaged = _damaged_state(path)
    if damaged:
        raise SpecError([("storage_path", f"Tune's experiment state of sweep {sweep_id!r}, {damaged}, is empty or "
                          "cut short: the driver was killed while Tune was writing it, and the sweep cannot continue "
                          "from it. Its MLflow runs keep every epoch logged: a new sweep can start from them with "
                          f"search.warm_start (parent_run_id: {parent_run_id})")])  # fmt: skip
    return run_sweep(
        spec,
        tracking_uri=uri,
        address=address,
        storage_path=storage_path,
        num_cpus=num_cpus,
        verbose=verbose,
        sweep_id=sweep_id,
        _resume_parent=parent_run_id,
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


def _parallel(spec: SweepSpec, experiment_path: str) -> dict | None:
    """How a multi-worker trial runs under Ray Train; None for one worker."""
    res = spec.resources
    if res.workers == 1:
        return None
    return {
        "workers": res.workers,
        "resources_per_worker": resources.worker_bundle(res),
        "storage_path": experiment_path,
        "keep_checkpoints": spec.mlflow.keep_checkpoints,
    }


def _storage(storage_path: str | None) -> str:
    """Tune's storage: the argument, else $TUNE_SERVICE_STORAGE_PATH, else ~/ray_results; a URI as given."""
    storage_path = storage_path or os.environ.get(STORAGE_ENV)
    if storage_path and "://" in storage_path:
        return storage_path
    return str(Path(storage_path or Path.home() / "ray_results").expanduser().resolve())


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
