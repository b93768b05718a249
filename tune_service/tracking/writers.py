"""Trials stream to MLflow from whichever Ray node runs them.

Each node gets one writer (:class:`TrialWriter`, a detached Ray actor named after
the sweep and the node, created by the first trial that lands there). A trial
hands it every epoch's metrics and a staged copy of every checkpoint, and
trains on without waiting on MLflow. The writer does the MLflow calls one at a
time, in order, retrying each until the tracking server answers: the actor's
task queue is the buffer while the server is away, and it outlives the trials
(a scheduler stopping a trial does not drop its last epoch). The driver flushes
and ends the writers when the sweep ends.

What lands in MLflow, per trial:

- one child run under the sweep's parent run, found again by its trial id when
  the trial resumes (so a resumed or perturbed trial continues its run);
- every epoch's metrics with ``step = epoch``, exactly once: steps already in
  the run (an epoch replayed after a restore) are not logged again, unless PBT
  continued the trial under new hyperparameters (from another trial's
  checkpoint): the epochs it trains from there are new results, logged even at
  steps logged before, and their checkpoints replace the old ones of the same step;
- the top ``k`` checkpoints by the sweep's metric under ``checkpoints/epoch-NNN``
  (``tune_service.best_checkpoint`` names the best); a checkpoint that falls out
  of the top ``k`` is deleted;
- tags for the trial id, the node that ran it and the code version;
- the rows it learns from and is validated on, as MLflow dataset inputs (source, digest, schema and
  use: ``training`` or ``validation``), which the runs table's Dataset column shows.

Artifacts go through the tracking server (``mlflow server --serve-artifacts``),
so nodes need no shared filesystem. Credentials for the server reach the writers
through Ray's object store, never through params, tags, logs or runtime_env.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from search_spaces import flatten

from ._names import (
    CHECKPOINTS,
    CREDENTIAL_VARS,
    FAILED_ATTEMPTS,
    ORIGINS,
    PARENT_RUN,
    TAG_BEST_CHECKPOINT,
    TAG_CHECKPOINTS,
    TAG_FAILED_ATTEMPTS,
    TAG_NODE,
    TAG_NODE_ID,
    TAG_TRIAL_ID,
    numeric_metrics,
    param_from,
    param_value,
)
from ._target import TrackingError

log = logging.getLogger(__name__)

NAMESPACE = "tune-service"  # the Ray namespace of the writers
WRITER_PREFIX = "mlflow-writer"


class Secret:
    """Credentials that print as ``***``: they travel by object store, never by text."""

    def __init__(self, values: Mapping[str, str]):
        self._values = dict(values)

    def reveal(self) -> dict[str, str]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Secret({', '.join(f'{k}=***' for k in self._values)})"

    __str__ = __repr__


def credentials_from_env() -> Secret:
    return Secret({k: os.environ[k] for k in CREDENTIAL_VARS if os.environ.get(k)})


@dataclass(frozen=True)
class TrialTracking:
    """What a trial needs to stream to MLflow; bound to the trainable with ``tune.with_parameters``."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    sweep_id: str
    metric: str
    mode: str
    searched: tuple[str, ...]
    keep_checkpoints: int = 1
    log_checkpoints: bool = True
    tags: Mapping[str, str] = field(default_factory=dict)
    credentials: Any = None  # an ObjectRef to a Secret (put by the driver)
    datasets: tuple = ()  # the rows trials learn from and are validated on, as MLflow DatasetInputs


def writer_name(sweep_id: str, node_id: str) -> str:
    return f"{WRITER_PREFIX}/{sweep_id}/{node_id}"


def _transient(exc: Exception) -> bool:
    """Whether a failed MLflow call is worth retrying (server away, overloaded, store busy)."""
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(exc, RestException):
        status = exc.get_http_status_code()
        return status >= 500 or status == 429
    if isinstance(exc, MlflowException):
        # connection failures come wrapped as MlflowException without a REST status;
        # a busy SQLite store raises INTERNAL_ERROR
        return exc.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))


