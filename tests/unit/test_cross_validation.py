"""Cross-validation inside a trial: the folds partition the training rows, the trial reports their mean, resumes."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file
from test_data import cfg, write
from test_loop import RUN, Interrupt, config

from trainables import cross_validation
from trainables.cross_validation import FOLDS_DIR, fit_folds
from trainables.data import DataError, fold_task, load_text_data
from trainables.loop import fit
from trainables.reporting import LocalReporter
from trainables.text_classification import TextClassification, train


def folded(task: dict, count: int, stratified: bool = True) -> dict:
    task = copy.deepcopy(task)
    task["dataset"]["folds"] = {"count": count, "stratified": stratified}
    return task


def test_the_folds_partition_the_training_rows_and_keep_the_classes(tmp_path):
    rows = [(f"review {i}", "pos" if i % 4 else "neg") for i in range(80)]  # 60 pos, 20 neg
    source = write(tmp_path, rows)
    base = cfg(source=source, test_split=0.25, folds={"count": 4, "stratified": True})
    parts = [load_text_data({**base, "fold": i}, seed=0) for i in range(4)]
    test = set(load_text_data({**base, "part": "test"}, seed=0).validation.texts)
    validation = [set(p.validation.texts) for p in parts]
    pool = set().union(*validation)
    # the validation parts are disjoint and together are every training row; no test row is among them
    assert sum(map(len, validation)) == len(pool) == 60 and not pool & test and pool | test == {r[0] for r in rows}
    classes = Counter(label for p in parts for label in p.validation.labels)
    for part, held in zip(parts, validation):
        assert set(part.train.texts) == pool - held  # each fold trains on the other parts
        # stratified: each part holds a quarter of each class, to a row
        assert all(abs(n - classes[c] / 4) < 1 for c, n in Counter(part.validation.labels).items()), classes
    # the same folds for every trial: cut from the dataset's seed
    assert load_text_data({**base, "fold": 2}, seed=0).validation.texts == parts[2].validation.texts


def test_a_refit_trains_on_every_training_row(tmp_path):
    rows = [(f"review {i}", "pos" if i % 2 else "neg") for i in range(40)]
    base = cfg(source=write(tmp_path, rows), test_split=0.25, folds={"count": 4, "stratified": True}, fold=1)
    one, refit = load_text_data(base, seed=0), load_text_data({**base, "part": "all"}, seed=0)
    test = set(load_text_data({**base, "part": "test"}, seed=0).validation.texts)
    assert len(refit.train) == 30 and not set(refit.train.texts) & test  # every training row, no test row
    assert set(refit.train.texts) == set(one.train.texts) | set(one.validation.texts)
    assert refit.validation.texts == one.validation.texts  # evaluated on the fold's part, which it trains on
    # train_size caps the rows the folds partition, and so the refit's
    capped = [load_text_data({**base, "train_size": 20, "fold": i}, seed=0) for i in range(4)]
    drawn = set().union(*(set(c.train.texts) | set(c.validation.texts) for c in capped))
    assert len(drawn) == 20 and drawn <= set(refit.train.texts)
    assert sorted(len(c.validation) for c in capped) == [5, 5, 5, 5]
    assert set(load_text_data({**base, "train_size": 20, "part": "all"}, seed=0).train.texts) == drawn


def test_stratified_folds_need_a_row_of_every_class_per_fold(tmp_path):
    rows = [(f"review {i}", "pos" if i % 10 else "neg") for i in range(30)]  # 3 neg
    source = write(tmp_path, rows)
    with pytest.raises(DataError, match=r"folds=4, but class 'neg' has 3 rows .* at most 3 folds") as exc:
        load_text_data(cfg(source=source, folds={"count": 4, "stratified": True}, fold=0), seed=0)
    assert exc.value.field == "search.cross_validation.folds"
    plain = load_text_data(cfg(source=source, folds={"count": 4, "stratified": False}, fold=0), seed=0)
    assert len(plain.validation) + len(plain.train) == 30


def test_the_trial_reports_the_mean_of_its_folds_each_epoch(task, tmp_path):
    """Each fold's model trained alone gives the values whose mean (and spread) the trial reports."""
    cv_task, cfg2 = folded(task, 2), config(epochs=2)
    rep = LocalReporter(tmp_path / "cv", stream=None)
    fit_folds(TextClassification, cfg2, cv_task, RUN, rep)
    alone = []
    for i in range(2):
        one = LocalReporter(stream=None)
        fit(TextClassification(fold_task(cv_task, i)), cfg2, RUN, one)  # the fold's model, trained alone
        alone.append(one.history)
    assert [m["epoch"] for m in rep.history] == [1, 2]
    for epoch, reported in enumerate(rep.history):
        values = [alone[i][epoch]["val_accuracy"] for i in range(2)]
        assert reported["val_accuracy"] == pytest.approx(sum(values) / 2)
        assert reported["val_accuracy_std"] == pytest.approx(abs(values[0] - values[1]) / 2)
        assert reported["val_loss"] == pytest.approx(sum(alone[i][epoch]["val_loss"] for i in range(2)) / 2)
        assert reported["folds"] == 2 and reported["best_fold"] == max(range(2), key=lambda i: values[i])
    # the checkpoint holds every fold, and as its model the best fold's
    last = rep.checkpoints[-1]
    assert sorted(p.name for p in (last / FOLDS_DIR).iterdir()) == ["0", "1"]
    best = last / FOLDS_DIR / str(rep.history[-1]["best_fold"]) / "model" / "model.safetensors"
    model, fold = load_file(last / "model" / "model.safetensors"), load_file(best)
    assert all(torch.equal(model[k], fold[k]) for k in model)


def test_a_trial_restored_mid_epoch_continues_every_fold_where_it_was(task, tmp_path, monkeypatch):
    cv_task, cfg3 = folded(task, 2, stratified=False), config(epochs=3)
    whole = LocalReporter(tmp_path / "whole", stream=None)
    train(cfg3, cv_task, RUN, whole)  # a task's train: cross-validation under task.dataset.folds

    fold_report = cross_validation._FoldReporter.report

    def crash_in_epoch_2_fold_1(self, metrics, checkpoint_dir):
        if metrics["epoch"] == 2 and self.keep_in.endswith(f"{FOLDS_DIR}/1"):
            raise Interrupt  # epoch 2: fold 0 trained, fold 1 not
        fold_report(self, metrics, checkpoint_dir)

    monkeypatch.setattr(cross_validation._FoldReporter, "report", crash_in_epoch_2_fold_1)
    broken = LocalReporter(tmp_path / "broken", stream=None)
    with pytest.raises(Interrupt):
        train(cfg3, cv_task, RUN, broken)
    monkeypatch.undo()
    assert [m["epoch"] for m in broken.history] == [1]
    resumed = LocalReporter(tmp_path / "resumed", resume_from=broken.checkpoints[0], stream=None)
    train(cfg3, cv_task, RUN, resumed)
    assert [m["epoch"] for m in resumed.history] == [2, 3]
    for a, b in zip(whole.history[1:], resumed.history):
        for key in ("val_loss", "val_accuracy", "val_accuracy_std", "train_loss", "best_fold"):
            assert a[key] == b[key], key


def test_early_stopping_watches_the_folds_mean(task):
    rep = LocalReporter(stream=None)
    cfg = config(epochs=6, early_stopping_patience=1, groups__encoder__lr=0.0, groups__head__lr=0.0)
    last = train(cfg, folded(task, 2), RUN, rep)  # nothing learns: the mean cannot improve after epoch 1
    assert last["early_stopped"] and [m["epoch"] for m in rep.history] == [1, 2]
