"""Cross-validation inside a trial: one model per fold, trained an epoch at a time, reported as the folds' mean.

Under ``task.dataset.folds`` (``{count, stratified}``, from the spec's ``search.cross_validation``) a trial
trains ``count`` models: fold ``i`` trains on every part of the training rows but part ``i`` and is validated
on part ``i`` (:func:`trainables.data.fold`). Each epoch, every fold trains one epoch with :func:`loop.fit`,
resuming from its own checkpoint; then the trial reports each metric's mean over the folds under its own name
(what schedulers and searchers act on), the spread of each validation metric as ``NAME_std``, and
``best_fold``. Early stopping watches the mean.

The trial's checkpoint holds every fold's (``folds/I``) and, as its ``model``, the model of the fold with the
best metric that epoch: the model the sweep logs, registers and scores on the test split. A trial restored
from it (resume, a retry, PBT) continues every fold where it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from .config import RunSettings, TrialConfig, with_trial_model
from .contract import MODEL_DIR, Task
from .data import fold_task
from .loop import Progress, fit, improved, loaded_task
from .reporting import Reporter

FOLDS_DIR = "folds"
STATE = "cross_validation.json"
SUMMED = ("epoch_time_s",)  # a trial's epoch takes every fold's time


def fit_task(make: Callable[[Mapping], Task], config: Mapping, task: Mapping, run: Mapping, reporter: Reporter):
    """Train a trial of the task ``make`` builds: one model, or under cross-validation one per fold.

    Returns the last epoch's metrics (under cross-validation, the folds' means).
    """
    task = with_trial_model(task, config)
    dataset = task["dataset"]
    if not dataset.get("folds") or dataset.get("fold") is not None:  # one model (a task of one fold is one too)
        return fit(loaded_task(make, task), config, run, reporter)
    return fit_folds(make, config, task, run, reporter)


def fit_folds(make: Callable[[Mapping], Task], config: Mapping, task: Mapping, run: Mapping, reporter: Reporter):
    """Train every fold an epoch at a time; report the folds' means each epoch with a checkpoint of them all."""
    count = int(task["dataset"]["folds"]["count"])
    settings, run_settings = TrialConfig.from_dict(config), RunSettings.from_dict(run)
    metrics: dict = {}
    with tempfile.TemporaryDirectory(prefix="tune-folds-") as work:
        previous = _resumed(reporter, work)
        progress = _read_progress(previous)
        for epoch in range(progress.start, settings.epochs + 1):
            current = os.path.join(work, f"epoch-{epoch}")
            folds = [_fold_epoch(make, config, task, run, i, epoch, previous, current) for i in range(count)]
            metrics = summarized(folds, run_settings.metric, run_settings.mode)
            stop = _watch(progress, metrics, settings.early_stopping_patience, run_settings)
            _checkpoint(current, metrics["best_fold"], epoch, progress)
            reporter.report(metrics, current)
            if previous is not None:
                shutil.rmtree(previous)
            previous = current
            if stop:
                break
    return metrics


def summarized(folds: list[dict], metric: str, mode: str) -> dict:
    """One epoch of the folds as the trial's metrics: each one's mean (a value every fold shares stays as it
    is; the epoch's time is summed), ``NAME_std`` for each validation metric, the best fold by ``metric``."""
    out: dict = {}
    for key, first in folds[0].items():
        if isinstance(first, bool) or not isinstance(first, (int, float)):
            continue
        values = [fold[key] for fold in folds]
        if key in SUMMED:
            out[key] = float(sum(values))
        elif all(v == first for v in values):
            out[key] = first
        else:
            out[key] = float(np.mean(values))
        if key.startswith("val_"):
            out[f"{key}_std"] = float(np.std(values))
    scores = [fold[metric] for fold in folds]
    out["best_fold"] = int(np.argmax(scores) if mode == "max" else np.argmin(scores))
    out["folds"] = len(folds)
    return out


class _FoldReporter:
    """One fold's door: resumes from its part of the trial's last checkpoint, keeps its epoch's checkpoint."""

    def __init__(self, resume_from: str | None, keep_in: str):
        self.resume_from, self.keep_in, self.metrics = resume_from, keep_in, {}

    @contextlib.contextmanager
    def latest_checkpoint(self) -> Iterator[str | None]:
        yield self.resume_from

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.metrics = dict(metrics)
        os.makedirs(self.keep_in)
        for entry in os.listdir(checkpoint_dir):  # the loop deletes its folder once this returns
            shutil.move(os.path.join(checkpoint_dir, entry), os.path.join(self.keep_in, entry))


def _fold_epoch(make, config, task, run, index: int, epoch: int, previous: str | None, current: str) -> dict:
    """Fold ``index``'s epoch ``epoch``, from its checkpoint in ``previous``, into ``current``; its metrics."""
    part = os.path.join(FOLDS_DIR, str(index))
    reporter = _FoldReporter(previous and os.path.join(previous, part), os.path.join(current, part))
    fit(loaded_task(make, fold_task(task, index)), config, run, reporter, until=epoch)
    return reporter.metrics


def _resumed(reporter: Reporter, work: str) -> str | None:
    """A copy of the trial's checkpoint to continue from, in ``work``; None for a new trial."""
    with reporter.latest_checkpoint() as checkpoint:
        if checkpoint is None:
            return None
        if not os.path.isdir(os.path.join(checkpoint, FOLDS_DIR)):
            raise ValueError(f"checkpoint {checkpoint} has no folds: it was not written under cross-validation")
        return shutil.copytree(checkpoint, os.path.join(work, "resumed"))


def _read_progress(checkpoint: str | None) -> Progress:
    if checkpoint is None:
        return Progress()
    with open(os.path.join(checkpoint, STATE), encoding="utf-8") as fh:
        state = json.load(fh)
    return Progress(state["epoch"] + 1, state["best"], state["stale"])


def _watch(progress: Progress, metrics: dict, patience: int | None, run: RunSettings) -> bool:
    """Track the folds' mean metric; whether the trial stops early (it has not improved for ``patience``)."""
    if improved(metrics[run.metric], progress.best, run.mode):
        progress.best, progress.stale = metrics[run.metric], 0
    else:
        progress.stale += 1
    metrics["early_stopped"] = patience is not None and progress.stale >= patience
    return metrics["early_stopped"]


def _checkpoint(folder: str, best_fold: int, epoch: int, progress: Progress) -> None:
    """The best fold's model as the checkpoint's own (hard links), and where the folds are."""
    best = os.path.join(folder, FOLDS_DIR, str(best_fold), MODEL_DIR)
    shutil.copytree(best, os.path.join(folder, MODEL_DIR), copy_function=_link)
    state = {"epoch": epoch, "best": progress.best, "stale": progress.stale, "best_fold": best_fold}
    with open(os.path.join(folder, STATE), "w", encoding="utf-8") as fh:
        json.dump(state, fh)


def _link(src: str, dst: str) -> None:
    """A hard link where the filesystem allows one, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


__all__ = ["fit_task", "fit_folds", "summarized", "FOLDS_DIR"]