class TrialWriter:
    """One node's MLflow writer (run as a Ray actor): every call retried until it lands.

    Calls are executed one at a time in the order they arrive, so a trial's
    metrics land in epoch order and a checkpoint after the metric that ranked it.
    """

    def __init__(self, tracking: TrialTracking, retry_cap_s: float = 10.0):
        import ray

        if tracking.credentials is not None:
            os.environ.update(ray.get(tracking.credentials).reveal())
        # fail fast inside the client: retrying is done here, with the queue behind it
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "30"
        from mlflow.tracking import MlflowClient

        self.t = tracking
        self.client = MlflowClient(tracking_uri=tracking.tracking_uri)
        self.retry_cap_s = retry_cap_s
        self.runs: dict[str, _RunState] = {}
        self.stats = {"retries": 0, "metric_batches": 0, "skipped_steps": 0, "checkpoints": 0, "failed": 0}
        self.outage_since: float | None = None

    # -- the calls trials make ------------------------------------------------

    def open_trial(self, trial_id: str, config: dict, node: str, node_id: str, run_name: str) -> str:
        """Find the trial's run (a resumed trial) or create it; returns the run id."""
        state = self.runs.get(trial_id)
        if state is None:
            state = self._retry(f"open run of {trial_id}", self._find_or_create, trial_id, config, run_name)
            self.runs[trial_id] = state
        else:
            state.note_config(flatten(config))
        for key, value in ((TAG_NODE, node), (TAG_NODE_ID, node_id)):  # where it runs now (PBT may move it)
            self._retry(f"tag node of {trial_id}", self.client.set_tag, state.run_id, key, value)
        return state.run_id

    def log_epoch(self, trial_id: str, step: int, metrics: dict, timestamp_ms: int) -> bool:
        """Log one epoch's metrics (and hyperparameters changed since the last epoch). False if already logged."""
        from mlflow.entities import Metric

        state = self.runs[trial_id]
        if step in state.steps:
            self.stats["skipped_steps"] += 1
            return False
        batch = [Metric(k, v, timestamp_ms, step) for k, v in numeric_metrics(metrics).items()]
        batch += [Metric(f"hp/{k}", float(v), timestamp_ms, step) for k, v in state.pending_hp.items()]
        for i in range(0, len(batch), 1000):  # MLflow caps a batch at 1000 metrics
            self._retry(f"metrics of {trial_id} epoch {step}", self.client.log_batch, state.run_id, batch[i : i + 1000])
        state.pending_hp.clear()
        state.steps.add(step)
        self.stats["metric_batches"] += 1
        return True

    def log_checkpoint(self, trial_id: str, step: int, score: float | None, staged: str) -> str | None:
        """Keep a staged checkpoint if it ranks in the top k; returns its artifact path or None."""
        state = self.runs[trial_id]
        try:
            path = f"{CHECKPOINTS}/epoch-{step:03d}"
            stale = path in state.stale  # the same step on a new branch: the kept folder holds another model
            if (path in state.kept and not stale) or score is None or not math.isfinite(score):
                return None
            state.stale.discard(path)
            # best first; on a tie the later epoch ranks first, as in Ray Tune's checkpoint manager
            sign = 1 if self.t.mode == "max" else -1
            others = [(p, v) for p, v in state.kept.items() if p != path]
            ranked = sorted([*others, (path, score)], key=lambda kv: (sign * kv[1], kv[0]), reverse=True)
            keep = dict(ranked[: self.t.keep_checkpoints])
            ranks = path in keep
            if ranks or stale:  # the top k changes: this one joins it, or the stale folder leaves it
                run_id = state.run_id
                if ranks:  # over a stale folder of the same step, its files replaced
                    self._retry(
                        f"checkpoint of {trial_id} epoch {step}", self.client.log_artifacts, run_id, staged, path
                    )
                for old in [p for p in state.kept if p not in keep]:
                    self._retry(f"delete {old} of {trial_id}", self._delete_artifacts, run_id, old)
                state.kept = keep
                tags = {TAG_CHECKPOINTS: json.dumps(keep), TAG_BEST_CHECKPOINT: ranked[0][0]}
                for k, v in tags.items():
                    self._retry(f"checkpoint tags of {trial_id}", self.client.set_tag, run_id, k, v)
            if not ranks:
                return None
            self.stats["checkpoints"] += 1
            return path
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def log_inputs(self, trial_id: str, inputs: list) -> None:
        """The trial's datasets (``mlflow.entities.DatasetInput``) on its run; one already there is not repeated."""
        state = self.runs.get(trial_id)
        if state is not None:
            self._retry(f"datasets of {trial_id}", self.client.log_inputs, state.run_id, inputs)

    def finish_trial(self, trial_id: str, status: str, end_time_ms: int) -> None:
        state = self.runs.get(trial_id)
        if state is not None:
            self._retry(f"end run of {trial_id}", self.client.set_terminated, state.run_id, status, end_time_ms)

    def note_failure(self, trial_id: str, attempt: int, error: str, timestamp_ms: int) -> None:
        """Record a failed attempt of a trial: a ``failed_attempts`` step, a tag, the error text."""
        from mlflow.entities import Metric, ViewType

        state = self.runs.get(trial_id)
        if state is not None:
            run_id = state.run_id
        else:  # the trial ran on another node, maybe one lost with its writer: find the run by its tags
            query = f"tags.`{PARENT_RUN}` = '{self.t.parent_run_id}' and tags.`{TAG_TRIAL_ID}` = '{trial_id}'"
            found = self._retry(
                f"run of {trial_id}", self.client.search_runs, [self.t.experiment_id], query, ViewType.ALL, 1
            )
            if not found:  # the attempt failed before its run was created: Tune's error file has it
                return
            run_id = found[0].info.run_id
        metric = Metric(FAILED_ATTEMPTS, float(attempt), timestamp_ms, attempt)
        self._retry(f"failure of {trial_id}", self.client.log_batch, run_id, [metric])
        self._retry(f"failure tag of {trial_id}", self.client.set_tag, run_id, TAG_FAILED_ATTEMPTS, str(attempt))
        self._retry(f"error of {trial_id}", self.client.log_text, run_id, error, f"errors/attempt-{attempt}.txt")

    def flush(self) -> dict:
        """Returns once every call that arrived before it has landed: the writer's counters."""
        return dict(self.stats)

    # -- inside ------------------------------------------------------------------

    def _find_or_create(self, trial_id: str, config: dict, run_name: str) -> _RunState:
        query = f"tags.`{PARENT_RUN}` = '{self.t.parent_run_id}' and tags.`{TAG_TRIAL_ID}` = '{trial_id}'"
        found = self.client.search_runs([self.t.experiment_id], filter_string=query, max_results=1)
        # a trial of confirm or refit: the trial it trains again is a tag, not a param
        origins = {ORIGINS[k]: str(v) for k, v in config.items() if k in ORIGINS}
        flat = flatten({k: v for k, v in config.items() if k not in ORIGINS})
        if found:
            run = found[0]
            if run.info.status != "RUNNING":  # a resumed trial whose run an interrupt or a failure ended
                self.client.update_run(run.info.run_id, status="RUNNING")
            state = _RunState(run.info.run_id)
            state.steps = {m.step for m in self.client.get_metric_history(run.info.run_id, "epoch")}
            state.kept = json.loads(run.data.tags.get(TAG_CHECKPOINTS, "{}"))
            logged = {k: param_from(v) for k, v in run.data.params.items()}
            logged.update({k[3:]: v for k, v in run.data.metrics.items() if k.startswith("hp/")})
            state.current = logged
            state.note_config(flat)
            # a run created just before the server went away may lack its params
            self._log_params(run.info.run_id, {k: v for k, v in flat.items() if k not in run.data.params})
            return state
        tags = {PARENT_RUN: self.t.parent_run_id, TAG_TRIAL_ID: trial_id, **self.t.tags, **origins}
        run = self.client.create_run(self.t.experiment_id, run_name=run_name, tags=tags)
        self._log_params(run.info.run_id, flat)
        state = _RunState(run.info.run_id)
        state.current = flat
        return state

    def _log_params(self, run_id: str, flat: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, param_value(v)) for k, v in flat.items()]
        for i in range(0, len(params), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(run_id, params=params[i : i + 100])

    def _delete_artifacts(self, run_id: str, path: str) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(self.client.get_run(run_id).info.artifact_uri, tracking_uri=self.t.tracking_uri)
        try:
            repo.delete_artifacts(path)
        except (FileNotFoundError, MlflowException) as exc:  # already gone (a retried delete)
            if _transient(exc):
                raise
            log.info("checkpoint %s of run %s already deleted (%s)", path, run_id, exc)

    def _retry(self, what: str, fn, *args):
        delay = 0.5
        while True:
            try:
                out = fn(*args)
            except Exception as exc:
                if not _transient(exc):
                    self.stats["failed"] += 1
                    log.error("MLflow refused %s: %s", what, exc)
                    raise
                self.stats["retries"] += 1
                if self.outage_since is None:
                    self.outage_since = time.time()
                    log.warning("MLflow at %s unreachable (%s); retrying, trials train on", self.t.tracking_uri, what)
                time.sleep(delay)
                delay = min(self.retry_cap_s, delay * 2)
                continue
            if self.outage_since is not None:
                log.warning("MLflow back after %.0f s", time.time() - self.outage_since)
                self.outage_since = None
            return out


@dataclass
class _RunState:
    run_id: str
    steps: set = field(default_factory=set)  # epochs already logged
    kept: dict = field(default_factory=dict)  # artifact path -> score, the top k
    current: dict = field(default_factory=dict)  # hyperparameter values as MLflow last recorded them
    pending_hp: dict = field(default_factory=dict)  # values changed since (PBT), logged with the next epoch
    stale: set = field(default_factory=set)  # kept checkpoints of an earlier branch (before a PBT exploit)

    def note_config(self, flat: Mapping[str, Any]) -> None:
        """MLflow params cannot change: a perturbed hyperparameter is logged as the metric ``hp/NAME``.

        A change is a new branch (PBT continued the trial from a checkpoint, its own or another's,
        with perturbed values): the epochs from there are new results, whatever their steps.
        """
        changed = {k: v for k, v in flat.items() if k in self.current and v != self.current[k]}
        numeric = numeric_metrics(changed)
        self.pending_hp.update(numeric)
        self.current.update(changed)
        if changed:
            self.steps.clear()
            self.stale = set(self.kept)


def get_writer(tracking: TrialTracking, node_id: str):
    """The writer for the sweep on node ``node_id``, started on first use (pinned to the node)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor = ray.remote(num_cpus=0, max_restarts=0)(TrialWriter)
    return actor.options(
        name=writer_name(tracking.sweep_id, node_id),
        namespace=NAMESPACE,
        lifetime="detached",  # outlives the trial that started it; the driver ends it
        get_if_exists=True,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(tracking)


def start_writers(tracking: TrialTracking) -> list:
    """Start a writer on every node alive now, while the first trials load (a node added later gets
    its writer from its first trial)."""
    import ray

    return [get_writer(tracking, n["NodeID"]) for n in ray.nodes() if n.get("Alive")]


def sweep_writers(sweep_id: str) -> list:
    """Handles of the sweep's writers, on every node."""
    import ray

    prefix = f"{WRITER_PREFIX}/{sweep_id}/"
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
    return [ray.get_actor(n, namespace=NAMESPACE) for n in names if n.startswith(prefix)]


def driver_writer(sweep_id: str):
    """The sweep's writer on the driver's node (started with the sweep; it outlives any worker node's loss)."""
    import ray

    return ray.get_actor(writer_name(sweep_id, ray.get_runtime_context().get_node_id()), namespace=NAMESPACE)


def flush_writers(sweep_id: str, timeout_s: float) -> dict:
    """Wait until every writer has landed what it holds, then end them. Returns their counters."""
    import ray

    writers = sweep_writers(sweep_id)
    stats: dict = {"retries": 0, "metric_batches": 0, "skipped_steps": 0, "checkpoints": 0, "failed": 0}
    pending = {w.flush.remote(): w for w in writers}
    deadline = time.time() + timeout_s
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=min(30.0, deadline - time.time()))
            for ref in done:
                pending.pop(ref)
                try:
                    for k, v in ray.get(ref).items():
                        stats[k] += v
                except ray.exceptions.RayActorError as exc:
                    log.error("an MLflow writer died before it flushed: %s", exc)
                    stats["failed"] += 1
            if pending and time.time() >= deadline:
                raise TrackingError(
                    f"MLflow did not take the sweep's last writes within {timeout_s:.0f} s "
                    f"({len(pending)} of {len(writers)} node writers still retrying); raise mlflow.flush_timeout_s "
                    "or check the tracking server"
                )
            if pending:
                log.warning("waiting for MLflow: %d node writers still retrying", len(pending))
    finally:
        for w in writers:
            if not pending or w not in pending.values():
                ray.kill(w)
    return stats


