"""The Ray side of a sweep: the session (joined, connected or started), and the ``Tuner`` around the trials.

What the driver and the end of a sweep (:mod:`.end`) share sits here, below both: :class:`Sweep`, the
state of one run of a sweep, and the Tuner they build from it: the search's (:func:`search_tuner`), or one for
configs chosen after it (:func:`train_again`, for ``confirm`` and ``refit``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune.logger import JsonLoggerCallback
from ray.tune.stopper import Stopper

import search_spaces

from . import console, resources, summary, tracking, trial
from .result import SweepInterrupted
from .spec import SweepSpec
from .tracking import writers

_NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


@dataclass(frozen=True)
class Sweep:
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


def ray_running() -> bool:
    import ray

    return ray.is_initialized()


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None) -> Iterator[None]:
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


def search_tuner(sweep: Sweep, plan, tracker, verbose: int):
    """The ``Tuner`` around the task's trainable (a new one, or Tune's saved state for a resumed sweep)."""
    from ray import tune

    trainable = tune.with_resources(trial_function(sweep, tracker), resources.trial_resources(sweep.spec.resources))
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
        run_config=run_config(sweep, plan, verbose),
    )


def trial_function(sweep: Sweep, tracker, task: dict | None = None):
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
        parallel=data_parallel(spec, sweep.experiment_path),
        prepared=dict(sweep.prepared),
    )


def run_config(sweep: Sweep, plan, verbose: int):
    from ray import tune

    search = sweep.spec.search
    pbt = search.scheduler == "pbt"
    # Tune's loggers write each trial's files on the driver, and Tune copies them all to storage at each
    # experiment snapshot: a cost that grows with the trial count. result.json alone (what
    # Result.metrics_dataframe reads); no progress.csv, no TensorBoard files: MLflow has the curves.
    callbacks = [writers.TrialStatusCallback(sweep.sweep_id), _ResultLog()]
    if verbose:
        total = search.num_samples * grid_size(plan.param_space)
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


def grid_size(node) -> int:
    """Points of the grids in a param space (1 without one): the trials per num_samples."""
    if isinstance(node, dict) and set(node) == {"grid_search"}:
        return len(node["grid_search"])
    size = 1
    for value in node.values() if isinstance(node, dict) else ():
        size *= grid_size(value)
    return size


def fit(tuner, sweep_id: str):
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


def train_again(sweep: Sweep, tracker, param_space: dict, name: str, task: dict, verbose: int) -> list:
    """Configs chosen after the search (``param_space``, a grid of them), each a trial of a Tuner of its own
    (``SWEEP-NAME``) on ``task``."""
    from ray import tune

    spec = sweep.spec
    plan = search_spaces.SearchPlan(param_space, None, None)
    again_tuner = tune.Tuner(
        tune.with_resources(trial_function(sweep, tracker, task), resources.trial_resources(spec.resources)),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            metric=spec.search.metric,
            mode=spec.search.mode,
            max_concurrent_trials=spec.search.max_concurrent_trials,
            trial_dirname_creator=lambda t: t.trial_id,
            reuse_actors=spec.search.reuse_actors,
        ),
        run_config=dataclasses.replace(run_config(sweep, plan, verbose), name=f"{sweep.sweep_id}-{name}"),
    )
    again, _ = summary.summarize(
        fit(again_tuner, sweep.sweep_id), spec, sweep.sweep_id, sweep.tracking_uri, tracker, sweep.storage, 0.0
    )
    return again.trials


def data_parallel(spec: SweepSpec, experiment_path: str) -> dict | None:
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
