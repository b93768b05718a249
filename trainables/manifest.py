"""Each task described once, without torch: what the spec, validation and the trainable all read.

A task's manifest names its trainable module (imported only where a trial or a
check runs it), the metrics it reports every epoch (the first is a sweep's
default ``search.metric``), the parameter groups it gets when the spec names
none, and the sizes of its smoke test. Standard library only: the spec imports
this module, and the spec never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

# The image+text task's offline default vision tower (``task.vision_model``): a small ViT for
# 28x28 grayscale images, random init.
DEFAULT_VISION_TOWER = {
    "model_type": "vit",
    "image_size": 28,
    "patch_size": 7,
    "num_channels": 1,
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 256,
}


# The causal-LM task's offline default model (``task.model``): a small Llama built from a config
# (random init), for the MiniLM tokenizer's vocabulary.
DEFAULT_CAUSAL_LM = {
    "model_type": "llama",
    "vocab_size": 30522,
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 256,
    "max_position_embeddings": 512,
    "pad_token_id": 0,
    "tie_word_embeddings": False,
}

# task.adapter.target_modules' named sets, resolved per architecture by trainables.adapters
LORA_TARGET_PRESETS = ("attention", "attention+mlp", "all-linear")

# what every task's trials also report each epoch: the model's size in training, its inference time
COST_METRICS = ("trainable_params", "val_latency_ms")


@dataclass(frozen=True)
class TaskManifest:
    type: str
    module: str  # the task's module: a trainables.contract.TaskModule
    task_class: str  # the module's trainables.contract.Task
    metrics: tuple[str, ...]  # the model's scores, every epoch; the first is the default search.metric
    default_groups: tuple[str, ...]  # parameter groups when task.groups names none
    optional_groups: tuple[str, ...] = ()  # default groups some models lack (lm_head: untied output embeddings)
    adapts: bool = False  # whether task.adapter (LoRA) applies
    towers: tuple[str, ...] = ()  # a multi-tower model's towers, each adapted or trained in full
    adapter_head: bool = True  # under an adapter, whether the rest of the model (a task's new head) trains
    classifies: bool = True  # predicts classes: its best trial gets an error analysis (tune_service.error_analysis)
    smoke_train_size: int = 64  # a smoke test's subsets (tune-service run --smoke-test, python -m MODULE)
    smoke_validation_size: int = 64

    @property
    def reported(self) -> tuple[str, ...]:
        """Every metric a trial reports each epoch that a sweep may optimize: the scores, then the costs."""
        return self.metrics + COST_METRICS

    def adapter_groups(self, adapted: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The default groups under an adapter: its A and B matrices, each tower trained in full, the rest."""
        towers = tuple(t for t in self.towers if t not in adapted)
        return ("lora_A", "lora_B") + towers + (("head",) if self.adapter_head else ())

    def trainable(self):
        """The task's trainable module (imports torch and transformers)."""
        return importlib.import_module(self.module)


TASKS = {
    # `encoder` is the pretrained base model, `head` everything else
    "text_classification": TaskManifest(
        type="text_classification",
        module="trainables.text_classification",
        task_class="TextClassification",
        metrics=("val_accuracy", "val_f1", "val_loss", "train_loss"),
        default_groups=("encoder", "head"),
        adapts=True,  # under an adapter: lora_A, lora_B and head (trained in full)
    ),
    # `vision` and `text` are the towers, `head` the projections and the logit scale
    "image_text": TaskManifest(
        type="image_text",
        module="trainables.image_text",
        task_class="ImageText",
        metrics=(
            "val_zero_shot_accuracy",
            "val_recall_at_1",
            "val_recall_at_5",
            "val_loss",
            "train_loss",
        ),
        default_groups=("vision", "text", "head"),
        adapts=True,  # under an adapter: lora_A, lora_B, a tower not adapted, head
        towers=("vision", "text"),
    ),
    # `embeddings` the input (and tied output) embeddings, `layers` the blocks, `lm_head` untied output ones
    "causal_lm": TaskManifest(
        type="causal_lm",
        module="trainables.causal_lm",
        task_class="CausalLM",
        metrics=("val_exact_match", "val_loss", "val_perplexity", "train_loss"),
        default_groups=("embeddings", "layers", "lm_head"),
        optional_groups=("lm_head",),
        adapts=True,  # under an adapter: lora_A and lora_B; the pretrained head stays frozen
        adapter_head=False,
        classifies=False,
    ),
}


def manifest(task_type: str) -> TaskManifest:
    """The manifest of ``task_type``; a ValueError naming the accepted types otherwise."""
    if task_type not in TASKS:
        raise ValueError(f"task.type={task_type!r}; accepted: {', '.join(TASKS)}")
    return TASKS[task_type]