class TrialStatusCallback(Callback):
    """Ends each trial's run as Tune ends the trial, through the node writers (never blocking Tune)."""

    def __init__(self, sweep_id: str):
        self.sweep_id = sweep_id

    def _finish(self, trial, status: str) -> None:
        now = int(time.time() * 1000)
        for writer in sweep_writers(self.sweep_id):
            writer.finish_trial.remote(trial.trial_id, status, now)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        """The last attempt Tune allows failed: its error goes on the run like the others', and the run FAILED."""
        self._note_failure(trial)
        self._finish(trial, "FAILED")

    def on_trial_recover(self, iteration, trials, trial, **info):
        """A failed attempt that Tune retries: its error goes on the trial's run, which stays open."""
        self._note_failure(trial)

    def _note_failure(self, trial) -> None:
        error = ""
        if trial.error_file and os.path.isfile(trial.error_file):
            with open(trial.error_file, encoding="utf-8", errors="replace") as fh:
                error = fh.read()[-20_000:]
        now = int(time.time() * 1000)
        try:  # the driver node's writer: the trial's own may have gone with its node
            writer = driver_writer(self.sweep_id)
        except ValueError:
            log.warning("no MLflow writer on the driver's node: attempt %d of %s not logged", trial.num_failures, trial)
            return
        writer.note_failure.remote(trial.trial_id, int(trial.num_failures), error, now)


