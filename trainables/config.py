"""What a trial is configured by, typed: the config Ray Tune hands a trial, and the run's settings.

Ray Tune hands a trial its config as nested plain data (``{"groups": {"encoder":
{"lr": ...}}, "batch_size": ...}``, the shape of the spec's ``hyperparameters``).
:meth:`TrialConfig.from_dict` reads it once, at the trial's start: derived values
(``{relative_to: encoder, ratio: r}``) made concrete, every value cast to its type.
A setting that does not apply to this trial (``momentum`` under adamw) is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def resolve_derived(groups: Mapping) -> dict:
    """Group settings with derived values (``{relative_to: encoder, ratio: r}``) made concrete."""
    out = {g: dict(hp) for g, hp in groups.items()}
    for hp in out.values():
        for field, value in hp.items():
            if isinstance(value, Mapping) and "relative_to" in value:
                hp[field] = float(groups[value["relative_to"]][field]) * float(value["ratio"])
    return out


@dataclass(frozen=True)
class GroupConfig:
    """One parameter group's optimizer, LR schedule and freezing."""

    lr: float
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    momentum: float | None = None  # sgd, rmsprop
    beta1: float | None = None  # adam, adamw
    beta2: float | None = None
    scheduler: str = "constant"
    warmup_ratio: float = 0.0
    gamma: float | None = None  # step, exponential
    step_epochs: int | None = None  # step
    decay: float | None = None  # inverse_time
    frozen: bool = False
    unfreeze_epoch: int | None = None
    layer_decay: float | None = None  # each lower layer at layer_decay x the rate of the one above

    @classmethod
    def from_dict(cls, hp: Mapping) -> GroupConfig:
        return cls(
            lr=float(hp["lr"]),
            optimizer=str(hp.get("optimizer", "adamw")),
            weight_decay=float(hp.get("weight_decay", 0.0)),
            momentum=_float(hp.get("momentum")),
            beta1=_float(hp.get("beta1")),
            beta2=_float(hp.get("beta2")),
            scheduler=str(hp.get("scheduler", "constant")),
            warmup_ratio=float(hp.get("warmup_ratio") or 0.0),
            gamma=_float(hp.get("gamma")),
            step_epochs=_int(hp.get("step_epochs")),
            decay=_float(hp.get("decay")),
            frozen=bool(hp.get("frozen", False)),
            unfreeze_epoch=_int(hp.get("unfreeze_epoch")),
            layer_decay=_float(hp.get("layer_decay")),
        )

    def frozen_in(self, epoch: int) -> bool:
        """Whether the group is frozen in ``epoch`` (1-based)."""
        return self.frozen and (self.unfreeze_epoch is None or epoch < self.unfreeze_epoch)


@dataclass(frozen=True)
class AdapterSettings:
    """A LoRA adapter's rank, scale (the update times alpha / r), input dropout, and a searched preset of
    modules to adapt (None: the task's ``target_modules``). The spec gives every trial all of them."""

    r: int
    alpha: float
    dropout: float
    target_modules: str | None = None

    @classmethod
    def from_dict(cls, settings: Mapping | None) -> AdapterSettings | None:
        if settings is None:
            return None
        return cls(
            r=int(settings["r"]),
            alpha=float(settings["alpha"]),
            dropout=float(settings["dropout"] or 0.0),
            target_modules=settings.get("target_modules"),
        )


@dataclass(frozen=True)
class TrialConfig:
    """One trial's hyperparameters: a :class:`GroupConfig` per parameter group, and the trial-wide ones."""

    groups: dict[str, GroupConfig]
    batch_size: int
    epochs: int
    seed: int = 0
    dropout: float | None = None
    l1: float = 0.0
    l2: float = 0.0
    max_grad_norm: float | None = None
    frozen_layers: int = 0
    early_stopping_patience: int | None = None
    adapter: AdapterSettings | None = None  # with an adapter on the model (the task's adapter section)

    @classmethod
    def from_dict(cls, config: Mapping) -> TrialConfig:
        """The config as Ray Tune hands it (a :class:`TrialConfig` is returned as it is)."""
        if isinstance(config, TrialConfig):
            return config
        groups = resolve_derived(config["groups"])
        return cls(
            groups={g: GroupConfig.from_dict(hp) for g, hp in groups.items()},
            batch_size=int(config["batch_size"]),
            epochs=int(config["epochs"]),
            seed=int(config.get("seed", 0)),
            dropout=_float(config.get("dropout")),
            l1=float(config.get("l1") or 0.0),
            l2=float(config.get("l2") or 0.0),
            max_grad_norm=_float(config.get("max_grad_norm")),
            frozen_layers=int(config.get("frozen_layers") or 0),
            early_stopping_patience=_int(config.get("early_stopping_patience")),
            adapter=AdapterSettings.from_dict(config.get("adapter")),
        )


@dataclass(frozen=True)
class RunSettings:
    """What a trial runs with that is not a hyperparameter.

    ``metric`` and ``mode``: what early stopping and checkpoint ranking watch; ``num_threads``: torch's
    CPU threads; ``device``: default CUDA when the process sees a GPU; ``precision``: ``fp32``, or
    ``bf16``/``fp16`` autocast (fp16 with loss scaling); ``compile``: train through ``torch.compile``.
    """

    metric: str
    mode: str = "max"
    num_threads: int = 1
    precision: str = "fp32"
    device: str | None = None
    compile: bool = False

    @classmethod
    def from_dict(cls, run: Mapping) -> RunSettings:
        if isinstance(run, RunSettings):
            return run
        return cls(
            metric=str(run["metric"]),
            mode=str(run.get("mode", "max")),
            num_threads=max(1, int(run.get("num_threads", 1))),
            precision=str(run.get("precision") or "fp32"),
            device=run.get("device"),
            compile=bool(run.get("compile", False)),
        )


def with_trial_model(task: Mapping, config: Mapping) -> Mapping:
    """The task section a trial trains: the base model its config chose where the sweep searches it."""
    return {**task, "model": config["model"]} if config.get("model") else task
