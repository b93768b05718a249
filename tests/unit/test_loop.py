"""The loop (an optimizer per parameter group), run without Ray on a tiny BERT: freezing, optimizers,
early stopping, resume."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainables import loop
from trainables.loop import TRAIN_STATE, loaded_task
from trainables.reporting import LocalReporter
from trainables.text_classification import METRICS, TextClassification, train

GROUP = {
    "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.0, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999,
    "scheduler": "constant", "warmup_ratio": 0.0, "gamma": 0.5, "step_epochs": 1, "decay": 1.0,
    "frozen": False, "unfreeze_epoch": None,
}  # fmt: skip
CONFIG = {
    "groups": {"encoder": dict(GROUP), "head": {**GROUP, "lr": 1e-2, "optimizer": "sgd"}},
    "batch_size": 16, "epochs": 3, "dropout": 0.1, "l1": 0.0, "l2": 0.0, "max_grad_norm": 1.0,
    "frozen_layers": 0, "early_stopping_patience": None, "seed": 3,
}  # fmt: skip
RUN = {"metric": "val_accuracy", "mode": "max", "num_threads": 1}


def config(**changes) -> dict:
    cfg = copy.deepcopy(CONFIG)
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return cfg


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "model" / "model.safetensors")


class Interrupt(Exception):
    pass


class InterruptingReporter(LocalReporter):
    """Stops the run (as a crash would) right after epoch ``after`` is checkpointed."""

    def __init__(self, out_dir, after: int):
        super().__init__(out_dir, stream=None)
        self.after = after

    def report(self, metrics, checkpoint_dir):
        super().report(metrics, checkpoint_dir)
        if metrics["epoch"] == self.after:
            raise Interrupt


def test_reports_every_metric_each_epoch_and_learns(task, tmp_path):
    rep = LocalReporter(tmp_path, stream=None)
    last = train(config(), task, RUN, rep)
    assert [m["epoch"] for m in rep.history] == [1, 2, 3]
    for m in rep.history:
        assert set(METRICS) <= set(m)
        assert 0 <= m["val_accuracy"] <= 1 and 0 <= m["val_f1"] <= 1
    assert last["val_accuracy"] >= 0.9, rep.history  # the generated task is easy
    assert rep.history[-1]["train_loss"] < rep.history[0]["train_loss"]


def test_each_group_has_its_own_optimizer_type(task, tmp_path):
    rep = LocalReporter(tmp_path, stream=None)
    train(config(epochs=1), task, RUN, rep)
    state = torch.load(rep.checkpoints[-1] / TRAIN_STATE, weights_only=True)
    enc = state["optimizers"]["encoder"]["state"]
    head = state["optimizers"]["head"]["state"]
    assert all("exp_avg" in s for s in enc.values())  # AdamW
    assert all("momentum_buffer" in s for s in head.values())  # SGD
    assert rep.history[0]["lr/encoder"] == 3e-3 and rep.history[0]["lr/head"] == 1e-2


def test_frozen_group_is_unchanged_until_it_unfreezes(task, tiny_bert, tmp_path):
    rep = LocalReporter(tmp_path, stream=None)
    train(config(groups__encoder__frozen=True, groups__encoder__unfreeze_epoch=2), task, RUN, rep)
    initial = load_file(Path(tiny_bert) / "model.safetensors")
    after1, after2 = weights(rep.checkpoints[0]), weights(rep.checkpoints[1])
    encoder = [k for k in initial if k.startswith("bert.")]
    assert encoder
    assert all(torch.equal(after1[k], initial[k]) for k in encoder)
    assert any(not torch.equal(after2[k], after1[k]) for k in encoder)
    assert not torch.equal(after1["classifier.weight"], initial["classifier.weight"])
    assert rep.history[0]["trainable_params/encoder"] == 0
    assert rep.history[1]["trainable_params/encoder"] > 0


def test_lowest_layers_stay_frozen(task, tiny_bert, tmp_path):
    rep = LocalReporter(tmp_path, stream=None)
    train(config(frozen_layers=2, epochs=2), task, RUN, rep)
    initial = load_file(Path(tiny_bert) / "model.safetensors")
    final = weights(rep.checkpoints[-1])
    frozen = [k for k in initial if k.startswith(("bert.embeddings.", "bert.encoder.layer.0."))]
    trained = [k for k in initial if k.startswith("bert.encoder.layer.1.")]
    assert frozen and trained
    assert all(torch.equal(final[k], initial[k]) for k in frozen)
    assert any(not torch.equal(final[k], initial[k]) for k in trained)


def test_too_many_frozen_layers_is_an_error(task):
    with pytest.raises(ValueError, match="frozen_layers=9, but the model has 3 layers"):
        train(config(frozen_layers=9), task, RUN, LocalReporter(stream=None))


def test_early_stopping_ends_a_trial_without_improvement(task):
    rep = LocalReporter(stream=None)
    cfg = config(epochs=5, early_stopping_patience=1, groups__encoder__lr=1e-12, groups__head__lr=1e-12)
    last = train(cfg, task, RUN, rep)
    assert len(rep.history) == 2 and last["early_stopped"] is True


def test_penalties_and_dropout_change_training(task):
    base = train(config(epochs=1), task, RUN, LocalReporter(stream=None))
    l2 = train(config(epochs=1, l2=0.1), task, RUN, LocalReporter(stream=None))
    no_dropout = train(config(epochs=1, dropout=0.0), task, RUN, LocalReporter(stream=None))
    assert l2["val_loss"] != base["val_loss"]
    assert no_dropout["train_loss"] != base["train_loss"]


def test_resume_under_a_changed_config_trains_with_the_new_rates(task, tmp_path):
    # what PBT does: continue another trial's checkpoint with perturbed hyperparameters
    cfg = config(groups__encoder__scheduler="linear", groups__head__weight_decay=0.01)
    first = InterruptingReporter(tmp_path / "first", after=1)
    with pytest.raises(Interrupt):
        train(cfg, task, RUN, first)
    state = torch.load(first.checkpoints[0] / "train_state.pt", weights_only=True)
    perturbed = copy.deepcopy(cfg)
    perturbed["groups"]["encoder"]["lr"] *= 1.2
    perturbed["groups"]["head"]["lr"] *= 0.8
    perturbed["groups"]["head"]["weight_decay"] = 0.02
    resumed = LocalReporter(tmp_path / "resumed", resume_from=first.checkpoints[0], stream=None)
    train(perturbed, task, RUN, resumed)

    # the schedule continues from where it was (linear decay, step count from the checkpoint),
    # scaled to the new peak rates
    whole = LocalReporter(tmp_path / "whole", stream=None)
    train(perturbed, task, RUN, whole)
    for a, b in zip(whole.history[1:], resumed.history):
        assert b["lr/encoder"] == pytest.approx(a["lr/encoder"])
        assert b["lr/head"] == pytest.approx(a["lr/head"])
    assert resumed.history[0]["lr/encoder"] != pytest.approx(state["schedulers"]["encoder"]["_last_lr"][0])
    # the optimizer's moments came from the checkpoint: training does not restart from scratch
    assert resumed.history[0]["epoch"] == 2


def test_derived_rates_resolve_against_their_group():
    from trainables.config import resolve_derived

    groups = {"encoder": {"lr": 2e-5, "weight_decay": 0.1}, "head": {"lr": {"relative_to": "encoder", "ratio": 50}}}
    resolved = resolve_derived(groups)
    assert resolved["head"]["lr"] == pytest.approx(1e-3) and resolved["encoder"]["lr"] == 2e-5
    assert groups["head"]["lr"] == {"relative_to": "encoder", "ratio": 50}  # the config is left alone


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_resumes_its_loss_scale(task, tmp_path, precision):
    run = {**RUN, "precision": precision}
    reporter = LocalReporter(tmp_path / "ckpt", stream=None)
    train(config(epochs=1), task, run, reporter)
    losses = [h["train_loss"] for h in reporter.history]
    assert all(loss == loss and loss < 10 for loss in losses)  # finite: autocast did not blow up
    state = torch.load(tmp_path / "ckpt" / "checkpoint_001" / TRAIN_STATE, weights_only=True)
    assert ("scaler" in state) == (precision == "fp16")  # fp16's loss scale is part of the exact resume
    fp32 = LocalReporter(None, stream=None)
    train(config(epochs=1), task, RUN, fp32)
    assert reporter.history[0]["train_loss"] != fp32.history[0]["train_loss"]  # autocast really ran


def test_a_failed_checkpoint_write_keeps_the_last_one_and_says_why(task, tmp_path, monkeypatch):
    import errno
    import pickle

    from trainables import loop

    real_save = torch.save
    calls = {"n": 0}

    def save(obj, path, *args, **kwargs):  # the disk fills up while epoch 2's checkpoint is written
        if TRAIN_STATE in str(path):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(loop.torch, "save", save)
    rep = LocalReporter(tmp_path / "ckpt", stream=None)
    with pytest.raises(loop.CheckpointError) as err:
        train(config(), task, RUN, rep)
    message = str(err.value)
    assert "epoch 2" in message and "the disk is full" in message and "epoch 1 is intact" in message
    # Ray pickles it to the driver: it comes back whole
    back = pickle.loads(pickle.dumps(err.value))
    assert type(back) is loop.CheckpointError and str(back) == message and back.errno == errno.ENOSPC
    assert [m["epoch"] for m in rep.history] == [1] and len(rep.checkpoints) == 1
    monkeypatch.undo()
    # the kept checkpoint is whole: the run continues from it to the end
    resumed = LocalReporter(tmp_path / "resumed", resume_from=rep.checkpoints[0], stream=None)
    train(config(), task, RUN, resumed)
    assert [m["epoch"] for m in resumed.history] == [2, 3]


def test_a_reused_process_loads_the_task_once_and_its_trials_train_as_in_a_fresh_one(task):
    first = loaded_task(TextClassification, task)
    assert loaded_task(TextClassification, copy.deepcopy(task)) is first  # the same task: not loaded again
    assert loaded_task(TextClassification, {**task, "max_length": 8}) is not first  # another task is
    loop._loaded.cache_clear()
    fresh = train(config(epochs=1), task, RUN, LocalReporter(stream=None))  # builds the task
    built = loaded_task(TextClassification, task)
    again = train(config(epochs=1), task, RUN, LocalReporter(stream=None))  # a second trial on it
    assert loaded_task(TextClassification, task) is built
    assert loop._loaded.cache_info().misses == 1  # built once, by the first trial
    # the first trial left nothing in the task that changes the next one's training
    assert again["train_loss"] == fresh["train_loss"] and again["val_accuracy"] == fresh["val_accuracy"]


def test_layer_decay_gives_each_layer_its_rate_the_embeddings_last(task):
    """The encoder's top layer (and the pooler, in no layer) at its lr, each layer below at decay x the one
    above; the head, without layer_decay, at one rate; the rates reported for the top and the bottom."""
    from trainables.config import TrialConfig
    from trainables.optim import configure_optimizers
    from trainables.param_groups import build_param_groups

    cfg = TrialConfig.from_dict(config(groups__encoder__layer_decay=0.5))
    adapter = TextClassification(task)
    model = adapter.build_model(cfg, None)
    layers = adapter.layers(model)  # embeddings, layer 0, layer 1
    groups = build_param_groups(model, adapter.selectors(model))
    opt = configure_optimizers(model, groups, cfg.groups, steps_per_epoch=1, epochs=1, layers=layers)
    rate = {id(p): pg["lr"] for o in opt.optimizers.values() for pg in o.param_groups for p in pg["params"]}
    named = dict(model.named_parameters())
    lr = 3e-3  # CONFIG's encoder rate
    assert len(layers) == 3
    for k, layer in enumerate(layers):
        assert [rate[id(named[n])] for n in layer] == pytest.approx([lr * 0.5 ** (2 - k)] * len(layer))
    assert rate[id(named["bert.pooler.dense.weight"])] == pytest.approx(lr)
    assert {rate[id(p)] for _, p in groups["head"]} == {1e-2}

    history = LocalReporter(stream=None)
    train(config(epochs=1, groups__encoder__layer_decay=0.5), task, RUN, history)
    m = history.history[0]
    assert m["lr/encoder"] == pytest.approx(lr) and m["lr/encoder/bottom"] == pytest.approx(lr * 0.25)
    assert "lr/head/bottom" not in m


def test_training_through_torch_compile_ends_where_eager_training_does(task, tmp_path):
    """``resources.compile``: the steps run through torch.compile; the trial's metrics match eager training."""
    from torch._dynamo.utils import counters

    # each new batch shape (rows, padded length) is compiled again: two batches keep it to a few graphs
    small = {**task, "dataset": {**task["dataset"], "train_size": 32, "validation_size": 16}}
    counters.clear()
    results = []
    for compiled in (False, True):
        rep = LocalReporter(tmp_path / str(compiled), stream=None)
        train(config(epochs=1, dropout=0.0), small, {**RUN, "compile": compiled}, rep)
        results.append(rep.history[-1])
    eager, compiled = results
    assert counters["stats"]["unique_graphs"] >= 1  # the compiled trial's steps went through dynamo
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-3)
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-3)
