"""LoRA adapters on a pretrained model, with Hugging Face's ``peft``.

The task section names the adapter's structure (``task.adapter``: its type and which
modules it adapts), the trial's config its searched settings (``adapter``: rank,
scale, dropout). The base model's weights stay frozen; the adapter's A and B
matrices and the task's head train. Under an adapter a model's default parameter
groups are ``lora_A``, ``lora_B`` and ``head``, so LoRA+ (B learning faster than A)
is the spec's derived rate: ``lora_B: {lr: {relative_to: lora_A, ratio: ...}}``.

``target_modules`` presets, resolved per architecture:

- ``attention``: peft's own list for the architecture where it has one (the query and
  value projections for BERT and Llama), else every linear layer inside attention;
- ``attention+mlp``: every linear layer of the stack's layers (attention and MLP);
- ``all-linear``: peft's ``all-linear`` (every linear layer but the output layer).

An explicit list names modules by their name's last parts (``query``, ``attention.output.dense``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import nn

from .config import AdapterSettings
from .data import TaskError
from .param_groups import Selector

PRESETS = ("attention", "attention+mlp", "all-linear")
FIELD = "task.adapter.target_modules"
_LAYER = re.compile(r"\.layers?\.\d+\.")
_ATTENTION = ("attention", "attn")


def linear_names(model: nn.Module) -> list[str]:
    """The qualified names of the model's linear layers."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def target_modules(model: nn.Module, targets: str | list[str]) -> str | list[str]:
    """What peft's ``LoraConfig.target_modules`` gets for a preset or a list; TaskError when a name matches nothing."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    if targets == "all-linear":
        return "all-linear"
    linear = linear_names(model)
    if isinstance(targets, list):
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in linear)]
        if missing:
            leaves = sorted({n.rsplit(".", 1)[-1] for n in linear})
            raise TaskError(f"{missing} match no linear layer of this model; its linear layers end in: "
                            f"{', '.join(leaves)}", FIELD)  # fmt: skip
        return list(targets)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if targets == "attention" and model_type in PEFT_DEFAULTS:
        return list(PEFT_DEFAULTS[model_type])
    in_layers = [n for n in linear if _LAYER.search(n)]
    chosen = [n for n in in_layers if targets == "attention+mlp" or any(a in n.lower() for a in _ATTENTION)]
    if not chosen:
        raise TaskError(f"{targets!r} finds no linear layer in this model's layers: name them in a list", FIELD)
    return sorted({_LAYER.split(n, maxsplit=1)[1] for n in chosen})  # each name within its layer


def attach(model: nn.Module, adapter: Mapping, settings: AdapterSettings | None, base_source: str) -> nn.Module:
    """``model`` wrapped with a LoRA adapter (peft), its base frozen, the head fully trained.

    ``adapter`` is the task's ``adapter`` section, ``settings`` the trial's (rank, scale,
    dropout; None: the defaults), ``base_source`` the base model as the spec names it,
    recorded in the adapter's config for loading it back.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    settings = settings or AdapterSettings()
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,  # the classification head is trained in full (peft's modules_to_save)
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=target_modules(model, adapter["target_modules"]),
    )
    adapted = get_peft_model(model, config)
    adapted.peft_config["default"].base_model_name_or_path = base_source
    return adapted


def selectors() -> dict[str, Selector]:
    """The default groups of an adapted model: the A matrices, the B matrices, and everything else trained."""
    return {
        "lora_A": Selector(regex=r"\.lora_A\."),
        "lora_B": Selector(regex=r"\.lora_B\."),
        "head": Selector(regex=r"^(?!.*\.lora_[AB]\.)"),
    }
