"""``hyperparameters``: each parameter group's optimizer settings, the adapter's, and the trial-wide ones."""

from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator

from search_spaces import LR_SCHEDULERS, OPTIMIZERS, Domain
from trainables.api import LORA_TARGET_PRESETS

from ._fields import FRACTION, NON_NEGATIVE, POSITIVE, Searchable, Section


class GroupHyperparameters(Section):
    """Optimizer, LR schedule and freezing for one parameter group (its own optimizer)."""

    lr: Searchable(
        POSITIVE, "peak learning rate, or {relative_to: GROUP, ratio: ...} times another group's", derivable=True
    )
    optimizer: Searchable(Domain("choice", options=OPTIMIZERS), "optimizer type") = "adamw"
    weight_decay: Searchable(NON_NEGATIVE, "weight decay (decoupled for adamw)") = 0.0
    momentum: Searchable(FRACTION, "momentum (sgd, rmsprop)") = 0.9
    beta1: Searchable(FRACTION, "first-moment decay (adam, adamw)") = 0.9
    beta2: Searchable(FRACTION, "second-moment decay (adam, adamw)") = 0.999
    scheduler: Searchable(Domain("choice", options=LR_SCHEDULERS), "LR schedule") = "constant"
    warmup_ratio: Searchable(FRACTION, "fraction of training steps of linear warmup") = 0.0
    gamma: Searchable(Domain("float", gt=0, le=1), "decay factor (step: per step_epochs; exponential: per epoch)") = 0.5
    step_epochs: Searchable(Domain("int", ge=1), "epochs between decays of the step schedule") = 1
    decay: Searchable(NON_NEGATIVE, "inverse_time decay: lr / (1 + decay * epoch)") = 1.0
    frozen: Searchable(Domain("bool"), "freeze this group's parameters") = False
    unfreeze_epoch: Searchable(Domain("int", ge=1, nullable=True), "first epoch in which a frozen group trains") = None
    layer_decay: Searchable(
        Domain("float", gt=0, le=1, nullable=True),
        "layer-wise rate decay: the group's top layer at lr, each layer below at layer_decay times the one above, "
        "the embeddings last; null: one rate",
    ) = None


class AdapterHyperparameters(Section):
    """A LoRA adapter's settings (with ``task.adapter``): its rank, scale and dropout, each fixed or searched."""

    r: Searchable(Domain("int", ge=1), "rank of the A and B matrices") = 8
    alpha: Searchable(POSITIVE, "scale: the adapter's update is multiplied by alpha / r") = 16.0
    dropout: Searchable(Domain("float", ge=0, lt=1), "dropout on the adapter's input") = 0.0
    target_modules: Searchable(
        Domain("choice", options=LORA_TARGET_PRESETS, nullable=True),
        "the modules adapted, a preset (searchable: {choice: [attention, attention+mlp]}); "
        "null: task.adapter.target_modules",
    ) = None


class Hyperparameters(Section):
    """Everything a trial is configured by; each entry fixed or searched."""

    groups: dict[str, GroupHyperparameters]
    adapter: Optional[AdapterHyperparameters] = Field(
        None, description="the adapter's rank, scale and dropout (with task.adapter; default r 8, alpha 16)"
    )
    batch_size: Searchable(Domain("int", ge=1), "training batch size") = 16
    epochs: Searchable(Domain("int", ge=1), "training epochs") = 1
    dropout: Searchable(Domain("float", ge=0, lt=1, nullable=True), "dropout of every dropout layer") = None
    l1: Searchable(NON_NEGATIVE, "L1 penalty on weights, added to the loss") = 0.0
    l2: Searchable(NON_NEGATIVE, "L2 penalty on weights, added to the loss") = 0.0
    max_grad_norm: Searchable(Domain("float", gt=0, nullable=True), "gradient clipping norm") = 1.0
    frozen_layers: Searchable(
        Domain("int", ge=0), "the K lowest layers frozen, the embeddings counting as the first"
    ) = 0
    early_stopping_patience: Searchable(
        Domain("int", ge=1, nullable=True), "epochs without improvement before a trial stops"
    ) = None
    seed: Searchable(Domain("int", ge=0), "seed of model init, dropout and data order") = 0
    model: Searchable(
        Domain("str", nullable=True),
        "the base model a trial fine-tunes, searched: set from task.model when it is {choice: [...]} or "
        "{grid: [...]}; null: task.model",
    ) = None

    @field_validator("groups")
    @classmethod
    def _some_group(cls, groups: dict) -> dict:
        if not groups:
            raise ValueError("at least one parameter group is needed")
        return groups
