"""MLflow from the driver: the sweep's parent run, the registry, the reports.

One parent run per sweep (spec and search space as artifacts; strategy, sweep
id, Ray job and code version as tags; best metrics, best config, trials table,
reports at the end). Trials write their own child runs, nested under it, from
whichever node runs them (:mod:`.streaming`). The best trial's best checkpoint
is registered in the Model Registry under the sweep's name. Everything goes
through an explicit :class:`mlflow.tracking.MlflowClient`, so no global MLflow
state is touched.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from .streaming import (
    PARENT_RUN,
    TAG_BEST_CHECKPOINT,
    TAG_TRIAL_ID,
    TrackingError,
    driver_writer,
    numeric_metrics,
    param_from,
    param_value,
    sweep_writers,
)

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TAG_SWEEP_ID = "tune_service.sweep_id"
TAG_STRATEGY = "tune_service.strategy"
TAG_RESUMED = "tune_service.resumed"
TAG_BEST = "tune_service.best"
TAG_BEST_RUN = "tune_service.best_run_id"
TAG_PARETO = "tune_service.pareto"
TAG_MODEL_VERSION = "tune_service.model_version"
TAG_JOB = "tune_service.ray_job_id"
TAG_SUBMISSION = "tune_service.ray_submission_id"
TAG_CODE = "tune_service.version"
TAG_GIT = "mlflow.source.git.commit"
REPORTS = "reports"
EXPERIMENT_KIND = "mlflow.experimentKind"


def resolve_tracking_uri(override: str | None, spec_uri: str | None) -> str:
    """``override`` (the CLI's --tracking-uri), else $MLFLOW_TRACKING_URI, else the spec,
    else a SQLite store in the working directory. Relative SQLite and file paths
    are made absolute so every process resolves them alike.
    """
    uri = override or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


class SweepTracker:
    """The sweep's parent run, from the driver; trials write their own child runs (:mod:`.streaming`)."""

    def __init__(self, tracking_uri: str, experiment: str):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        existing = self.client.get_experiment_by_name(experiment)
        if existing is not None:
            self.experiment_id = existing.experiment_id
        else:
            self.experiment_id = self.client.create_experiment(experiment)
        if existing is None or EXPERIMENT_KIND not in existing.tags:
            # the MLflow UI opens such an experiment on its runs table (else on its GenAI overview)
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND, "custom_model_development")
        self.parent_run_id: str | None = None
        self.trial_runs: dict[str, str] = {}

    def start_sweep(
        self,
        *,
        name: str,
        tags: Mapping[str, str],
        spec_yaml: str,
        search_space: dict,
        params: Mapping[str, Any],
        description: str = "",
    ) -> str:
        tags = dict(tags)
        if description:
            tags["mlflow.note.content"] = description
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.parent_run_id = run.info.run_id
        self._log_params(self.parent_run_id, params)
        self.client.log_text(self.parent_run_id, spec_yaml, "spec.yaml")
        self.client.log_dict(self.parent_run_id, search_space, "search_space.json")
        return self.parent_run_id

    def reopen_sweep(self, parent_run_id: str) -> str:
        """Continue an earlier sweep's parent run (``tune-service resume``): RUNNING again, resumes counted."""
        run = self.client.get_run(parent_run_id)
        self.parent_run_id = parent_run_id
        self.client.update_run(parent_run_id, status="RUNNING")
        resumed = int(run.data.tags.get(TAG_RESUMED, "0")) + 1
        self.client.set_tag(parent_run_id, TAG_RESUMED, str(resumed))
        return parent_run_id

    def child_runs(self) -> dict[str, Any]:
        """The trials' runs by trial id (as the trials created them)."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_RUN}` = '{self.parent_run_id}'", max_results=50_000
        )
        out = {r.data.tags[TAG_TRIAL_ID]: r for r in runs if TAG_TRIAL_ID in r.data.tags}
        self.trial_runs = {t: r.info.run_id for t, r in out.items()}
        return out

    def close_trial_runs(self, statuses: Mapping[str, str]) -> None:
        """End the runs still open: ``statuses`` maps trial id to FINISHED, FAILED or KILLED."""
        for trial_id, run in self.child_runs().items():
            if run.info.status == "RUNNING":
                self.client.set_terminated(run.info.run_id, statuses.get(trial_id, "KILLED"))

    def finish_sweep(
        self,
        *,
        best_trial_id: str | None,
        best_metrics: Mapping,
        best_config: Mapping | None,
        trials_table: str,
        pareto: Mapping | None = None,
        stopped_by: str | None = None,
        status: str = "FINISHED",
    ) -> None:
        parent = self.parent_run_id
        if best_trial_id is not None and best_trial_id in self.trial_runs:
            best_run = self.trial_runs[best_trial_id]
            self.client.set_tag(best_run, TAG_BEST, "true")
            self.client.set_tag(parent, TAG_BEST_RUN, best_run)
            self.client.set_tag(parent, f"{TAG_BEST}_trial_id", best_trial_id)
            now = int(time.time() * 1000)
            from mlflow.entities import Metric

            self.client.log_batch(
                parent, metrics=[Metric(f"best_{k}", v, now, 0) for k, v in numeric_metrics(best_metrics).items()]
            )
            self.client.log_dict(parent, dict(best_config or {}), "best_config.json")
        self.client.log_text(parent, trials_table, "trials.txt")
        if pareto is not None:
            for trial_id in pareto.get("trial_ids", []):
                if trial_id in self.trial_runs:
                    self.client.set_tag(self.trial_runs[trial_id], TAG_PARETO, "true")
            self.client.log_dict(parent, dict(pareto), "pareto_front.json")
        if stopped_by:
            self.client.set_tag(parent, "tune_service.stopped_by", stopped_by)
        self.client.set_terminated(parent, status)

    def register_best(self, model_name: str, run_id: str, tags: Mapping[str, str], description: str) -> str:
        """Register the best trial's best checkpoint as a new version of ``model_name``; returns the version."""
        from mlflow.exceptions import MlflowException

        run = self.client.get_run(run_id)
        path = run.data.tags.get(TAG_BEST_CHECKPOINT)
        if path is None:
            raise TrackingError(f"run {run_id} has no checkpoint in MLflow to register")
        try:
            self.client.create_registered_model(model_name, description=f"tune-service sweeps of {model_name}")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = self.client.create_model_version(
            model_name,
            source=f"{run.info.artifact_uri}/{path}",
            run_id=run_id,
            tags=dict(tags),
            description=description,
        )
        self.client.set_tag(self.parent_run_id, TAG_MODEL_VERSION, f"{model_name}/{version.version}")
        return version.version

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Numbers about the sweep itself on its parent run (step 0)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.parent_run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def log_figures(self, figures: Mapping[str, Any]) -> None:
        """Report figures (matplotlib) as PNG artifacts of the parent run, under ``reports/``."""
        for name, fig in figures.items():
            self.client.log_figure(self.parent_run_id, fig, f"{REPORTS}/{name}.png")

    def fail_open_runs(self, status: str = "FAILED") -> None:
        """Close every run still open (after an error or an interrupt)."""
        if self.parent_run_id is None:
            return
        self.close_trial_runs({})
        if self.client.get_run(self.parent_run_id).info.status == "RUNNING":
            self.client.set_terminated(self.parent_run_id, status)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(run_id, params=items[i : i + 100])


