"""What tune-service writes to MLflow: its tag names, and how values are written and read back.

The one home of every tag, metric and artifact name the service reads or writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

CHECKPOINTS = "checkpoints"
TAG_TRIAL_ID = "tune_service.trial_id"
TAG_CONFIRMS = "tune_service.confirms"  # a run of search.confirm: the trial whose config it trains again
CONFIRMS = "confirms"  # the key of a confirmation trial's config naming that trial
TAG_REFITS = "tune_service.refits"  # the run of cross_validation.refit: the winner it trains again on every row
REFITS = "refits"  # the key of the refit trial's config naming the winner
# an after-search trial's config key naming the trial it trains again, and the tag its run gets for it
ORIGINS = {CONFIRMS: TAG_CONFIRMS, REFITS: TAG_REFITS}
TAG_NODE = "tune_service.node"
TAG_NODE_ID = "tune_service.node_id"
TAG_CHECKPOINTS = "tune_service.checkpoints"
TAG_BEST_CHECKPOINT = "tune_service.best_checkpoint"
TAG_FAILED_ATTEMPTS = "tune_service.failed_attempts"
FAILED_ATTEMPTS = "failed_attempts"  # a metric: one step per failed attempt of a retried trial
PARENT_RUN = "mlflow.parentRunId"
# what MLflow reads from the environment to reach a secured server
CREDENTIAL_VARS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
)
# Tune bookkeeping left out of a trial's MLflow metrics
SKIP_METRICS = {"timestamp", "pid", "time_this_iter_s", "time_since_restore", "iterations_since_restore", "done"}


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


TAG_TASK = "tune_service.task"
TAG_CONFIG = "tune_service.config"
TAG_ADAPTER = "tune_service.adapter"  # a registered version that is an adapter: its type
TAG_BASE_MODEL = "tune_service.base_model"  # and the base model it goes on, as the spec names it
TAG_STOPPED_BY = "tune_service.stopped_by"
# a registered version's score (its name and value) and the data it was measured on
TAG_SCORE_NAME = "tune_service.score_name"
TAG_SCORE = "tune_service.score"
TAG_SCORED_ON = "tune_service.scored_on"
TAG_PROMOTION = "tune_service.promotion"  # on the parent run: what the version did to the alias champion, and why
TAG_NOTE = "mlflow.note.content"
SPEC_FILE = "spec.yaml"


def numeric_metrics(result: Mapping) -> dict[str, float]:
    """The finite numbers of a result, Tune's bookkeeping keys left out."""
    out = {}
    for key, value in result.items():
        if key in SKIP_METRICS or key == "config" or isinstance(value, (dict, list, str)) or value is None:
            continue
        if isinstance(value, (bool, int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


def param_value(v: Any, limit: int = 6000) -> str:
    # numpy scalars (ConfigSpace, under BOHB, hands out numpy integers) are logged as plain numbers
    text = v if isinstance(v, str) else json.dumps(v, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    return text[:limit]


def param_from(text: str) -> Any:
    """A param as logged by :func:`param_value`, back to its value (strings are logged bare)."""
    try:
        return json.loads(text)
    except ValueError:
        return text
