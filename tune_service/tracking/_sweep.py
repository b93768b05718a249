"""MLflow from the driver: the sweep's parent run, the registry, the reports.

One parent run per sweep (spec and search space as artifacts; strategy, sweep
id, Ray job and code version as tags; best metrics, best config, trials table,
reports at the end). Trials write their own child runs, nested under it, from
whichever node runs them (:mod:`.writers`). The best trial's best checkpoint
is registered in the Model Registry under the sweep's name. Everything goes
through an explicit :class:`mlflow.tracking.MlflowClient`, so no global MLflow
state is touched.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._names import (
    EXPERIMENT_KIND,
    PARENT_RUN,
    REPORTS,
    SPEC_FILE,
    TAG_BEST,
    TAG_BEST_RUN,
    TAG_CODE,
    TAG_GIT,
    TAG_JOB,
    TAG_MODEL_VERSION,
    TAG_NOTE,
    TAG_PARETO,
    TAG_RESUMED,
    TAG_STOPPED_BY,
    TAG_SUBMISSION,
    TAG_TRIAL_ID,
    numeric_metrics,
    param_value,
)

#: set by ``submit_sweep`` in a submitted sweep's environment: the Ray Job's submission id
SUBMISSION_ENV = "TUNE_SERVICE_SUBMISSION_ID"


class SweepTracker:
    """The sweep's parent run, from the driver; trials write their own child runs (:mod:`.writers`)."""

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
            tags[TAG_NOTE] = description
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.parent_run_id = run.info.run_id
        self._log_params(self.parent_run_id, params)
        self.client.log_text(self.parent_run_id, spec_yaml, SPEC_FILE)
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
            self.client.set_tag(parent, TAG_STOPPED_BY, stopped_by)
        self.client.set_terminated(parent, status)

    def register_best(self, model_name: str, model_id: str, tags: Mapping[str, str], description: str) -> str:
        """Register a logged model (the best trial's) as a new version of ``model_name``; returns the version."""
        from mlflow.exceptions import MlflowException

        model = self.client.get_logged_model(model_id)
        try:
            self.client.create_registered_model(model_name, description=f"tune-service sweeps of {model_name}")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # the logged model's files as the source, its run named: a SQLite registry would look a models:/ source
        # up through the process's default tracking URI, not this client's
        version = self.client.create_model_version(
            model_name,
            source=model.artifact_location,
            run_id=model.source_run_id,
            tags=dict(tags),
            description=description,
            model_id=model_id,
        )
        self.client.set_tag(self.parent_run_id, TAG_MODEL_VERSION, f"{model_name}/{version.version}")
        return version.version

    def version_by_alias(self, model_name: str, alias: str):
        """The version of ``model_name`` holding ``alias`` (its tags with it), or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name, alias, version)

    def tag_sweep(self, key: str, value: str) -> None:
        """A tag on the parent run."""
        self.client.set_tag(self.parent_run_id, key, value)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Numbers about the sweep itself on its parent run (step 0)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.parent_run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def log_run_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Numbers scored after a trial ended (its test scores) on its own run."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

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


def code_tags() -> dict[str, str]:
    """The code version: the package's, and the git commit of the working tree when there is one."""
    from tune_service import __version__

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
    """The Ray job running the sweep, and its submission id when it came through ``submit_sweep``."""
    import ray

    tags = {TAG_JOB: ray.get_runtime_context().get_job_id()}
    if os.environ.get(SUBMISSION_ENV):
        tags[TAG_SUBMISSION] = os.environ[SUBMISSION_ENV]
    return tags
