"""LoRA adapters (peft) on the text task: the spec, the groups, LoRA+ rates, checkpoints, loading, bad input."""

from __future__ import annotations

import copy
import os

import pytest
import torch

import search_spaces
from trainables.config import GroupConfig, TrialConfig
from trainables.loop import fit
from trainables.optim import configure_optimizers
from trainables.param_groups import build_param_groups
from trainables.reporting import LocalReporter
from trainables.text_classification import TextClassification, load_pretrained
from tune_service import SpecError, load_spec

GROUP = {
    "lr": 1e-2, "optimizer": "adamw", "weight_decay": 0.0, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999,
    "scheduler": "linear", "warmup_ratio": 0.2, "gamma": 0.5, "step_epochs": 1, "decay": 1.0,
    "frozen": False, "unfreeze_epoch": None,
}  # fmt: skip
CONFIG = {
    "groups": {
        "lora_A": dict(GROUP), "lora_B": {**GROUP, "lr": {"relative_to": "lora_A", "ratio": 16.0}},
        "head": {**GROUP, "lr": 3e-2},
    },
    "batch_size": 16, "epochs": 2, "dropout": 0.0, "l1": 0.0, "l2": 0.0, "max_grad_norm": 1.0,
    "frozen_layers": 0, "early_stopping_patience": None, "seed": 3, "adapter": {"r": 4, "alpha": 8.0, "dropout": 0.0},
}  # fmt: skip
RUN = {"metric": "val_accuracy", "mode": "max", "num_threads": 1}


@pytest.fixture
def lora_task(task):
    return {**task, "adapter": {"type": "lora", "target_modules": "attention"}}


def adapter_spec(make_spec, **adapter):
    spec = make_spec()
    spec["task"]["adapter"] = {"type": "lora", "target_modules": "attention"}
    spec["hyperparameters"]["groups"] = {
        "lora_A": {"lr": {"loguniform": [1e-4, 1e-2]}},
        "lora_B": {"lr": {"relative_to": "lora_A", "ratio": {"loguniform": [1, 64]}}},
        "head": {"lr": 1e-3},
    }
    spec["hyperparameters"]["adapter"] = {"r": {"choice": [4, 8]}, **adapter}
    return spec


def test_an_adapter_spec_searches_the_rank_and_the_lora_plus_ratio(make_spec):
    spec = load_spec(adapter_spec(make_spec))
    assert spec.task.group_names == ("lora_A", "lora_B", "head")
    names = search_spaces.searched(spec.hyperparameters)
    assert {"adapter.r", "groups.lora_A.lr", "groups.lora_B.lr.ratio"} <= set(names)
    space = search_spaces.build(spec).param_space
    assert space["adapter"]["alpha"] == 16.0 and hasattr(space["adapter"]["r"], "sample")


def test_adapter_settings_without_an_adapter_are_refused(make_spec):
    spec = make_spec()
    spec["hyperparameters"]["adapter"] = {"r": 8}
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    assert "hyperparameters.adapter" in [p for p, _ in exc.value.problems]


def test_the_groups_of_an_adapted_model_partition_its_trainable_parameters(lora_task):
    adapter = TextClassification(lora_task)
    model = adapter.build_model(TrialConfig.from_dict(CONFIG), None)
    groups = build_param_groups(model, adapter.selectors(model))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(groups) == {"lora_A", "lora_B", "head"}
    assert {n for members in groups.values() for n, _ in members} == trainable
    assert all(".lora_A." in n for n, _ in groups["lora_A"]) and all(".lora_B." in n for n, _ in groups["lora_B"])
    assert groups["head"] and all("classifier" in n for n, _ in groups["head"])
    assert not any("attention.self.key" in n for n in trainable)  # "attention" is peft's list: query and value


def test_lora_plus_b_learns_at_the_ratio_times_a_at_every_step():
    config = TrialConfig.from_dict(CONFIG)
    a, b = torch.nn.Linear(4, 2), torch.nn.Linear(2, 4)
    model = torch.nn.ModuleDict({"lora_A": a, "lora_B": b})
    groups = {"lora_A": list(a.named_parameters()), "lora_B": list(b.named_parameters())}
    opt = configure_optimizers(model, groups, {g: config.groups[g] for g in groups}, steps_per_epoch=5, epochs=2)
    assert config.groups["lora_B"] == GroupConfig.from_dict({**GROUP, "lr": 16 * GROUP["lr"]})
    for _ in range(10):
        rates = {g: o.param_groups[0]["lr"] for g, o in opt.optimizers.items()}
        assert rates["lora_B"] == pytest.approx(16 * rates["lora_A"])
        for g in groups:
            opt.optimizers[g].step()
            opt.schedulers[g].step()


class Interrupt(Exception):
    pass


class InterruptingReporter(LocalReporter):
    def report(self, metrics, checkpoint_dir):
        super().report(metrics, checkpoint_dir)
        if metrics["epoch"] == 1:
            raise Interrupt


def test_an_adapter_trial_checkpoints_the_adapter_alone_resumes_exactly_and_loads_back(lora_task, tmp_path):
    whole = LocalReporter(tmp_path / "whole", stream=None)
    fit(TextClassification(lora_task), copy.deepcopy(CONFIG), RUN, whole)
    ckpt = whole.checkpoints[-1] / "model"
    assert (ckpt / "adapter_model.safetensors").exists() and not (ckpt / "model.safetensors").exists()
    adapter_bytes = os.path.getsize(ckpt / "adapter_model.safetensors")
    base_bytes = sum(p.numel() * 4 for p in TextClassification(lora_task).build_model(
        TrialConfig.from_dict(CONFIG), None).get_base_model().parameters())  # fmt: skip
    assert adapter_bytes < base_bytes / 4

    cut = InterruptingReporter(tmp_path / "cut", stream=None)
    with pytest.raises(Interrupt):
        fit(TextClassification(lora_task), copy.deepcopy(CONFIG), RUN, cut)
    resumed = LocalReporter(tmp_path / "resumed", resume_from=cut.checkpoints[-1], stream=None)
    fit(TextClassification(lora_task), copy.deepcopy(CONFIG), RUN, resumed)
    assert resumed.history[-1]["val_loss"] == pytest.approx(whole.history[-1]["val_loss"], rel=1e-5)

    model, tokenizer = load_pretrained(str(ckpt))
    trial_model = TextClassification(lora_task).build_model(TrialConfig.from_dict(CONFIG), str(ckpt)).eval()
    batch = tokenizer(["good film", "bad plot"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, trial_model(**batch).logits)


def test_an_unknown_target_module_is_refused_naming_the_modules_there(make_spec):
    from tune_service.validate import check_task

    spec = adapter_spec(make_spec)
    spec["task"]["adapter"]["target_modules"] = ["qkv"]
    with pytest.raises(SpecError) as exc:
        check_task(load_spec(spec))
    (path, message), *_ = exc.value.problems
    assert path == "task.adapter.target_modules" and "['qkv']" in message and "query" in message
