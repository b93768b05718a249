"""``mlflow``: where the trials are tracked, and what the sweep logs and registers at its end."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from ._fields import Section


class MlflowSpec(Section):
    tracking_uri: Optional[str] = Field(
        None, description="overridden by --tracking-uri or MLFLOW_TRACKING_URI; default sqlite:///mlflow.db"
    )
    experiment: Optional[str] = Field(None, description="default: the sweep name")
    log_checkpoints: bool = Field(
        True, description="upload each trial's top checkpoints (by search.metric) as artifacts, from the trial's node"
    )
    keep_checkpoints: int = Field(
        1,
        ge=1,
        le=50,
        description="checkpoints kept per trial in MLflow, best first (Tune's storage: the 2 best and the latest)",
    )
    register_model: bool = Field(
        True,
        description="log the best checkpoint as an MLflow Model (pyfunc) of its run and register it under the "
        "sweep's name, with the alias challenger",
    )
    promote: Literal["auto", "always", "never"] = Field(
        "auto",
        description="when the new version takes the alias champion: auto, when it beats the champion on the "
        "sweep's metric scored on the same data (the test split's, else the validation rows); always; never",
    )
    reports: bool = Field(
        True, description="optimization history, parallel coordinates, importance, learning curves (PNG)"
    )
    error_analysis: bool = Field(
        True,
        description="on the best trial's run: its validation confusion matrix (PNG), per-class precision, recall "
        "and F1, and the examples it gets wrong (tables); classification tasks",
    )
    flush_timeout_s: float = Field(
        900, gt=0, description="at the end, how long to wait for an unreachable tracking server to take the last writes"
    )
