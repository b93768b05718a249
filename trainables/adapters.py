"""LoRA adapters on a pretrained model, with Hugging Face's ``peft``.

The task section names the adapter's structure (``task.adapter``: its type, which
modules it adapts and, on a dual encoder, which towers), the trial's config its searched
settings (``adapter``: rank, scale, dropout, and a preset of target modules when that is
searched). The base model's weights stay frozen; the adapter's A and B matrices, the
task's head and any tower not adapted train. Under an adapter a model's default
parameter groups are ``lora_A``, ``lora_B``, each tower trained in full, and ``head``, so
LoRA+ (B learning faster than A) is the spec's derived rate:
``lora_B: {lr: {relative_to: lora_A, ratio: ...}}``.

``target_modules`` presets, resolved per architecture:

- ``attention``: peft's own list for the architecture where it has one (the query and
  value projections for BERT and Llama), else every linear layer inside attention;
- ``attention+mlp``: every linear layer of the stack's layers (attention and MLP);
- ``all-linear``: peft's ``all-linear`` (every linear layer but the output layer).

An explicit list names modules by their name's last parts (``query``, ``attention.output.dense``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from torch import nn

from .config import AdapterSettings
from .data import TaskError
from .param_groups import Selector

TASK_FIELD = "task.adapter.target_modules"
SEARCHED_FIELD = "hyperparameters.adapter.target_modules"
LAYOUT = AdapterSettings(r=1, alpha=1.0, dropout=0.0)  # for a model's parameter names alone: any rank will do
_LAYER = re.compile(r"\.layers?\.\d+\.")
_ATTENTION = ("attention", "attn")


def linear_names(model: nn.Module) -> list[str]:
    """The qualified names of the model's linear layers."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def targets(adapter: Mapping, settings: AdapterSettings) -> tuple[str | list[str], str]:
    """The modules a trial adapts and the spec field that names them: the trial's preset, else the task's."""
    if settings.target_modules is not None:
        return settings.target_modules, SEARCHED_FIELD
    return adapter["target_modules"], TASK_FIELD


def target_modules(model: nn.Module, targets: str | list[str], field: str = TASK_FIELD) -> str | list[str]:
    """What peft's ``LoraConfig.target_modules`` gets for a preset or a list; TaskError when a name matches nothing."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    if targets == "all-linear":
        return "all-linear"
    linear = linear_names(model)
    if isinstance(targets, list):
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in linear)]
        if missing:
            leaves = sorted({n.rsplit(".", 1)[-1] for n in linear})
            raise TaskError(
                f"{missing} match no linear layer of this model; its linear layers end in: {', '.join(leaves)}", field
            )
        return list(targets)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if targets == "attention" and model_type in PEFT_DEFAULTS:
        return list(PEFT_DEFAULTS[model_type])
    in_layers = [n for n in linear if _LAYER.search(n)]
    chosen = [n for n in in_layers if targets == "attention+mlp" or any(a in n.lower() for a in _ATTENTION)]
    if not chosen:
        raise TaskError(f"{targets!r} finds no linear layer in this model's layers: name them in a list", field)
    return sorted({_LAYER.split(n, maxsplit=1)[1] for n in chosen})  # each name within its layer


def lora_config(model: nn.Module, adapter: Mapping, settings: AdapterSettings, task_type=None):
    """peft's ``LoraConfig`` for ``model``: the trial's rank, scale and dropout on the modules it adapts."""
    from peft import LoraConfig

    return LoraConfig(
        task_type=task_type,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=target_modules(model, *targets(adapter, settings)),
    )


def attach(
    model: nn.Module, adapter: Mapping, settings: AdapterSettings, base_source: str | Mapping, task_type=None
) -> nn.Module:
    """A transformers model wrapped with a LoRA adapter (peft), its base frozen.

    ``adapter`` is the task's ``adapter`` section, ``settings`` the trial's, ``base_source``
    the base model as the spec names it, recorded in the adapter's config for loading it back.
    ``task_type`` is peft's (default ``SEQ_CLS``: a classifier, its head trained in full as
    peft's ``modules_to_save``; ``CAUSAL_LM``: a language model, its output layer frozen).
    """
    from peft import TaskType

    config = lora_config(model, adapter, settings, task_type or TaskType.SEQ_CLS)
    return _wrapped(model, config, base_source)


def attach_tower(tower: nn.Module, adapter: Mapping, settings: AdapterSettings, base_source: str) -> nn.Module:
    """One tower of a multi-tower model wrapped with a LoRA adapter, its weights frozen (a ``PeftModel``)."""
    return _wrapped(tower, lora_config(tower, adapter, settings), base_source)


def _wrapped(model: nn.Module, config, base_source: str) -> nn.Module:
    """peft's wrapper around ``model``, naming its base; TaskError where peft cannot wrap the model."""
    from peft import get_peft_model

    try:
        adapted = get_peft_model(model, config)
    except (ValueError, TypeError) as exc:
        raise TaskError(f"peft cannot put a LoRA adapter on this model: {exc}", "task.adapter") from None
    adapted.peft_config["default"].base_model_name_or_path = base_source
    return adapted


def merged(model: nn.Module) -> nn.Module:
    """The model with its adapter folded into the base weights (peft's ``merge_and_unload``); else as it is."""
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def from_checkpoint(model_dir: str, load_base: Callable[[str], nn.Module], merge: bool) -> nn.Module | None:
    """A checkpoint's adapter put on its base model (``load_base(source)``, the source as the adapter's
    config names it), folded into it with ``merge``; None when the checkpoint holds a whole model."""
    if not Path(model_dir, "adapter_config.json").exists():
        return None
    from peft import PeftConfig, PeftModel

    base = load_base(PeftConfig.from_pretrained(model_dir).base_model_name_or_path)
    model = PeftModel.from_pretrained(base, model_dir)
    return merged(model) if merge else model


def selectors(towers: Mapping[str, str] | None = None, head: bool = True) -> dict[str, Selector]:
    """The default groups of an adapted model: the A matrices, the B matrices, each tower trained in full
    (group name to its parameters' prefix), and (with ``head``) everything else trained."""
    towers = dict(towers or {})
    rest = "".join(f"(?!{re.escape(prefix)})" for prefix in towers.values())
    return {
        "lora_A": Selector(regex=r"\.lora_A\."),
        "lora_B": Selector(regex=r"\.lora_B\."),
        **{group: Selector(prefix=(prefix,)) for group, prefix in towers.items()},
        **({"head": Selector(regex=r"^(?!.*\.lora_[AB]\.)" + rest)} if head else {}),
    }
