"""MLflow behind one door: every read and write of MLflow the service makes goes through here.

- :mod:`._names`: every tag, metric and artifact name, and how values are written and read back;
- :mod:`._target`: which store a sweep writes to, and whether it answers;
- :mod:`._sweep`: the sweep's parent run, from the driver (spec, search space, the best trial,
  reports, the Model Registry);
- :mod:`.writers`: the trials' runs, written from whichever node runs them by one writer
  (a Ray actor) per node, every call retried until the server takes it;
- :mod:`._reads`: earlier sweeps read back (warm start's trials, a sweep's spec for resume,
  the best checkpoint for ``load_best``).

Everything goes through an explicit ``MlflowClient``, so no global MLflow state is touched;
mlflow itself is imported inside the calls.
"""

from __future__ import annotations

from ._models import ModelTarget, log_model
from ._names import (
    CONFIRMS,
    ORIGINS,
    PARENT_RUN,
    REFITS,
    TAG_ADAPTER,
    TAG_BASE_MODEL,
    TAG_CONFIG,
    TAG_CONFIRMS,
    TAG_PROMOTION,
    TAG_REFITS,
    TAG_SCORE,
    TAG_SCORE_NAME,
    TAG_SCORED_ON,
    TAG_STRATEGY,
    TAG_SWEEP_ID,
    TAG_TASK,
    TAG_TRIAL_ID,
    numeric_metrics,
    param_from,
    param_value,
)
from ._reads import SweepNotFound, WarmStartError, download_best, earlier_trials, find_sweep, sweep_spec
from ._sweep import SUBMISSION_ENV, SweepTracker, code_tags, ray_job_tags
from ._target import TrackingError, check_server, is_local_store, resolve_tracking_uri, ui_command

__all__ = [
    "CONFIRMS",
    "ModelTarget",
    "ORIGINS",
    "PARENT_RUN",
    "REFITS",
    "SUBMISSION_ENV",
    "SweepNotFound",
    "SweepTracker",
    "TAG_ADAPTER",
    "TAG_BASE_MODEL",
    "TAG_CONFIG",
    "TAG_CONFIRMS",
    "TAG_PROMOTION",
    "TAG_REFITS",
    "TAG_SCORE",
    "TAG_SCORED_ON",
    "TAG_SCORE_NAME",
    "TAG_STRATEGY",
    "TAG_SWEEP_ID",
    "TAG_TASK",
    "TAG_TRIAL_ID",
    "TrackingError",
    "WarmStartError",
    "check_server",
    "code_tags",
    "download_best",
    "earlier_trials",
    "find_sweep",
    "is_local_store",
    "log_model",
    "numeric_metrics",
    "param_from",
    "param_value",
    "ray_job_tags",
    "resolve_tracking_uri",
    "sweep_spec",
    "ui_command",
]
