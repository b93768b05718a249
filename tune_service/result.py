"""What a sweep returns: plain, JSON-serialisable data."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass
class TrialResult:
    trial_id: str
    status: str  # TERMINATED, ERROR
    config: dict
    metrics: dict  # the trial's best epoch by the sweep's metric
    epochs: int
    checkpoint: Optional[str] = None  # folder of the trial's best checkpoint
    mlflow_run_id: Optional[str] = None
    error: Optional[str] = None


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

    @property
    def best_value(self) -> Optional[float]:
        return self.best_metrics.get(self.metric)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)
