"""A trial stopped after an epoch and resumed from its checkpoint continues exactly, for every task: the
epochs after the checkpoint report what an unbroken run reports, and the final weights are the same."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_adapters import CONFIG as LORA_CONFIG
from test_adapters import IMAGE_CONFIG as LORA_IMAGE_CONFIG
from test_adapters import (
    adapted_image_task,  # noqa: F401  (a fixture, asked for by name)
    lora_task,  # noqa: F401  (a fixture, asked for by name)
)
from test_causal_lm import CONFIG as LM_CONFIG
from test_causal_lm import lm_task  # noqa: F401  (a fixture, asked for by name)
from test_image_text import config as image_config
from test_loop import Interrupt, InterruptingReporter
from test_loop import config as text_config

from trainables.api import build_task
from trainables.loop import fit
from trainables.reporting import LocalReporter

# case: (the task's type, the fixture of its task section, its config, the metrics compared, exact or to 1e-5)
CASES = {
    "text_classification": (
        "text_classification", "task",
        text_config(groups__encoder__scheduler="cosine", groups__encoder__warmup_ratio=0.2),
        ("val_loss", "val_accuracy", "val_f1", "train_loss", "lr/encoder", "lr/head"), True,
    ),
    "image_text": (
        "image_text", "image_task",
        image_config(groups__vision__scheduler="cosine", groups__vision__warmup_ratio=0.2, dropout=0.1),
        ("val_loss", "val_zero_shot_accuracy", "val_recall_at_1", "train_loss", "lr/vision", "lr/text"), True,
    ),
    "causal_lm": (
        "causal_lm", "lm_task", {**copy.deepcopy(LM_CONFIG), "epochs": 4},
        ("val_loss", "val_exact_match", "train_loss", "lr/layers"), False,
    ),
    "image_text+lora": (
        "image_text", "adapted_image_task", LORA_IMAGE_CONFIG, ("val_loss", "val_recall_at_1", "lr/lora_B"), False,
    ),
    "text_classification+lora": (
        "text_classification", "lora_task", LORA_CONFIG, ("val_loss", "val_accuracy", "lr/lora_B"), False,
    ),
}  # fmt: skip
RUN = {"metric": "val_loss", "mode": "min", "num_threads": 1}


@pytest.fixture
def image_task(make_image_task, image_folder):
    return make_image_task(image_folder)


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Every tensor a checkpoint's model folder holds (a whole model, or an adapter and what trains in full)."""
    out: dict[str, torch.Tensor] = {}
    for path in sorted((checkpoint / "model").rglob("*.safetensors")):
        out |= {f"{path.relative_to(checkpoint)}:{k}": v for k, v in load_file(path).items()}
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resumed_trial_continues_exactly(case, request, tmp_path):
    task_type, fixture, config, metrics, exact = CASES[case]
    section = request.getfixturevalue(fixture)
    whole = LocalReporter(tmp_path / "whole", stream=None)
    fit(build_task(task_type, section), copy.deepcopy(config), RUN, whole)
    broken = InterruptingReporter(tmp_path / "broken", after=1)
    with pytest.raises(Interrupt):
        fit(build_task(task_type, section), copy.deepcopy(config), RUN, broken)
    resumed = LocalReporter(tmp_path / "resumed", resume_from=broken.checkpoints[0], stream=None)
    fit(build_task(task_type, section), copy.deepcopy(config), RUN, resumed)

    assert [m["epoch"] for m in resumed.history] == [m["epoch"] for m in whole.history[1:]]
    assert len(resumed.history) == config["epochs"] - 1
    for a, b in zip(whole.history[1:], resumed.history):
        for key in metrics:
            assert a[key] == (b[key] if exact else pytest.approx(b[key], rel=1e-5)), (a["epoch"], key)
    final_whole, final_resumed = weights(whole.checkpoints[-1]), weights(resumed.checkpoints[-1])
    assert final_whole and final_whole.keys() == final_resumed.keys()
    for k in final_whole:
        same = torch.equal if exact else lambda x, y: torch.allclose(x, y, rtol=1e-4, atol=1e-6)
        assert same(final_whole[k], final_resumed[k]), k