# Sweeps whose Tune loop a Ctrl-C (SIGINT) ended, in this process. On SIGINT Tune stops its trials,
# saves its state and returns from ``fit()`` as from a finished run; the driver reads this to know otherwise.
INTERRUPTED: set[str] = set()


class TrialStatusCallback(Callback):
    """Ends each trial's run as Tune ends the trial, through the node writers (never blocking Tune)."""

    def __init__(self, sweep_id: str):
        self.sweep_id = sweep_id

    def setup(self, **info):
        """Wrap the SIGINT handler Tune has just installed (Tune sets it up before its callbacks) to note a Ctrl-C."""
        tune_handler = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is not threading.main_thread() or not callable(tune_handler):
            return
        sweep_id = self.sweep_id

        def interrupted(signum, frame):
            INTERRUPTED.add(sweep_id)
            tune_handler(signum, frame)  # Tune's: end the loop after saving its state; the next Ctrl-C is Python's

        signal.signal(signal.SIGINT, interrupted)

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


class WarmStartError(ValueError):
    """An earlier sweep to warm-start from cannot be read."""


def earlier_trials(
    tracking_uri: str,
    *,
    experiment: str | None,
    parent_run_id: str | None,
    accepts: Mapping[str, Any],
    objectives: list[tuple[str, str]],
) -> tuple[list[tuple[dict, list[float]]], int]:
    """The finished trials of an earlier sweep: ``([(params, objective values)], skipped)``.

    ``accepts`` maps each searched name (``groups.encoder.lr``) to a predicate
    telling whether a value lies in this sweep's space; a trial whose values do
    not all fit, or which lacks an objective, is skipped. An objective's value
    is the trial's last reported one, as Ray Tune tells its searcher.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if parent_run_id is not None:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException:
            raise WarmStartError(f"parent_run_id {parent_run_id!r}: no such run at {tracking_uri}") from None
        experiment_ids = [parent.info.experiment_id]
        query = f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'FINISHED'"
    else:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise WarmStartError(f"experiment {experiment!r}: no such experiment at {tracking_uri}")
        experiment_ids = [exp.experiment_id]
        query = "attributes.status = 'FINISHED'"
    runs = client.search_runs(experiment_ids, filter_string=query, max_results=10_000)
    trials, skipped = [], 0
    for run in runs:
        if TAG_TRIAL_ID not in run.data.tags:
            continue  # a sweep's parent run
        params = {k: param_from(v) for k, v in run.data.params.items()}
        point = {k: params[k] for k in accepts if params.get(k) is not None}
        values = [run.data.metrics.get(m) for m, _ in objectives]
        missing = [k for k in accepts if k not in params]
        if missing or any(v is None for v in values) or not all(accepts[k](v) for k, v in point.items()):
            skipped += 1
            continue
        trials.append((point, values))
    if not trials:
        where = f"parent run {parent_run_id}" if parent_run_id else f"experiment {experiment!r}"
        raise WarmStartError(
            f"{where} has no finished trial over this sweep's searched hyperparameters "
            f"({', '.join(accepts)}) reporting {', '.join(m for m, _ in objectives)} ({skipped} skipped)"
        )
    return trials, skipped


def ui_command(tracking_uri: str) -> str:
    """The shell command that opens the MLflow UI on ``tracking_uri``'s runs."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    return f"mlflow ui --backend-store-uri {tracking_uri} --port 5000"


