"""The winning config trained once more on every training row (``search.cross_validation.refit``).

Under cross-validation each fold's model trains on all but one part of the training rows. With
``refit``, after the search (and ``confirm``), the winner's config trains once more on all of them,
for the epochs at which its folds' mean peaked and without early stopping, in a Tuner of its own: one
trial, its own MLflow run tagged ``tune_service.refits`` with the winner's trial id. Its last epoch's
model becomes the sweep's best checkpoint: the one registered, loaded by ``load_best`` and scored on
the test split. The winner's metrics stay the sweep's best metrics: the folds' mean is the estimate
of how the refit model does. The refit trains on every row it could be validated on, so its run's
``val_*`` are measured on rows it trained on (the winner's best fold's part): they are no validation
score.
"""

from __future__ import annotations

import copy

from trainables.api import every_row_task

from ..result import SweepResult, TrialResult
from ..spec import SweepSpec
from ..tracking import REFITS


def _winner(result: SweepResult) -> TrialResult | None:
    return next((t for t in result.trials if t.trial_id == result.best_trial_id), None)


def config(result: SweepResult) -> dict | None:
    """The winner's config for its best epoch's count of epochs, no early stopping, naming the winner."""
    winner = _winner(result)
    if winner is None or "epoch" not in winner.metrics:
        return None
    out = copy.deepcopy(winner.config)
    out.update(epochs=int(winner.metrics["epoch"]), early_stopping_patience=None)
    out[REFITS] = winner.trial_id
    return out


def task(spec: SweepSpec, result: SweepResult) -> dict:
    """The trials' task with every training row to train on, evaluated on the winner's best fold's part."""
    return every_row_task(spec.trial_task(), int(_winner(result).metrics.get("best_fold", 0)))


def ranked_by_epoch(spec: SweepSpec) -> SweepSpec:
    """``spec`` with the refit's runs ranked by epoch: its checkpoint, in Tune and in MLflow, is its last."""
    search = spec.search.model_copy(update={"metric": "epoch", "mode": "max", "objectives": []})
    return spec.model_copy(update={"search": search})


def adopt(result: SweepResult, refitted: TrialResult) -> None:
    """The refit model as the sweep's best: what is registered, loaded and scored on the test split."""
    result.refit = {"trial_id": refitted.trial_id, "winner": result.best_trial_id, "epochs": refitted.epochs}
    result.trials.append(refitted)
    result.best_trial_id = refitted.trial_id
    result.best_config = {k: v for k, v in refitted.config.items() if k != REFITS}
    result.best_checkpoint = refitted.checkpoint
    result.best_run_id = refitted.mlflow_run_id
