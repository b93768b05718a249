"""What every task section shares: its parameter groups, its dataset's splits, a LoRA adapter."""

from __future__ import annotations

import re
from typing import Literal, Optional, Union

from pydantic import Field, model_validator

from trainables.api import LORA_TARGET_PRESETS
from trainables.api import TASKS as TASK_MANIFESTS

from ._fields import Section, ValidationSplit


class GroupSelector(Section):
    """Which parameters (by name) form a group: name prefixes and/or a regex."""

    prefix: list[str] = Field(default_factory=list)
    regex: Optional[str] = None

    @model_validator(mode="after")
    def _check(self) -> GroupSelector:
        if not self.prefix and self.regex is None:
            raise ValueError("a group selector needs `prefix` (a list of name prefixes) or `regex`")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        return self


class Splits(Section):
    """Which rows train and which validate, shared by every task's dataset section."""

    train_split: str = "train"
    validation_split: ValidationSplit = Field(
        0.2, description="a split name, or the fraction of train held out for validation"
    )
    test_split: Optional[ValidationSplit] = Field(
        None,
        description="rows no trial sees, scoring the best trials once at the end: a split name, or the fraction "
        "of train held out before the validation split",
    )
    train_size: Optional[int] = Field(None, ge=1, description="train subset size (null: all)")
    validation_size: Optional[int] = Field(None, ge=1, description="validation subset size")
    seed: int = Field(0, ge=0, description="seed of the split and subsets (the same for every trial)")

    @model_validator(mode="after")
    def _test_apart(self) -> Splits:
        if isinstance(self.test_split, str) and self.test_split in (self.train_split, self.validation_split):
            raise ValueError(
                f"test_split={self.test_split!r} is also the train or validation split: the test "
                "rows must be ones no trial sees; name another split or give a fraction"
            )
        return self


class AdapterSpec(Section):
    """A LoRA adapter on the pretrained model (``peft``): the base stays frozen, the adapter and the head train."""

    type: Literal["lora"] = "lora"
    target_modules: Union[Literal[LORA_TARGET_PRESETS], list[str]] = Field(
        "attention",
        description="the modules adapted: attention (peft's list for the architecture, e.g. query and value), "
        "attention+mlp (every linear layer of the layers), all-linear, or a list of module names; "
        "hyperparameters.adapter.target_modules searches the presets",
    )


class TaskSection(Section):
    groups: Optional[dict[str, GroupSelector]] = Field(
        None, description="parameter groups by name (prefixes or a regex); default: the task's own"
    )

    @property
    def group_names(self) -> tuple[str, ...]:
        """The parameter groups: the spec's, else the task's default ones (lora_A, lora_B, head under an adapter)."""
        if self.groups:
            return tuple(self.groups)
        manifest = TASK_MANIFESTS[self.type]
        return manifest.adapter_groups(self.adapted_towers) if self.adapter else manifest.default_groups

    @property
    def adapted_towers(self) -> tuple[str, ...]:
        """The towers under an adapter (a multi-tower task's); () for a single model or without one."""
        return ()

    @property
    def base_model(self) -> str:
        """What an adapter goes on, as the spec names it (a dual encoder's: each adapted tower's)."""
        if self.adapted_towers:
            return ", ".join(f"{t}: {getattr(self, f'{t}_model')}" for t in self.adapted_towers)
        return str(getattr(self, "model", ""))
