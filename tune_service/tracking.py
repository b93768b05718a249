"""MLflow: the only module that talks to it.

One parent run per sweep (spec and search space as artifacts, strategy and
sweep id as tags), one nested child run per trial (its config as params, every
epoch's metrics as they arrive, its final checkpoint as artifacts), the best
trial marked on both. Everything goes through an explicit
:class:`mlflow.tracking.MlflowClient`, so no global MLflow state is touched.

Logging happens in the Tune driver (a :class:`ray.tune.Callback`), which
receives every trial's results from whichever node ran it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TAG_SWEEP_ID = "tune_service.sweep_id"
TAG_STRATEGY = "tune_service.strategy"
TAG_TRIAL_ID = "tune_service.trial_id"
TAG_BEST = "tune_service.best"
TAG_BEST_RUN = "tune_service.best_run_id"
TAG_PARETO = "tune_service.pareto"
PARENT_RUN = "mlflow.parentRunId"
MAX_PARAM_LEN = 6000
CHECKPOINT_ARTIFACTS = "checkpoint"


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


def flatten(config: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"groups": {"encoder": {"lr": 1}}}`` -> ``{"groups.encoder.lr": 1}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def numeric_metrics(result: Mapping) -> dict[str, float]:
    """The finite numbers of a Tune result, Tune's bookkeeping keys left out."""
    skip = {"timestamp", "pid", "time_this_iter_s", "time_since_restore", "iterations_since_restore", "done"}
    out = {}
    for key, value in result.items():
        if key in skip or key == "config" or isinstance(value, (dict, list, str)) or value is None:
            continue
        if isinstance(value, (bool, int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


class SweepTracker:
    """The sweep's parent run and the trials' child runs."""

    def __init__(self, tracking_uri: str, experiment: str):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        existing = self.client.get_experiment_by_name(experiment)
        if existing is not None:
            self.experiment_id = existing.experiment_id
        else:
            self.experiment_id = self.client.create_experiment(experiment)
        self.parent_run_id: str | None = None
        self.trial_runs: dict[str, str] = {}
        self._configs: dict[str, dict] = {}  # what each trial's params say, to see PBT's changes

    def start_sweep(
        self,
        *,
        name: str,
        sweep_id: str,
        strategy: str,
        spec_yaml: str,
        search_space: dict,
        params: Mapping[str, Any],
        description: str = "",
    ) -> str:
        tags = {TAG_SWEEP_ID: sweep_id, TAG_STRATEGY: strategy}
        if description:
            tags["mlflow.note.content"] = description
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.parent_run_id = run.info.run_id
        self._log_params(self.parent_run_id, params)
        self.client.log_text(self.parent_run_id, spec_yaml, "spec.yaml")
        self.client.log_dict(self.parent_run_id, search_space, "search_space.json")
        return self.parent_run_id

    def start_trial(self, trial_id: str, run_name: str, config: Mapping) -> str:
        if trial_id in self.trial_runs:  # a retried trial continues its run
            return self.trial_runs[trial_id]
        tags = {PARENT_RUN: self.parent_run_id, TAG_TRIAL_ID: trial_id}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self.trial_runs[trial_id] = run.info.run_id
        self._configs[trial_id] = flatten(config)
        self._log_params(run.info.run_id, self._configs[trial_id])
        return run.info.run_id

    def log_result(self, trial_id: str, result: Mapping, config: Mapping | None = None) -> None:
        """An epoch's metrics; with ``config``, values changed since the params were logged.

        MLflow params cannot change, so a hyperparameter PBT perturbs is logged as
        the metric ``hp/NAME`` from the epoch it changed (the param keeps the start value).
        """
        from mlflow.entities import Metric

        run_id = self.trial_runs[trial_id]
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in numeric_metrics(result).items()]
        if config is not None:
            flat, before = flatten(config), self._configs.get(trial_id, {})
            changed = {k: v for k, v in flat.items() if k in before and v != before[k]}
            metrics += [Metric(f"hp/{k}", float(v), now, step) for k, v in numeric_metrics(changed).items()]
            before.update(changed)
        self.client.log_batch(run_id, metrics=metrics)

    def finish_trial(self, trial_id: str, status: str = "FINISHED") -> None:
        run_id = self.trial_runs.get(trial_id)
        if run_id is not None:
            self.client.set_terminated(run_id, status)

    def log_checkpoint(self, trial_id: str, checkpoint_dir: str) -> None:
        """Upload a trial's checkpoint folder as artifacts of its run."""
        self.client.log_artifacts(self.trial_runs[trial_id], checkpoint_dir, CHECKPOINT_ARTIFACTS)

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

    def fail_open_runs(self, status: str = "FAILED") -> None:
        """Close every run still open (after an error or an interrupt)."""
        for run_id in [*self.trial_runs.values(), self.parent_run_id]:
            if run_id and self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, status)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(run_id, params=items[i : i + 100])


def _param_value(v: Any) -> str:
    # numpy scalars (ConfigSpace, under BOHB, hands out numpy integers) are logged as plain numbers
    text = v if isinstance(v, str) else json.dumps(v, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    return text[:MAX_PARAM_LEN]


def _param_from(text: str) -> Any:
    """A param as logged by :func:`_param_value`, back to its value (strings are logged bare)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class MlflowTrialCallback(Callback):
    """Streams each trial into its own child run, from the Tune driver."""

    def __init__(self, tracker: SweepTracker, run_name):
        self.tracker = tracker
        self.run_name = run_name

    def on_trial_start(self, iteration, trials, trial, **info):
        self.tracker.start_trial(trial.trial_id, self.run_name(trial), trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.tracker.log_result(trial.trial_id, result, trial.config)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.tracker.finish_trial(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.tracker.finish_trial(trial.trial_id, status="FAILED")


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
        params = {k: _param_from(v) for k, v in run.data.params.items()}
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