class MlflowReporter:
    """Wraps a trial's reporter: hands each epoch and checkpoint to this node's writer, then reports on."""

    def __init__(self, tracking: TrialTracking, inner, config: Mapping, label: str, trial_id: str | None = None):
        import ray
        from ray import tune

        self.t, self.inner = tracking, inner
        self.trial_id = trial_id or tune.get_context().get_trial_id()
        node_id = ray.get_runtime_context().get_node_id()
        self.writer = get_writer(tracking, node_id)
        self.staging = Path(tempfile.gettempdir()) / "tune-service-staging" / tracking.sweep_id / self.trial_id
        node = f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
        name = f"{self.trial_id} {label}".rstrip()
        self.writer.open_trial.remote(self.trial_id, dict(config), node, node_id, name)
        if tracking.datasets:  # the sweep's rows, described once by the driver
            self.writer.log_inputs.remote(self.trial_id, list(tracking.datasets))

    def latest_checkpoint(self):
        return self.inner.latest_checkpoint()

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        import ray

        step = int(metrics["epoch"])
        logged = self.writer.log_epoch.remote(self.trial_id, step, dict(metrics), int(time.time() * 1000))
        if self.t.log_checkpoints and checkpoint_dir is not None:
            staged = self.staging / f"epoch-{step:03d}"
            _stage(os.path.join(checkpoint_dir, _model_dir()), staged)
            score = metrics.get(self.t.metric)
            self.writer.log_checkpoint.remote(self.trial_id, step, score, str(staged))
        # normally MLflow has the epoch's metrics before Tune does (a scheduler reading them finds them
        # there); with the server away, train on: the writer holds them, and the checkpoint behind them
        ray.wait([logged], timeout=2.0)
        self.inner.report(metrics, checkpoint_dir)


def dataset_inputs(datasets: Mapping[str, Any], source: Mapping) -> list:
    """``datasets`` Datasets by their use as MLflow dataset inputs: named by their source, digested by MLflow."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    out = []
    for use, ds in datasets.items():
        target = source.get("label_column") if source.get("label_column") in ds.column_names else None
        described = functools.partial(
            mlflow.data.from_huggingface, ds, path=source["source"], name=source["source"], targets=target
        )
        try:
            data = described()
        except Exception:  # rows MLflow's digest cannot compare (arrays of pixels): their `datasets` fingerprint
            data = described(digest=ds._fingerprint[:8])
        out.append(DatasetInput(data._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, use)]))
    return out


def _model_dir() -> str:
    from trainables.api import MODEL_DIR

    return MODEL_DIR


def _stage(src: str, dest: Path) -> None:
    """A copy of a checkpoint folder for the writer (hard links where the filesystem allows)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)

    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, copy_function=link)
