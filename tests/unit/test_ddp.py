"""The loop under DistributedDataParallel (gloo, 2 processes, no Ray) trains as one process on the whole batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_loop import RUN, config

from trainables.reporting import LocalReporter
from trainables.text_classification import train

RANK_SCRIPT = """
import importlib, json, os, sys
import torch.distributed as dist
from trainables.reporting import LocalReporter

cfg, task, run, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
train = importlib.import_module(sys.argv[5]).train
dist.init_process_group("gloo")
rank = dist.get_rank()
reporter = LocalReporter(out if rank == 0 else None, stream=None)
train(cfg, task, run, reporter)
with open(f"{out}/history-{rank}.json", "w") as fh:
    json.dump(reporter.history, fh)
dist.destroy_process_group()
"""


def run_ranks(tmp_path: Path, cfg: dict, task: dict, world: int = 2, module: str = "trainables.text_classification",
              run: dict = RUN) -> Path:  # fmt: skip
    out = tmp_path / "ddp"
    out.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1"}
        env["MASTER_PORT"] = str(port)
        args = [json.dumps(cfg), json.dumps(task), json.dumps(run), str(out), module]
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, *args], env=env, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-3000:]
    return out


def test_two_ranks_of_8_train_like_one_process_of_16(task, tmp_path):
    task = {**task, "dataset": {**task["dataset"], "train_size": 128}}  # 16 batches of 8: no tail to drop
    # encoder frozen in epoch 1, trained from epoch 2: DDP is rebuilt when the trainable set changes
    cfg = config(epochs=2, dropout=0.0, groups__encoder__frozen=True, groups__encoder__unfreeze_epoch=2)
    out = run_ranks(tmp_path, {**cfg, "batch_size": 8}, task)

    single = LocalReporter(tmp_path / "single", stream=None)
    train({**cfg, "batch_size": 16}, task, RUN, single)

    ddp_weights = load_file(out / "checkpoint_002" / "model" / "model.safetensors")
    one_weights = load_file(tmp_path / "single" / "checkpoint_002" / "model" / "model.safetensors")
    start = load_file(Path(task["model"]) / "model.safetensors")
    moved = [k for k in one_weights if k in start and not torch.equal(one_weights[k], start[k])]
    assert moved, "training changed nothing"
    for name, value in one_weights.items():
        torch.testing.assert_close(ddp_weights[name], value, rtol=1e-4, atol=1e-5, msg=name)

    ranks = [json.loads((out / f"history-{r}.json").read_text()) for r in (0, 1)]
    assert [h["epoch"] for h in ranks[0]] == [h["epoch"] for h in ranks[1]] == [1, 2]
    assert all(h["workers"] == 2 for h in ranks[0])
    # both ranks hold the same model, so they evaluate alike; each trained on its own half of the batches
    assert [h["val_loss"] for h in ranks[0]] == pytest.approx([h["val_loss"] for h in ranks[1]], rel=1e-6)
    assert [h["val_loss"] for h in ranks[0]] == pytest.approx([h["val_loss"] for h in single.history], rel=1e-3)
    assert ranks[0][0]["trainable_params/encoder"] == 0 and ranks[0][1]["trainable_params/encoder"] > 0


def test_two_ranks_train_a_lora_adapter_like_one_process(task, tmp_path):
    from test_adapters import CONFIG as LORA_CONFIG

    task = {
        **task,
        "dataset": {**task["dataset"], "train_size": 64},
        "adapter": {"type": "lora", "target_modules": "attention"},
    }
    cfg = {**LORA_CONFIG, "epochs": 1}
    out = run_ranks(tmp_path, {**cfg, "batch_size": 8}, task)
    single = LocalReporter(tmp_path / "single", stream=None)
    train({**cfg, "batch_size": 16}, task, RUN, single)

    ddp_weights = load_file(out / "checkpoint_001" / "model" / "adapter_model.safetensors")
    one_weights = load_file(tmp_path / "single" / "checkpoint_001" / "model" / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in one_weights.items()), "B stayed at its zero init"
    assert ddp_weights.keys() == one_weights.keys()
    for name, value in one_weights.items():
        torch.testing.assert_close(ddp_weights[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_two_ranks_train_a_language_model_like_one_process(tmp_path, tiny_bert, answers_csv):
    from test_causal_lm import CONFIG as LM_CONFIG
    from test_causal_lm import RUN as LM_RUN
    from test_causal_lm import TINY_LLAMA

    from trainables import causal_lm

    task = {
        "model": dict(TINY_LLAMA), "tokenizer": tiny_bert, "chat_template": None, "max_length": 16,
        "dataset": {"source": answers_csv, "config_name": None, "prompt_column": "review",
                    "response_column": "sentiment", "prompt_template": "{prompt} was", "text_column": None,
                    "messages_column": None, "train_split": "train", "validation_split": 0.25, "train_size": 64,
                    "validation_size": 16, "seed": 0},
        "generation": {"max_new_tokens": 3, "examples": 8}, "gradient_checkpointing": False, "groups": None,
    }  # fmt: skip
    cfg = {**LM_CONFIG, "epochs": 1}
    out = run_ranks(tmp_path, {**cfg, "batch_size": 8}, task, module="trainables.causal_lm", run=LM_RUN)
    single = LocalReporter(tmp_path / "single", stream=None)
    causal_lm.train({**cfg, "batch_size": 16}, task, LM_RUN, single)

    ddp_weights = load_file(out / "checkpoint_001" / "model" / "model.safetensors")
    one_weights = load_file(tmp_path / "single" / "checkpoint_001" / "model" / "model.safetensors")
    assert ddp_weights.keys() == one_weights.keys()
    for name, value in one_weights.items():
        torch.testing.assert_close(ddp_weights[name], value, rtol=1e-4, atol=1e-5, msg=name)
