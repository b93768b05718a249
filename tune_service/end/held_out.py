"""The best trials scored once on the test split, which no trial, searcher or scheduler saw.

A sweep picks the trial with the best validation score out of many, so that score overstates
how the model does on new data. With ``task.dataset.test_split``, the ``search.test_top_k``
best trials are scored once each, at the end, from their best checkpoints, in Ray tasks with a
trial's resources: ``test_*`` metrics on their runs, the best one's on the parent run, in the
result and on the registered version.
"""

from __future__ import annotations

from collections.abc import Mapping

from trainables.api import test_task

from ..result import SweepResult, test_name
from ..spec import SweepSpec
from . import finalists


def score_on_test(spec: SweepSpec, result: SweepResult, tracker, prepared: Mapping | None = None) -> None:
    """Score the finalists on the test split; their ``test_metrics``, their runs and the parent's get the scores.

    ``prepared``: the sweep's prepared data (:mod:`trainables.prepared`), the test rows' among it."""
    chosen = finalists.ranked(result, spec.search.test_top_k, repeats=False)
    winner = next((t for t in result.trials if t.trial_id == result.best_trial_id and t.checkpoint), None)
    if winner is not None and winner not in chosen:  # confirm's winner, picked by its mean, is always scored
        chosen = [winner, *chosen[: spec.search.test_top_k - 1]]
    scored = finalists.on_checkpoints(spec, chosen, test_task(spec.trial_task()), "evaluate", prepared)
    for trial, metrics in zip(chosen, scored):
        trial.test_metrics = {test_name(k): v for k, v in metrics.items()}
        if trial.mlflow_run_id:
            tracker.log_run_metrics(trial.mlflow_run_id, trial.test_metrics, step=trial.epochs)
    best = next((t for t in chosen if t.trial_id == result.best_trial_id), None)
    if best is not None:
        result.test_metrics = dict(best.test_metrics)
        tracker.log_metrics(result.test_metrics)
