"""The function Ray Tune runs for each trial: the task's trainable, streaming to MLflow."""

from __future__ import annotations

from collections.abc import Mapping

from .streaming import MlflowReporter, TrialTracking


def trainable(config: dict, *, task_type: str, task: Mapping, run: Mapping, tracking: TrialTracking | None) -> None:
    """Train one trial; with ``tracking``, each epoch and checkpoint also goes to the trial's MLflow run."""
    from trainables.reporting import TuneReporter

    from .preflight import task_module
    from .report import trial_label

    reporter = TuneReporter()
    if tracking is not None:
        reporter = MlflowReporter(tracking, reporter, config, trial_label(config, tracking.searched))
    task_module(task_type).tune_trainable(config, task, run, reporter)
