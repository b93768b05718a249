"""One optimizer and one LR schedule per parameter group.

Schedules are stepped once per optimizer step and written as a multiplier of
the group's peak LR, as a function of the step. Decays are expressed in epochs
(possibly fractional) so a schedule does not change meaning with the dataset
size or the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .config import GroupConfig

# normalization layers whose class is not one of torch's (LlamaRMSNorm, T5LayerNorm, ...) end their name so
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm, nn.modules.batchnorm._NormBase)


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalization layer, by its type (torch's own, or any class named ...Norm)."""
    return isinstance(module, _NORMS) or type(module).__name__.lower().endswith("norm")


def decayed_names(model: nn.Module) -> set[str]:
    """The parameters weight decay and the L1/L2 penalties apply to: every weight outside normalization layers.

    One rule by module type, for every architecture (transformers' ``Trainer.get_decay_parameter_names``
    decides the same way): a normalization layer's scale and shift, and every bias, are left alone.
    """
    names = set()
    for prefix, module in model.named_modules():
        if is_norm(module):
            continue
        for name, _ in module.named_parameters(prefix=prefix, recurse=False):
            if not name.endswith("bias"):
                names.add(name)
    return names


def make_optimizer(
    params: Iterable[tuple[str, nn.Parameter]],
    hp: GroupConfig,
    decayed: Collection[str],
    below_top: Mapping[str, int] | None = None,
) -> torch.optim.Optimizer:
    """The optimizer ``hp.optimizer`` over ``params`` with the group's settings.

    Weight decay applies to the parameters named in ``decayed`` (:func:`decayed_names`), not to the rest.
    ``below_top`` (:func:`layers_below_top`) gives a parameter ``hp.layer_decay`` to that power times the
    rate; the torch parameter groups come top layer first, one per layer whatever the decay's value (so
    a checkpoint's optimizer state fits a config whose decay PBT changed).
    """
    buckets: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, p in params:
        buckets.setdefault(((below_top or {}).get(name, 0), name in decayed), []).append(p)
    decay = hp.layer_decay if hp.layer_decay is not None else 1.0
    param_groups = [
        {"params": members, "weight_decay": hp.weight_decay if decays else 0.0, "lr": hp.lr * decay**steps}
        for (steps, decays), members in sorted(buckets.items(), key=lambda kv: (kv[0][0], not kv[0][1]))
    ]
    lr, kind = hp.lr, hp.optimizer
    if kind == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=hp.momentum)
    # on a GPU, Adam's fused kernel: one launch for every tensor of the group
    fused = all(p.is_cuda and p.is_floating_point() for g in param_groups for p in g["params"]) or None
    if kind == "adam":
        return torch.optim.Adam(param_groups, lr=lr, betas=(hp.beta1, hp.beta2), fused=fused)
    if kind == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, betas=(hp.beta1, hp.beta2), fused=fused)
    if kind == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, momentum=hp.momentum)
    raise ValueError(f"optimizer={kind!r}; accepted: sgd, adam, adamw, rmsprop")


@dataclass(frozen=True)
class LRSchedule:
    """Multiplier of the peak LR at optimizer step ``step`` (0-based).

    ``warmup_steps`` of linear warmup from 0, then:
    constant 1; linear to 0 at the end; cosine to 0 at the end;
    step: ``gamma ** floor(epoch / step_epochs)``; exponential: ``gamma ** epoch``;
    inverse_time: ``1 / (1 + decay * epoch)`` - the epoch counted from the end of warmup.
    """

    kind: str
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int = 0
    gamma: float | None = 0.5  # None where the schedule does not use it
    step_epochs: int | None = 1
    decay: float | None = 1.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        after = step - self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        epoch = after / self.steps_per_epoch
        if self.kind == "constant":
            return 1.0
        if self.kind == "linear":
            return max(0.0, 1.0 - after / span)
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, after / span)))
        if self.kind == "step":
            return self.gamma ** math.floor(epoch / self.step_epochs)
        if self.kind == "exponential":
            return self.gamma**epoch
        if self.kind == "inverse_time":
            return 1.0 / (1.0 + self.decay * epoch)
        raise ValueError(
            f"scheduler={self.kind!r}; accepted: constant, linear, cosine, step, exponential, inverse_time"
        )


def make_schedule(hp: GroupConfig, steps_per_epoch: int, epochs: int) -> LRSchedule:
    total = steps_per_epoch * epochs
    return LRSchedule(
        kind=hp.scheduler,
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        warmup_steps=int(round(hp.warmup_ratio * total)),
        gamma=hp.gamma,
        step_epochs=hp.step_epochs,
        decay=hp.decay,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, hp: GroupConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, make_schedule(hp, steps_per_epoch, epochs))


@dataclass
class Optimizers:
    """Each group's optimizer and LR schedule, and the parameters the L1/L2 penalties apply to."""

    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]
    penalized: list[nn.Parameter]


def layers_below_top(names: Iterable[str], layers: list[list[str]]) -> dict[str, int]:
    """For layer-wise rate decay: how many layers below the group's top layer each parameter sits.

    ``layers`` are the model's layers' parameter names, lowest first (the embeddings first, so last in
    rate); a parameter of the group in no layer (a pooler, a head) counts as the top.
    """
    depth = {n: k for k, layer in enumerate(layers) for n in layer}
    names = list(names)
    top = max((depth[n] for n in names if n in depth), default=0)
    return {n: top - depth[n] if n in depth else 0 for n in names}


def configure_optimizers(
    model: nn.Module,
    groups: Mapping[str, list[tuple[str, nn.Parameter]]],
    group_hp: Mapping[str, GroupConfig],
    steps_per_epoch: int,
    epochs: int,
    layers: list[list[str]] | None = None,
) -> Optimizers:
    """One optimizer and one schedule per parameter group, weight decay and penalties by one rule.

    ``groups`` are the trainable parameters by group (``build_param_groups``, frozen layers left out),
    ``group_hp`` each group's settings. Weight decay and the L1/L2 penalties both apply to
    :func:`decayed_names`: every weight outside normalization layers, no bias. A group with
    ``layer_decay`` gives each of its layers its own rate (:func:`layers_below_top` over ``layers``,
    the model's stack lowest first).
    """
    decayed = decayed_names(model)
    optimizers = {}
    for g, members in groups.items():
        hp = group_hp[g]
        below_top = None
        if hp.layer_decay is not None and layers:
            below_top = layers_below_top((n for n, _ in members), layers)
        optimizers[g] = make_optimizer(members, hp, decayed, below_top)
    return Optimizers(
        optimizers=optimizers,
        schedulers={g: make_scheduler(optimizers[g], group_hp[g], steps_per_epoch, epochs) for g in groups},
        penalized=[p for members in groups.values() for n, p in members if n in decayed],
    )
