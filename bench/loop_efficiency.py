"""Loop efficiency: the per-group-LR trainable's training throughput against a bare PyTorch loop.

Same model, same batches (the task's own, in the same order), same batch size, threads,
device and precision. The bare loop is what one writes by hand: one AdamW over every
parameter, forward, backward, clip, step. The trainable is ``trainables.loop.fit`` (one
optimizer and schedule per group, penalties, per-step scheduler, autocast) for one epoch;
its figure is the loop's own ``train_samples_per_s`` (training only: the evaluation and
the checkpoint after the epoch are left out, as they are in the bare loop). Rounds
alternate bare/trainable so drift on a noisy machine hits both alike.

    python bench/loop_efficiency.py [--rounds 3] [--train-size 512] [--batch-size 32]
        [--device cpu|cuda] [--precision fp32|bf16] [--random-init]

``--random-init`` builds the model from its config (the same architecture and FLOPs,
random weights), for machines without the pretrained weights. On a GPU it also prints
the model-FLOPs utilization: 6 x non-embedding parameters x tokens per step (forward
and backward, padding included; attention's own products left out), over the device's
peak dense bf16 rate (``--peak-tflops``).

Prints one JSON line and a one-line summary.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time

import torch

from trainables.config import TrialConfig
from trainables.loop import _DTYPES, fit, seed_everything
from trainables.reporting import LocalReporter
from trainables.text_classification import SMOKE_CONFIG, SMOKE_TASK, TextClassification, resolve_model

H100_BF16_DENSE_TFLOPS = 989.0  # H100 SXM, dense (no sparsity)


def bare_loop(task: TextClassification, batch_size: int, device: torch.device, precision: str) -> dict:
    """One epoch by hand: one AdamW, forward, backward, clip, step. Returns samples/s and tokens."""
    seed_everything(0)
    model = task.build_model(TrialConfig.from_dict(SMOKE_CONFIG), None).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    generator = torch.Generator().manual_seed(1)
    samples, tokens = 0, 0
    sync(device)
    t0 = time.perf_counter()
    for batch in task.train_batches(batch_size, generator):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=_DTYPES.get(precision), enabled=precision != "fp32"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        samples += int(batch["labels"].shape[0])
        tokens += int(batch["input_ids"].numel())
    loss.detach().item()  # wait for the device
    sync(device)
    return {"samples_per_s": samples / (time.perf_counter() - t0), "tokens": tokens, "samples": samples}


def trainable_epoch(task: TextClassification, batch_size: int, device: torch.device, precision: str, threads: int):
    config = copy.deepcopy(SMOKE_CONFIG)
    config.update(batch_size=batch_size, epochs=1)
    config["groups"]["head"]["optimizer"] = "adamw"  # the same optimizer type as the bare loop
    run = {"metric": "val_accuracy", "mode": "max", "num_threads": threads, "device": str(device),
           "precision": precision}  # fmt: skip
    reporter = LocalReporter(stream=None)
    fit(task, config, run, reporter)
    return reporter.history[-1]["train_samples_per_s"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--random-init", action="store_true", help="the model's architecture with random weights")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        if args.random_init:
            from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

            torch.manual_seed(0)
            AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(model)).save_pretrained(tmp)
            AutoTokenizer.from_pretrained(model).save_pretrained(tmp)
            model = tmp
        task_cfg = copy.deepcopy(SMOKE_TASK)
        task_cfg["model"] = model
        task_cfg["max_length"] = args.max_length
        task_cfg["dataset"].update(train_size=args.train_size, validation_size=64)
        task = TextClassification(task_cfg)
        built = task.build_model(TrialConfig.from_dict(SMOKE_CONFIG), None)
        params = sum(p.numel() for p in built.parameters())
        # lookups, not matrix products: embedding tables do no FLOPs worth counting
        embedding = sum(m.weight.numel() for m in built.modules() if isinstance(m, torch.nn.Embedding))
        del built

        bare_loop(task, args.batch_size, device, args.precision)  # warm-up: kernels, caches, allocator
        bare, ours, tokens, samples = [], [], 0, 0
        for _ in range(args.rounds):
            b = bare_loop(task, args.batch_size, device, args.precision)
            bare.append(b["samples_per_s"])
            tokens, samples = b["tokens"], b["samples"]
            ours.append(trainable_epoch(task, args.batch_size, device, args.precision, args.threads))
    bare_sps, ours_sps = statistics.median(bare), statistics.median(ours)
    record = {
        "bench": "loop_efficiency",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({args.threads} threads)",
        "precision": args.precision,
        "model_params": params,
        "non_embedding_params": params - embedding,
        "batch_size": args.batch_size,
        "train_size": args.train_size,
        "rounds": args.rounds,
        "bare_samples_per_s": [round(x, 2) for x in bare],
        "trainable_samples_per_s": [round(x, 2) for x in ours],
        "efficiency": round(ours_sps / bare_sps, 4),
    }
    if device.type == "cuda":
        flops_per_sample = 6 * (params - embedding) * tokens / samples  # forward 2NT + backward 4NT
        record["tokens_per_sample"] = round(tokens / samples, 1)
        record["trainable_tflops"] = round(ours_sps * flops_per_sample / 1e12, 2)
        record["mfu"] = round(ours_sps * flops_per_sample / 1e12 / args.peak_tflops, 4)
    print(json.dumps(record))
    summary = (
        f"loop efficiency {record['efficiency']:.3f} (trainable {ours_sps:.1f} vs bare {bare_sps:.1f} samples/s, "
        f"median of {args.rounds}, {record['device']}, {args.precision})"
    )
    if "mfu" in record:
        summary += f"; MFU {record['mfu']:.1%} of {args.peak_tflops:g} TFLOP/s"
    print(summary)


if __name__ == "__main__":
    main()
