"""What a sweep returns: plain, JSON-serialisable data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Optional


def test_name(metric: str) -> str:
    """``val_accuracy`` -> ``test_accuracy``: a validation score's name on the test split; others keep theirs."""
    return "test_" + metric[4:] if metric.startswith("val_") else metric


class SweepInterrupted(KeyboardInterrupt):
    """A Ctrl-C ended the sweep: its trials stopped with their checkpoints, its MLflow runs KILLED.

    ``resume_sweep(sweep_id)`` (``tune-service resume SWEEP_ID``) finishes it.
    """

    def __init__(self, sweep_id: str):
        super().__init__(f"sweep {sweep_id} interrupted; finish it with: tune-service resume {sweep_id}")
        self.sweep_id = sweep_id


@dataclass
class TrialResult:
    trial_id: str
    status: str  # TERMINATED, ERROR
    config: dict  # under PBT, which changes it as the trial goes, the config of its best epoch
    metrics: dict  # the trial's best epoch by the sweep's metric
    epochs: int
    checkpoint: Optional[str] = None  # folder of the trial's best checkpoint
    mlflow_run_id: Optional[str] = None
    error: Optional[str] = None
    test_metrics: dict = field(default_factory=dict)  # scored on the test split at the end (the best test_top_k)


@dataclass
class SweepResult:
    name: str
    sweep_id: str
    strategy: str
    metric: str
    mode: str
    best_trial_id: Optional[str]
    best_config: Optional[dict]
    best_metrics: dict
    best_checkpoint: Optional[str]
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    best_run_id: Optional[str]
    storage_path: str
    wall_time_s: float
    trials: list[TrialResult] = field(default_factory=list)
    # every objective as (metric, mode), the primary first; several: multi-objective
    objectives: list = field(default_factory=list)
    # multi-objective: ids of the trials no other trial beats on every objective
    pareto_front: list[str] = field(default_factory=list)
    # why the sweep ended before its trials did: "time_budget_s", "max_total_epochs", or None
    stopped_by: Optional[str] = None
    # the best checkpoint's version in the MLflow Model Registry (registered under the sweep's name)
    model_version: Optional[str] = None
    # the best model logged as an MLflow Model (pyfunc) of its run: models:/MODEL_ID loads it
    model_id: Optional[str] = None
    # what the new version's registration did to the alias champion, and why
    promotion: Optional[str] = None
    # the best trial's scores on the test split no trial saw (task.dataset.test_split), test_* by name
    test_metrics: dict = field(default_factory=dict)
    # search.confirm: each finalist's trial id -> the mean, spread, values and trial ids of its repeats
    confirmed: dict = field(default_factory=dict)
    # search.cross_validation.refit: the refit trial's id, the winner whose config it trained, its epochs
    refit: dict = field(default_factory=dict)

    @property
    def best_value(self) -> Optional[float]:
        return self.best_metrics.get(self.metric)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


@dataclass
class TrialHistory:
    """A trial's record for the report figures: its config, its objectives at its best epoch, its curve."""

    trial_id: str
    config: dict
    values: list[float]  # the objectives at the trial's best epoch, the primary first
    curve: Mapping[int, float]  # epoch -> the primary metric
