"""A task's trainable run without Ray or the service: ``python -m trainables.<task> --smoke-test``.

One epoch (or ``--epochs``) of the task's smoke config on its smoke subsets
(:mod:`trainables.manifest`), printing each epoch's metrics; it fails when a
metric the task's manifest names is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping

from .manifest import TaskManifest
from .reporting import LocalReporter


def smoke_main(
    argv: list[str] | None,
    manifest: TaskManifest,
    train: Callable,
    task: Mapping,
    config: Mapping,
    description: str,
    model_option: str | None = None,
) -> int:
    """Parse the command line and run the smoke test; exit status 0 when every metric is reported.

    ``model_option`` names the task field ``--model`` replaces (None: no such option).
    """
    import torch

    parser = argparse.ArgumentParser(prog=f"python -m {manifest.module}", description=description)
    parser.add_argument(
        "--smoke-test", action="store_true", help=f"one epoch on {manifest.smoke_train_size} examples of the defaults"
    )
    if model_option:
        parser.add_argument("--model", default=task[model_option], help="builtin:NAME, a hub id or a local path")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out-dir", help="keep each epoch's checkpoint here")
    parser.add_argument("--resume-from", help="a checkpoint folder to continue from")
    args = parser.parse_args(argv)
    if not args.smoke_test:
        parser.error("only --smoke-test runs standalone; sweeps run through `tune-service run`")
    if model_option:
        task = {**task, model_option: args.model}
    run = {"metric": manifest.metrics[0], "mode": "max", "num_threads": torch.get_num_threads()}
    reporter = LocalReporter(args.out_dir, args.resume_from)
    metrics = train({**config, "epochs": args.epochs}, task, run, reporter)
    missing = [m for m in manifest.reported if m not in metrics]
    if missing:
        print(f"missing metrics: {missing}", file=sys.stderr)
        return 1
    print(json.dumps({m: metrics[m] for m in manifest.metrics}))
    return 0


def quiet_transformers() -> None:
    """A trial is a Ray worker of its own: transformers' per-trial load reports and progress bars would
    interleave in the driver's console."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# a group's settings in a smoke config, as the spec's defaults would fill them (weight decay on)
SMOKE_GROUP = {
    "optimizer": "adamw",
    "weight_decay": 0.01,
    "momentum": 0.9,
    "beta1": 0.9,
    "beta2": 0.999,
    "scheduler": "constant",
    "warmup_ratio": 0.0,
    "gamma": 0.5,
    "step_epochs": 1,
    "decay": 1.0,
    "frozen": False,
    "unfreeze_epoch": None,
}


def smoke_config(groups: Mapping[str, Mapping], batch_size: int) -> dict:
    """A trial config in the shape Ray Tune hands a trial: each group's settings over :data:`SMOKE_GROUP`."""
    return {
        "groups": {g: {**SMOKE_GROUP, **settings} for g, settings in groups.items()},
        "batch_size": batch_size,
        "epochs": 1,
        "dropout": None,
        "l1": 0.0,
        "l2": 0.0,
        "max_grad_norm": 1.0,
        "frozen_layers": 0,
        "early_stopping_patience": None,
        "seed": 0,
    }
