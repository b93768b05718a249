"""Multi-worker trials: the same loop, data-parallel under Ray Train's TorchTrainer.

A trial with ``workers: N > 1`` calls :func:`fit_data_parallel` from its Tune
process. That starts a TorchTrainer of N workers (NCCL on GPUs, gloo on CPUs);
each runs the task's ``train`` under DistributedDataParallel
(:mod:`trainables.loop` notices the process group). Every rank reports each
epoch through ``ray.train.report``; rank 0 adds the checkpoint, and its
reporter (built by ``make_reporter`` on that worker, e.g. one streaming to
MLflow) sees each epoch first. Ray Train's ``TuneReportCallback`` hands rank
0's metrics to the Tune trial, with ``checkpoint_path`` naming the checkpoint
in Ray Train's storage.

The Ray Train run is named after the trial under ``storage_path``: a trial
that Tune restarts finds it and continues from its latest checkpoint.

Ray is imported only here, inside the call, never by the loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from .reporting import checkpoint_dir

#: the metric Ray Train's Tune callback adds: the epoch's checkpoint in Ray Train's storage
CHECKPOINT_PATH = "checkpoint_path"


class TrainReporter:
    """A Ray Train worker's reporter: ``ray.train.report`` on every rank, the checkpoint from rank 0."""

    def latest_checkpoint(self) -> contextlib.AbstractContextManager[str | None]:
        import ray.train

        return checkpoint_dir(ray.train.get_checkpoint())

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(dict(metrics), checkpoint=checkpoint)


def _worker_loop(cfg: Mapping[str, Any]) -> None:
    import ray.train
    from ray.train.torch import get_device

    if cfg["setup"] is not None:
        cfg["setup"]()
    rank = ray.train.get_context().get_world_rank()
    run = {**cfg["run"], "device": str(get_device())}
    reporter = TrainReporter()
    if rank == 0 and cfg["make_reporter"] is not None:
        reporter = cfg["make_reporter"](reporter)
    cfg["train"](cfg["config"], cfg["task"], run, reporter)


def fit_data_parallel(
    train: Callable,
    config: Mapping,
    task: Mapping,
    run: Mapping,
    *,
    workers: int,
    resources_per_worker: Mapping[str, float],
    storage_path: str,
    name: str,
    make_reporter: Callable | None = None,
    keep_checkpoints: int = 1,
    setup: Callable[[], None] | None = None,
) -> None:
    """Train one trial on ``workers`` Ray Train workers; call from inside a Tune trial.

    ``train(config, task, run, reporter)`` is the task's training function.
    ``make_reporter(inner)`` wraps rank 0's reporter (None: report to Ray Train only).
    ``setup()`` runs first on every worker (e.g. providing it the sweep's prepared data).
    """
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    use_gpu = float(resources_per_worker.get("GPU", 0)) > 0
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={
            "train": train,
            "config": dict(config),
            "task": dict(task),
            "run": dict(run),
            "make_reporter": make_reporter,
            "setup": setup,
        },
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker=dict(resources_per_worker)
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=keep_checkpoints,
                checkpoint_score_attribute=run["metric"],
                checkpoint_score_order=run["mode"],
            ),
        ),
    )
    trainer.fit()