def code_tags() -> dict[str, str]:
    """The code version: the package's, and the git commit of the working tree when there is one."""
    from . import __version__

    tags = {TAG_CODE: __version__}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        if commit.returncode == 0:
            tags[TAG_GIT] = commit.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return tags


def ray_job_tags() -> dict[str, str]:
    """The Ray job running the sweep, and its submission id when it came through Ray Jobs."""
    import json

    import ray

    tags = {TAG_JOB: ray.get_runtime_context().get_job_id()}
    job_config = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if job_config:
        submission = json.loads(job_config).get("metadata", {}).get("job_submission_id")
        if submission:
            tags[TAG_SUBMISSION] = submission
    return tags


def is_local_store(uri: str) -> bool:
    """A store only this machine can write (SQLite, a folder), as opposed to a tracking server."""
    return uri.split(":", 1)[0] in ("sqlite", "file", "") or "://" not in uri


def check_server(uri: str, timeout_s: float = 5.0, attempts: int = 2) -> None:
    """Raise :class:`TrackingError` when ``uri`` names a tracking server that does not answer.

    Any HTTP answer (even 401 or 404) means a server is there; only a refused or
    timed-out connection, or a name that does not resolve, counts as unreachable.
    Stores on this machine's disk are not checked.
    """
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    reason = None
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if attempt + 1 < attempts:
                time.sleep(1.0)
    raise TrackingError(
        f"cannot reach the MLflow tracking server at {uri} ({reason}): start it (cluster/mlflow-server.sh), "
        "or pass another --tracking-uri (or MLFLOW_TRACKING_URI, or mlflow.tracking_uri in the spec)"
    )


def find_sweep(tracking_uri: str, sweep_id: str):
    """The parent run of sweep ``sweep_id`` in any experiment; :class:`SweepNotFound` when there is none."""
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///") and not os.path.exists(tracking_uri.removeprefix("sqlite:///")):
        raise SweepNotFound(f"no MLflow store at {tracking_uri}: give the --tracking-uri the sweep ran with")
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = []
    for i in range(0, len(experiments), 100):
        runs += client.search_runs(experiments[i : i + 100], filter_string=f"tags.`{TAG_SWEEP_ID}` = '{sweep_id}'")
    parents = [r for r in runs if PARENT_RUN not in r.data.tags]
    if not parents:
        raise SweepNotFound(
            f"no sweep {sweep_id!r} in the MLflow store at {tracking_uri}: give the sweep id a run printed "
            "(its parent run's tune_service.sweep_id tag) and the same --tracking-uri"
        )
    return parents[0]


class SweepNotFound(LookupError):
    """No sweep by that id where tune-service looked (the MLflow store, Tune's storage)."""
