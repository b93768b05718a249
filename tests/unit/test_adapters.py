"""LoRA adapters (peft) on the text task and the image+text towers: the spec, the groups, LoRA+ rates,
checkpoints, loading (merged or not), searched target modules, bad input."""

from __future__ import annotations

import copy
import os

import pytest
import torch

import search_spaces
from trainables import image_text
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


def test_an_adapter_trial_checkpoints_the_adapter_alone_and_loads_back(  # resume: test_resume_exactly.py
    lora_task, tmp_path
):
    whole = LocalReporter(tmp_path / "whole", stream=None)
    fit(TextClassification(lora_task), copy.deepcopy(CONFIG), RUN, whole)
    ckpt = whole.checkpoints[-1] / "model"
    assert (ckpt / "adapter_model.safetensors").exists() and not (ckpt / "model.safetensors").exists()
    adapter_bytes = os.path.getsize(ckpt / "adapter_model.safetensors")
    base_bytes = sum(p.numel() * 4 for p in TextClassification(lora_task).build_model(
        TrialConfig.from_dict(CONFIG), None).get_base_model().parameters())  # fmt: skip
    assert adapter_bytes < base_bytes / 4

    model, tokenizer = load_pretrained(str(ckpt))
    trial_model = TextClassification(lora_task).build_model(TrialConfig.from_dict(CONFIG), str(ckpt)).eval()
    merged, _ = load_pretrained(str(ckpt), merge=True)
    assert not any("lora" in n for n, _ in merged.named_parameters()) and type(merged).__module__.startswith(
        "transformers."
    )
    batch = tokenizer(["good film", "bad plot"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, trial_model(**batch).logits)
        assert torch.allclose(merged(**batch).logits, trial_model(**batch).logits, atol=1e-5)


def test_an_unknown_target_module_is_refused_naming_the_modules_there(make_spec):
    from tune_service.validate import check_task

    spec = adapter_spec(make_spec)
    spec["task"]["adapter"]["target_modules"] = ["qkv"]
    with pytest.raises(SpecError) as exc:
        check_task(load_spec(spec))
    (path, message), *_ = exc.value.problems
    assert path == "task.adapter.target_modules" and "['qkv']" in message and "query" in message


def test_a_searched_preset_of_target_modules_reaches_the_trial(make_spec, lora_task):
    spec = adapter_spec(make_spec, target_modules={"choice": ["attention", "attention+mlp"]})
    del spec["task"]["adapter"]["target_modules"]
    assert "adapter.target_modules" in search_spaces.searched(load_spec(spec).hyperparameters)
    config = copy.deepcopy(CONFIG)
    config["adapter"]["target_modules"] = "attention+mlp"
    model = TextClassification(lora_task).build_model(TrialConfig.from_dict(config), None)
    adapted = {n.split(".lora_A.")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert {"query", "key", "value", "dense"} <= adapted  # attention and MLP: every linear layer of the layers

    spec["task"]["adapter"]["target_modules"] = ["query"]
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    assert [p for p, _ in exc.value.problems] == ["hyperparameters.adapter.target_modules"]


@pytest.fixture
def adapted_image_task(make_image_task, image_folder, tiny_bert):
    """The image+text task on a pretrained text tower (the tiny BERT's folder) with LoRA on it."""
    return {**make_image_task(image_folder), "text_model": tiny_bert,
            "adapter": {"type": "lora", "target_modules": "attention", "towers": ["text"]}}  # fmt: skip


IMAGE_CONFIG = {
    **CONFIG,
    "groups": {**CONFIG["groups"], "vision": {**GROUP, "lr": 3e-3}},
    "batch_size": 16,
}
IMAGE_RUN = {"metric": "val_recall_at_1", "mode": "max", "num_threads": 1}


def test_an_image_text_spec_adapts_its_pretrained_towers_and_trains_the_rest(make_image_spec, tiny_bert):
    spec = make_image_spec(**{"task.text_model": tiny_bert})
    spec["task"]["adapter"] = {"type": "lora"}
    spec["hyperparameters"]["groups"] = {g: {"lr": 1e-3} for g in ("lora_A", "lora_B", "vision", "head")}
    parsed = load_spec(spec)
    assert parsed.task.adapted_towers == ("text",)  # the vision tower is built from a config: trained in full
    assert parsed.task.group_names == ("lora_A", "lora_B", "vision", "head")
    assert parsed.task.base_model == f"text: {tiny_bert}"  # the registered version's tune_service.base_model

    spec["task"]["adapter"]["towers"] = ["vision", "text"]
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    ((path, message),) = exc.value.problems
    assert path.startswith("task") and "vision, built from a config" in message

    spec["task"]["text_model"] = parsed.task.model_dump()["vision_model"] | {"model_type": "bert"}
    spec["task"]["adapter"] = {"type": "lora"}
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    assert "both towers are built from configs" in exc.value.problems[0][1]


def test_an_adapted_image_text_trial_checkpoints_its_adapter_and_loads_back_merged_or_not(adapted_image_task, tmp_path):
    task = image_text.ImageText(adapted_image_task)
    model = task.build_model(TrialConfig.from_dict(IMAGE_CONFIG), None)
    groups = build_param_groups(model, task.selectors(model))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for members in groups.values() for n, _ in members} == trainable
    assert {n.split(".")[0] for n, _ in groups["vision"]} == {"vision_model"}
    assert all(n.startswith("text_model.") for g in ("lora_A", "lora_B") for n, _ in groups[g])
    assert not any(n.startswith("text_model.") and ".lora_" not in n for n in trainable)  # its base is frozen

    whole = LocalReporter(tmp_path / "whole", stream=None)
    fit(image_text.ImageText(adapted_image_task), copy.deepcopy(IMAGE_CONFIG), IMAGE_RUN, whole)
    ckpt = whole.checkpoints[-1] / "model"
    assert (ckpt / "text_adapter" / "adapter_model.safetensors").exists() and not (ckpt / "model.safetensors").exists()
    from safetensors.torch import load_file

    assert not any(n.startswith("text_model.") for n in load_file(ckpt / image_text.TRAINED_FILE))

    def scores(model):
        return {k: v for k, v in task.evaluate(model).items() if k != "val_latency_ms"}

    trial_scores = scores(task.build_model(TrialConfig.from_dict(IMAGE_CONFIG), str(ckpt)))
    assert trial_scores["val_loss"] == pytest.approx(whole.history[-1]["val_loss"], rel=1e-6)
    loaded, _ = image_text.load_pretrained(str(ckpt))
    merged, _ = image_text.load_pretrained(str(ckpt), merge=True)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert scores(loaded) == trial_scores
    assert scores(merged)["val_loss"] == pytest.approx(trial_scores["val_loss"], rel=1e-4)


def test_a_model_peft_cannot_wrap_is_refused_naming_the_adapter():
    from trainables import adapters
    from trainables.data import TaskError

    no_linear = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LayerNorm(4))
    with pytest.raises(TaskError) as exc:
        adapters.attach_tower(no_linear, {"target_modules": "all-linear"}, adapters.LAYOUT, "")
    assert exc.value.field == "task.adapter" and "peft cannot put a LoRA adapter on this model" in str(exc.value)
