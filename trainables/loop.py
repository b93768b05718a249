"""The fine-tuning loop with an optimizer per parameter group, independent of the task.

A model made of distinct modules gets one optimizer (of any type) and one LR
schedule per parameter group: the "two-optimizers" approach. The loop owns
seeding, freezing, penalties, clipping, per-epoch evaluation, early stopping
and checkpoints; a :class:`~trainables.contract.Task` supplies the model, the data and the metrics.

A trial is configured by a :class:`~trainables.config.TrialConfig` (its
hyperparameters, one :class:`~trainables.config.GroupConfig` per group) and
:class:`~trainables.config.RunSettings` (what is not a hyperparameter: the metric
early stopping watches, threads, device, precision).

Data-parallel: when a ``torch.distributed`` process group is up (Ray Train's
TorchTrainer, torchrun), the same loop trains under DistributedDataParallel.
Each rank takes every world-size-th batch of the epoch's order (the tail that
does not divide evenly is dropped, so every rank steps alike), rank 0 alone
writes checkpoints, and every rank reports (rank 0 with the checkpoint).
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import random
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn

from .config import RunSettings, TrialConfig
from .contract import MODEL_DIR, Task
from .optim import Optimizers, configure_optimizers
from .param_groups import build_param_groups, count
from .reporting import Reporter

log = logging.getLogger(__name__)

TRAIN_STATE = "train_state.pt"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU draws from its own generator
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(_as_tuple(state["python"]))


def _as_tuple(x):
    return tuple(_as_tuple(i) for i in x) if isinstance(x, (list, tuple)) else x


def set_dropout(model: nn.Module, p: float | None) -> None:
    if p is None:
        return
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = float(p)


def freeze_lowest_layers(model: nn.Module, layers: list[list[str]], k: int) -> list[str]:
    """Freeze the ``k`` lowest layers for the whole run; returns the frozen names."""
    if k > len(layers):
        raise ValueError(f"frozen_layers={k}, but the model has {len(layers)} layers (embeddings included)")
    frozen = [n for layer in layers[:k] for n in layer]
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    return frozen


def restore_optimizer(optimizer, scheduler, optimizer_state: Mapping, scheduler_state: Mapping) -> None:
    """Continue from a checkpoint's optimizer and schedule under this trial's hyperparameters.

    The moments and the step count come from the checkpoint; the learning rate,
    weight decay, momentum and betas, and the schedule's shape, from the config
    (PBT changes them when a trial continues from another trial's checkpoint).
    With an unchanged config this is an exact resume.
    """
    settings = [{k: v for k, v in pg.items() if k != "params"} for pg in optimizer.param_groups]
    base_lrs = list(scheduler.base_lrs)
    optimizer.load_state_dict(optimizer_state)
    # LambdaLR would write the checkpoint's schedule into this one's (in place): the step count alone comes back
    scheduler.load_state_dict({**scheduler_state, "lr_lambdas": [None] * len(scheduler.lr_lambdas)})
    scheduler.base_lrs = base_lrs
    for pg, setting, base, fn in zip(optimizer.param_groups, settings, base_lrs, scheduler.lr_lambdas):
        pg.update(setting)
        pg["lr"] = base * fn(scheduler.last_epoch)


def improved(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def _to(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _dist() -> tuple[int, int]:
    """(rank, world size) of this process's data-parallel group; (0, 1) when there is none."""
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        return td.get_rank(), td.get_world_size()
    return 0, 1


def _any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on any rank (so every rank stops together)."""
    import torch.distributed as td

    if _dist()[1] == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


def _for_training(model: nn.Module, run: RunSettings, world: int, device: torch.device) -> nn.Module:
    """What the training steps call: the model, under DDP with several ranks, through torch.compile if asked.

    Evaluation and checkpoints use the model itself; the compiled module shares its parameters.
    """
    wrapped = _data_parallel(model, device) if world > 1 else model
    return torch.compile(wrapped) if run.compile else wrapped


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def checkpoint_model(task: Task, config: TrialConfig | Mapping, model_dir: str, run: RunSettings | Mapping):
    """A checkpoint's model (``model_dir``) on the run's device, for evaluating after the search.

    ``task.evaluate`` on it scores the task's evaluation data: its test rows for a task built with
    ``dataset.part: test``, which the end of a sweep scores once per finalist and no trial ever reads.
    """
    config, run = TrialConfig.from_dict(config), RunSettings.from_dict(run)
    torch.set_num_threads(run.num_threads)
    seed_everything(config.seed)
    return task.build_model(config, model_dir).to(pick_device(run))


def pick_device(run: RunSettings) -> torch.device:
    """``run.device``, else this process's GPU when it sees one, else the CPU.

    With several GPUs visible, a data-parallel rank takes the one of its local rank
    (``LOCAL_RANK``, set by torchrun and Ray Train), so DDP gets a device index.
    """
    if run.device:
        return torch.device(run.device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class CheckpointError(OSError):
    """An epoch's checkpoint could not be written; the previous one is untouched."""

    def __init__(self, epoch: int, where: str, cause: Exception):
        code = getattr(cause, "errno", None)
        if code is None:  # safetensors' writer reports the OS error in its text: "I/O error: ... (os error 28)"
            found = re.search(r"os error (\d+)", str(cause))
            code = int(found.group(1)) if found else None
        reason = getattr(cause, "strerror", None) or str(cause)
        why, advice = {
            errno.ENOSPC: (" (the disk is full)", ". Free space there (or point TMPDIR elsewhere)"),
            errno.EFBIG: (" (over the process's file-size limit, ulimit -f)", ""),
        }.get(code, ("", ""))
        kept = f"the checkpoint of epoch {epoch - 1} is intact" if epoch > 1 else "no earlier checkpoint exists"
        where = os.path.dirname(where)
        super().__init__(
            code, f"cannot write the checkpoint of epoch {epoch} under {where}: {reason}{why}; {kept}{advice}"
        )

    def __reduce__(self):  # Ray pickles a trial's exception to the driver: rebuild it from (errno, message)
        return _rebuilt_checkpoint_error, self.args


def _rebuilt_checkpoint_error(*args) -> CheckpointError:
    err = OSError.__new__(CheckpointError, *args)
    OSError.__init__(err, *args)
    return err


def _atomic_save(obj, path: str) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def loaded_task(make: Callable[[Mapping], Task], task: Mapping) -> Task:
    """``make(task)``, built once per process: the next trial in a process Ray Tune reuses
    (``reuse_actors``) finds the data already loaded, tokenized or preprocessed.

    Keyed by ``make`` and the task's content; a process serves one sweep, so the cache holds its
    task, or each fold's under cross-validation.
    A task is read-only once built: trials share it, each with its own model and RNG.
    """
    return _loaded(make, json.dumps(task, sort_keys=True))


@functools.lru_cache(maxsize=20)  # a sweep's task, or under cross-validation one per fold (at most 20)
def _loaded(make: Callable[[Mapping], Task], task_json: str) -> Task:
    return make(json.loads(task_json))


@dataclass
class Progress:
    """Where a trial is: the next epoch, the best monitored value so far, epochs since it improved."""

    start: int = 1
    best: float | None = None
    stale: int = 0


def fit(
    task: Task, config: TrialConfig | Mapping, run: RunSettings | Mapping, reporter: Reporter, until: int | None = None
) -> dict:
    """Train with one optimizer per group, evaluate and checkpoint every epoch.

    ``config`` is the trial's :class:`~trainables.config.TrialConfig` (or the plain data Ray
    Tune hands a trial), ``run`` its :class:`~trainables.config.RunSettings`. Resumes from
    ``reporter.latest_checkpoint()`` when there is one: model, optimizers, schedulers, RNG
    and early-stopping state continue exactly, so an interrupted and resumed run ends with
    the same metrics as one left alone. With ``until``, stops after that epoch (cross-validation
    trains its folds an epoch at a time). Returns the last epoch's metrics.
    """
    config, run = TrialConfig.from_dict(config), RunSettings.from_dict(run)
    torch.set_num_threads(run.num_threads)
    seed_everything(config.seed)
    device, (rank, world) = pick_device(run), _dist()
    with reporter.latest_checkpoint() as ckpt:
        model = task.build_model(config, os.path.join(ckpt, MODEL_DIR) if ckpt else None)
        state = torch.load(os.path.join(ckpt, TRAIN_STATE), weights_only=True, map_location="cpu") if ckpt else None
    set_dropout(model, config.dropout)
    model.to(device)
    # fp16 needs loss scaling against underflow; bf16 keeps fp32's range
    scaler = torch.amp.GradScaler(device.type, enabled=run.precision == "fp16")
    layers = task.layers(model)
    groups = _trained_groups(task, model, config, layers)
    steps = task.steps_per_epoch(config.batch_size) // world  # each rank's share
    opt = configure_optimizers(model, groups, config.groups, steps, config.epochs, layers)
    progress = Progress() if state is None else _restored(state, opt, scaler)

    metrics: dict = {}
    trained, wrapped_for = model, None
    for epoch in range(progress.start, min(config.epochs, until or config.epochs) + 1):
        t0 = time.perf_counter()
        frozen = {g: config.groups[g].frozen_in(epoch) for g in groups}
        for g, members in groups.items():
            for _, p in members:
                p.requires_grad_(not frozen[g])
        if (world > 1 or run.compile) and wrapped_for != frozen:  # DDP syncs the parameters that train when built
            trained, wrapped_for = _for_training(model, run, world, device), dict(frozen)
        train_loss, samples = _train_epoch(task, trained, config, run, opt, scaler, frozen, epoch, steps, device)
        train_time = time.perf_counter() - t0
        metrics = dict(task.evaluate(model))
        metrics.update(
            epoch=epoch,
            train_loss=train_loss,
            train_samples_per_s=samples * world / train_time if train_time > 0 else 0.0,  # every rank alike
            epoch_time_s=time.perf_counter() - t0,
        )
        metrics.update(_group_metrics(opt, groups, frozen))
        if improved(metrics[run.metric], progress.best, run.mode):
            progress.best, progress.stale = metrics[run.metric], 0
        else:
            progress.stale += 1
        patience = config.early_stopping_patience
        stop = _any_rank(patience is not None and progress.stale >= patience, device)
        metrics["early_stopped"] = bool(stop)
        if world > 1:
            metrics["workers"] = world
        if rank != 0:  # rank 0 writes the checkpoint; every rank reports (Ray Train waits for all)
            reporter.report(metrics, None)
        else:
            _checkpoint_and_report(task, model, opt, scaler, epoch, progress, metrics, reporter)
        if stop:
            log.info("early stop at epoch %d: %s did not improve for %d epochs", epoch, run.metric, progress.stale)
            break
    return metrics


def _trained_groups(task: Task, model: nn.Module, config: TrialConfig, layers: list[list[str]]) -> dict[str, list]:
    """The task's parameter groups, less the lowest ``frozen_layers`` (frozen for the whole run)."""
    groups = build_param_groups(model, task.selectors(model))
    if set(groups) != set(config.groups):
        raise ValueError(f"hyperparameters for groups {sorted(config.groups)}, model groups {sorted(groups)}")
    freeze_lowest_layers(model, layers, config.frozen_layers)
    return {g: [(n, p) for n, p in members if p.requires_grad] for g, members in groups.items()}


def _restored(state: Mapping, opt: Optimizers, scaler) -> Progress:
    """The checkpoint's optimizers, schedules, RNG and loss scale put back; where the trial was."""
    for g in opt.optimizers:
        restore_optimizer(opt.optimizers[g], opt.schedulers[g], state["optimizers"][g], state["schedulers"][g])
    _set_rng_state(state["rng"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return Progress(state["epoch"] + 1, state["best"], state["stale"])


def _train_epoch(task, trained, config, run, opt: Optimizers, scaler, frozen, epoch, steps, device):
    """One epoch of optimizer steps, each group stepping its own optimizer; ``(mean train loss, samples)``."""
    rank, world = _dist()
    trained.train()
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    params = [p for members in opt.optimizers.values() for pg in members.param_groups for p in pg["params"]]
    loss_sum, samples = torch.zeros((), device=device), 0  # summed on the device: no sync per step
    with warnings.catch_warnings():
        # a frozen group's schedule still advances with the global step, before its optimizer ever steps
        warnings.filterwarnings("ignore", message=r".*lr_scheduler\.step\(\)")
        for i, batch in enumerate(task.train_batches(config.batch_size, generator)):
            if world > 1 and (i % world != rank or i >= steps * world):
                continue
            batch = _to(batch, device)
            with torch.autocast(device.type, dtype=_DTYPES.get(run.precision), enabled=run.precision != "fp32"):
                loss = task.loss(trained, batch)
            total = loss
            if config.l1:
                total = total + config.l1 * sum(p.abs().sum() for p in opt.penalized if p.requires_grad)
            if config.l2:
                total = total + config.l2 * sum(p.pow(2).sum() for p in opt.penalized if p.requires_grad)
            scaler.scale(total).backward()
            _step(opt, scaler, frozen, params, config.max_grad_norm)
            n = int(batch["labels"].shape[0])
            loss_sum += loss.detach().float() * n
            samples += n
    return float(loss_sum) / max(1, samples), samples  # float() waits for the device: the epoch's work is done


def _step(opt: Optimizers, scaler, frozen: Mapping[str, bool], params: list, clip: float | None) -> None:
    """Clip, step each training group's optimizer, advance every schedule."""
    for g, o in opt.optimizers.items():
        if not frozen[g]:
            scaler.unscale_(o)
    if clip:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
    for g, o in opt.optimizers.items():
        if not frozen[g]:
            scaler.step(o)
        o.zero_grad(set_to_none=True)
    scaler.update()
    for sched in opt.schedulers.values():
        sched.step()


def _group_metrics(opt: Optimizers, groups: Mapping, frozen: Mapping[str, bool]) -> dict:
    """Each group's rate (its top layer's, and its bottom layer's under layer-wise decay) and trained size."""
    out = {}
    for g in groups:
        rates = [pg["lr"] for pg in opt.optimizers[g].param_groups]
        out[f"lr/{g}"] = rates[0]
        if min(rates) < rates[0]:
            out[f"lr/{g}/bottom"] = min(rates)
        out[f"trainable_params/{g}"] = 0 if frozen[g] else count(groups[g])
    out["trainable_params"] = sum(out[f"trainable_params/{g}"] for g in groups)
    return out


def _checkpoint_and_report(task, model, opt: Optimizers, scaler, epoch, progress: Progress, metrics, reporter):
    """Write the epoch's checkpoint whole into a fresh folder, then hand it over with the metrics.

    A failed write never touches the last checkpoint.
    """
    with tempfile.TemporaryDirectory(prefix="tune-ckpt-") as tmp:
        try:
            task.save_model(model, os.path.join(tmp, MODEL_DIR))
            train_state = {
                "epoch": epoch,
                "best": progress.best,
                "stale": progress.stale,
                "optimizers": {g: o.state_dict() for g, o in opt.optimizers.items()},
                "schedulers": {g: s.state_dict() for g, s in opt.schedulers.items()},
                "rng": _rng_state(),
            }
            if scaler.is_enabled():
                train_state["scaler"] = scaler.state_dict()
            _atomic_save(train_state, os.path.join(tmp, TRAIN_STATE))
        except (OSError, SafetensorError) as exc:  # safetensors raises its own error for the weights
            raise CheckpointError(epoch, tmp, exc) from exc
        reporter.report(metrics, tmp)


__all__ = [
    "Task",
    "fit",
    "loaded_task",
    "seed_everything",
    "set_dropout",
    "freeze_lowest_layers",
    "restore_optimizer",
    "pick_device",
]
