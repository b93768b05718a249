"""What a task module implements: its task class (:class:`Task`) and three functions (:class:`TaskModule`).

A task (text classification, image+text, causal-LM SFT) is one module of this package plus its line in
:data:`trainables.manifest.TASKS`, which names the module and its class. The loop
(:mod:`trainables.loop`) trains any :class:`Task`; the service reaches a task only through
:mod:`trainables.api`. Each method's docstring says who calls it and when, in the order a sweep does:
the checks before it, each trial, the end of the sweep, the served model.

Types only: torch is imported for type checkers alone, so this module loads without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

MODEL_DIR = "model"  # a checkpoint's model folder: what save_model writes and load_pretrained reads

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .config import TrialConfig
    from .param_groups import Selector
    from .reporting import Reporter


class Task(Protocol):
    """A task built from a trial's task section (``Task(task)``): its data, its model and its scores.

    Built by the checks before a sweep (once per base model), by each trial (and each worker of a
    data-parallel trial), and by the end of a sweep's steps that score or package a checkpoint.
    """

    prepared: Any
    """The data the task built from (:mod:`trainables.prepared`): the checks hand it to the trials."""

    unavailable_metrics: dict[str, str]
    """The task's metrics this data cannot give, each with the reason (the checks refuse a sweep that
    optimizes one): a dataset without labels has no accuracy."""

    @staticmethod
    def rows_used(task: Mapping) -> dict:
        """The dataset's rows the sweep reads, by split (the checks log them as MLflow dataset inputs)."""

    def prepare(self, tasks: Sequence[Mapping]) -> dict[str, Any]:
        """Prepare the data: sections of this task's dataset (its folds, a refit, the test split) by their
        keys (:func:`trainables.prepared.key`), called once per sweep by the checks; a task built from
        one of these sections in another process takes its part instead of reading the data again."""

    def model_skeleton(self, targets: str | None = None) -> nn.Module:
        """The model's parameter layout without weights (meta device), for the checks before a sweep
        (``targets``: under an adapter, a searched preset of modules to adapt; None: the task's)."""

    def build_model(self, config: TrialConfig, model_dir: str | None) -> nn.Module:
        """Build the model for a trial: from ``model_dir`` (a checkpoint's) when given, else the
        pretrained source; called when a trial starts or resumes and when a checkpoint is scored."""

    def selectors(self, model: nn.Module) -> dict[str, Selector]:
        """The model's parameter groups by name (``encoder``, ``head``, ...), each with its own optimizer."""

    def layers(self, model: nn.Module) -> list[list[str]]:
        """Parameter names of the stack's layers, lowest first (embeddings first): what
        ``frozen_layers`` and layer-wise decay count."""

    def steps_per_epoch(self, batch_size: int) -> int:
        """Train: optimizer steps in one epoch (the schedules' length)."""

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterable:
        """Train: one epoch of training batches, in the order ``generator`` draws."""

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        """Train: the loss of one batch, to minimize."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Score a model on the validation data (``val_*`` metrics): after each epoch of a trial, and on
        a checkpoint at the end of a sweep (the finalists' confirmation, the test split's scoring)."""

    def predictions(self, model: nn.Module) -> dict | None:
        """A classifying task's predictions on the validation rows (``classes``, ``true``, ``predicted``,
        ``inputs``) for the best trial's error analysis; None where there are no classes to predict."""

    def save_model(self, model: nn.Module, path: str) -> None:
        """Write the model, loadable by ``build_model(config, path)`` and the module's ``load_pretrained``:
        at each checkpoint of a trial."""

    def serving_example(self, rows: int = 2) -> tuple[dict, dict, dict]:
        """Package for serving: ``(inputs, model_config, params)``, a few validation rows as the served
        model takes them, what ``predict_table`` reads from its model config, and its parameters."""


class TaskModule(Protocol):
    """A task module's functions, beside its :class:`Task` class."""

    def tune_trainable(self, config: dict, task: Mapping, run: Mapping, reporter: Reporter | None = None) -> None:
        """Train one trial: ``config`` is Ray Tune's sample, ``task`` the spec's task section, ``run`` the
        run settings; metrics and checkpoints go to ``reporter`` (Ray Tune's when None)."""

    def load_pretrained(self, model_dir: str, merge: bool = False) -> tuple[nn.Module, Any]:
        """A checkpoint's model folder as ``(model, processor)``, in eval mode (an adapter loaded on its
        base; ``merge`` folds it in): what ``load_best`` returns and what the served model loads."""

    def predict_table(self, model: nn.Module, processor, table, config: Mapping, params: Mapping):
        """The served model's answer: a table of inputs to a table of predictions (:mod:`trainables.serving`);
        ``processor`` is what ``load_pretrained`` returned beside the model (a tokenizer, an image processor)."""
