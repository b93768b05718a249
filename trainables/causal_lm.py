"""Causal language models: supervised fine-tuning of a decoder on prompts and responses.

Any ``AutoModelForCausalLM``: a hub id, a local folder, or a transformers config (random
weights; the offline default is a small Llama with the MiniLM tokenizer). The data
(:mod:`trainables.sft_data`) is prompt/response pairs, plain text or chat turns; the loss
counts the response tokens only; ``task.packing`` puts several training examples in each sequence.
The default parameter groups are ``embeddings`` (the input
embeddings, and the output ones when tied), ``layers`` (the transformer blocks and the final
norm) and ``lm_head`` (the output embeddings, when not tied); under ``task.adapter``,
``lora_A`` and ``lora_B``.

Metrics each epoch: ``val_loss`` (per response token), ``val_perplexity``, and
``val_exact_match``: greedy answers to a sample of validation prompts (``task.generation``),
each right when it is the reference response exactly (surrounding spaces aside).

Without Ray::

    python -m trainables.causal_lm --smoke-test
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

import torch
from torch import nn

from . import adapters, model_configs
from .config import TrialConfig
from .cross_validation import fit_task
from .data import TaskError, used_rows
from .manifest import DEFAULT_CAUSAL_LM, TASKS
from .param_groups import Selector
from .prepared import key, provided
from .reporting import Reporter, TuneReporter
from .sft_data import (
    IGNORE,
    ROLES,
    Example,
    Packed,
    SFTData,
    data_format,
    end_token,
    load_sft_data,
    pack,
    prompt_tokens,
)
from .standalone import quiet_transformers, smoke_config, smoke_main
from .text_classification import LAYER, pad, resolve_model, set_dropout_config

MANIFEST = TASKS["causal_lm"]
EVAL_BATCH_SIZE = 32


def lm_config(spec: str | Mapping):
    """The model's transformers config, from a source or a config mapping; TaskError unless a causal LM."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    try:
        if isinstance(spec, Mapping):
            config = model_configs.from_settings(spec, "task.model")
        else:
            config = AutoConfig.from_pretrained(resolve_model(spec))
    except TaskError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise TaskError(f"cannot build the model from {spec!r}: {exc}", "task.model") from None
    kind = config.model_type
    # an encoder (BERT) has a causal-LM head class too, but is not a decoder unless its config says so
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or (
        kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False)
    ):
        raise TaskError(
            f"{spec!r} is a {kind!r} model, not a causal language model; accepted: a decoder such "
            "as llama, qwen2, mistral, gpt2, phi (any AutoModelForCausalLM)",
            "task.model",
        )
    return config


def load_tokenizer(task: Mapping):
    """The task's tokenizer (``tokenizer``, else the model's), with a padding token."""
    from transformers import AutoTokenizer

    source = task.get("tokenizer") or task["model"]
    if isinstance(source, Mapping):
        raise TaskError("a model built from a config needs `tokenizer` (a hub id, folder or builtin)", "task.tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(source, "task.tokenizer"))
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot load the tokenizer {source!r}: {exc}", "task.tokenizer") from None
    if tokenizer.pad_token_id is None:  # decoders often have none: pad with the end-of-sequence token
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def batch_of(examples: list[Example] | list[Packed], pad_id: int) -> dict:
    ids, mask = pad([e.ids for e in examples], pad_id)
    labels, _ = pad([e.labels for e in examples], IGNORE)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class CausalLM:
    """The :class:`trainables.contract.Task` for a causal language model."""

    def __init__(self, task: Mapping):
        self.task = task
        self.config = lm_config(task["model"])
        self.tokenizer = load_tokenizer(task)
        vocab = getattr(self.config, "vocab_size", None)
        if vocab is not None and len(self.tokenizer) > vocab:
            raise TaskError(
                f"the tokenizer has {len(self.tokenizer)} tokens but the model's vocab_size is {vocab}", "task.model"
            )
        # the sweep's data, prepared once and provided to this process; else prepared here
        self.prepared: SFTData = provided(task) or self.prepare([task])[key(task)]
        self.train = pack(self.prepared.train, int(task["max_length"])) if task.get("packing") else self.prepared.train
        self.adapter = task.get("adapter")
        self.groups = task.get("groups")
        self.generation = dict(task.get("generation") or {"max_new_tokens": 8, "examples": 64})
        self.pad_id = self.tokenizer.pad_token_id
        longest = max(len(e.response) for e in self.prepared.validation)
        self.unavailable_metrics = {}
        if self.generation["examples"] == 0:
            self.unavailable_metrics["val_exact_match"] = "task.generation.examples is 0"
        elif longest > self.generation["max_new_tokens"]:
            self.unavailable_metrics["val_exact_match"] = (
                f"a validation response has {longest} tokens, more than task.generation.max_new_tokens="
                f"{self.generation['max_new_tokens']}"
            )

    def prepare(self, tasks: Sequence[Mapping]) -> dict[str, SFTData]:
        """Sections of this task (its folds, a refit, the test split) loaded and tokenized, by their keys."""
        return {
            key(task): load_sft_data(
                task["dataset"],
                int(task["dataset"].get("seed", 0)),
                self.tokenizer,
                int(task["max_length"]),
                task.get("chat_template"),
            )
            for task in tasks
        }

    @staticmethod
    def rows_used(task: Mapping) -> dict:
        """The rows a trial of ``task`` learns from and is validated on (:func:`trainables.data.used_rows`)."""
        cfg = task["dataset"]
        return used_rows(cfg, int(cfg.get("seed", 0)), ROLES[data_format(cfg)])

    # ---------------------------------------------------------------- model

    def _base(self, dropout: float | None) -> nn.Module:
        from transformers import AutoModelForCausalLM

        config = self.config.__class__.from_dict(self.config.to_dict())
        set_dropout_config(config, dropout)
        if isinstance(self.task["model"], Mapping):
            return AutoModelForCausalLM.from_config(config)
        source = resolve_model(self.task["model"])
        if (self.adapter or {}).get("quantization") == "4bit":
            return _four_bit(source, config, bool(self.task.get("gradient_checkpointing")))
        return AutoModelForCausalLM.from_pretrained(source, config=config)

    def build_model(self, config: TrialConfig, model_dir: str | None) -> nn.Module:
        """The model (with an adapter under ``task.adapter``), or a checkpoint's."""
        from transformers import AutoModelForCausalLM

        if model_dir and self.adapter is None:
            model = AutoModelForCausalLM.from_pretrained(model_dir)
        elif model_dir:
            from peft import PeftModel

            model = PeftModel.from_pretrained(self._base(config.dropout), model_dir, is_trainable=True)
        else:
            model = self._base(config.dropout)
            if self.adapter is not None:
                model = self._attach(model, config.adapter)
        if self.task.get("gradient_checkpointing"):
            model.gradient_checkpointing_enable()
            if self.adapter is not None:
                model.enable_input_require_grads()  # the frozen embeddings' output must carry gradients
        return model

    def _attach(self, model: nn.Module, settings) -> nn.Module:
        from peft import TaskType

        source = self.task["model"]
        return adapters.attach(model, self.adapter, settings, source, TaskType.CAUSAL_LM)

    def model_skeleton(self, targets: str | None = None) -> nn.Module:
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(self.config)
            if self.adapter is None:
                return model
            return self._attach(model, replace(adapters.LAYOUT, target_modules=targets))

    def selectors(self, model: nn.Module) -> dict[str, Selector]:
        if self.groups:
            return {g: Selector.from_dict(sel) for g, sel in self.groups.items()}
        if self.adapter is not None:
            return adapters.selectors(head=False)
        return default_selectors(model)

    def layers(self, model: nn.Module) -> list[list[str]]:
        names = [n for n, _ in model.named_parameters()]
        embeddings = [n for n in names if ".embed_tokens." in n or ".wte." in n or ".wpe." in n]
        by_layer: dict[int, list[str]] = {}
        for n in names:
            m = LAYER.search(n) or _GPT_BLOCK.search(n)
            if m:
                by_layer.setdefault(int(m.group(1)), []).append(n)
        return [embeddings] + [by_layer[i] for i in sorted(by_layer)]

    # ---------------------------------------------------------------- data

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.train) // batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        """Batches of examples, or of packed sequences with ``task.packing``, in the order ``generator`` draws."""
        perm = torch.randperm(len(self.train), generator=generator).tolist()
        for start in range(0, len(perm), batch_size):
            yield batch_of([self.train[i] for i in perm[start : start + batch_size]], self.pad_id)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return model(**batch).loss

    # ---------------------------------------------------------------- metrics

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        device = next(model.parameters()).device
        started = time.perf_counter()
        loss_sum, tokens = 0.0, 0
        for start in range(0, len(self.prepared.validation), EVAL_BATCH_SIZE):
            batch = batch_of(self.prepared.validation[start : start + EVAL_BATCH_SIZE], self.pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            targets = batch["labels"][:, 1:]  # token t predicts token t + 1
            loss_sum += float(
                nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]),
                    targets.reshape(-1),
                    ignore_index=IGNORE,
                    reduction="sum",
                )
            )
            tokens += int((targets != IGNORE).sum())
        latency = 1000 * (time.perf_counter() - started) / len(self.prepared.validation)
        val_loss = loss_sum / max(tokens, 1)
        metrics = {"val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 50.0)), "val_latency_ms": latency}
        if "val_exact_match" not in self.unavailable_metrics:
            metrics["val_exact_match"] = self.exact_match(model)
        return metrics

    def answers(self, model: nn.Module, count: int) -> list[str]:
        """Greedy answers to the first ``count`` validation prompts (``generation.max_new_tokens`` at most)."""
        prompts = [e.prompt for e in self.prepared.validation[:count]]
        return generate(model, self.tokenizer, prompts, int(self.generation["max_new_tokens"]))

    def predictions(self, model: nn.Module) -> None:
        """No classes to predict: a language model's answers get no error analysis."""
        return None

    def serving_example(self, rows: int = 2) -> tuple[dict, dict, dict]:
        """A few validation prompts as a logged model's input example, its ``model_config`` and parameters."""
        config = {"input_column": "prompt", "max_new_tokens": int(self.generation["max_new_tokens"])}
        return {"prompt": self.prepared.validation_prompts[:rows]}, config, {"max_new_tokens": config["max_new_tokens"]}

    def exact_match(self, model: nn.Module) -> float:
        """The share of the sampled validation prompts answered with exactly the reference response."""
        count = min(int(self.generation["examples"]), len(self.prepared.validation))
        given = self.answers(model, count)
        return sum(a == b for a, b in zip(given, self.prepared.validation_answers[:count])) / count

    def save_model(self, model: nn.Module, path: str) -> None:
        """The model (under an adapter: the adapter alone, naming its base), and the tokenizer."""
        if self.adapter is None:
            model.save_pretrained(path)
        else:
            model.save_pretrained(path, save_embedding_layers=False)
        self.tokenizer.save_pretrained(path)


_GPT_BLOCK = re.compile(r"\.h\.(\d+)\.")  # GPT-2's blocks: transformer.h.N


@torch.no_grad()
def generate(model: nn.Module, tokenizer, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
    """Greedy answers to tokenized prompts, batched and left-padded, each up to its end token."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_token(tokenizer)
    out = []
    for start in range(0, len(prompts), EVAL_BATCH_SIZE):
        ids, mask = pad(prompts[start : start + EVAL_BATCH_SIZE], pad_id, left=True)
        generated = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad_id,
            eos_token_id=end_token(tokenizer),
        )
        out += tokenizer.batch_decode(generated[:, ids.shape[1] :], skip_special_tokens=True)
    return [a.strip() for a in out]


def predict_table(model: nn.Module, processor, table, config: Mapping, params: Mapping):
    """``table``'s prompts (as the model sees them) to greedy ``response``s of ``max_new_tokens`` at most."""
    import pandas as pd

    prompts = [prompt_tokens(processor, "" if p is None else str(p)) for p in table[config["input_column"]]]
    budget = int(params.get("max_new_tokens") or config["max_new_tokens"])
    return pd.DataFrame({"response": generate(model, processor, prompts, budget)})


def _four_bit(source: str, config, checkpointing: bool) -> nn.Module:
    """QLoRA's base: the weights in 4-bit NF4 (bitsandbytes), computed in bf16, on this process's GPU."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise TaskError("quantization 4bit needs a CUDA GPU, and this trial has none", "task.adapter.quantization")
    quantized = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    model = AutoModelForCausalLM.from_pretrained(
        source, config=config, quantization_config=quantized, device_map={"": torch.cuda.current_device()}
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)


def default_selectors(model: nn.Module) -> dict[str, Selector]:
    """``embeddings`` (input, and output when tied), ``lm_head`` (output, when not tied), ``layers`` the rest."""
    names = {id(p): n for n, p in model.named_parameters()}  # a tied weight is listed once, by its first name
    embedding = {names[id(p)] for p in model.get_input_embeddings().parameters() if id(p) in names}
    head = {names[id(p)] for p in model.get_output_embeddings().parameters() if id(p) in names} - embedding
    escaped = [n.replace(".", r"\.") for n in sorted(embedding | head)]
    groups = {
        "embeddings": Selector(prefix=tuple(sorted(embedding))),
        "layers": Selector(regex="^(?!(" + "|".join(escaped) + ")$)"),
    }
    if head:
        groups["lm_head"] = Selector(prefix=tuple(sorted(head)))
    return groups


def load_pretrained(model_dir: str, merge: bool = False) -> tuple[nn.Module, object]:
    """A saved checkpoint as a ready ``(model, tokenizer)`` for ``generate``, in eval mode.

    An adapter's checkpoint is loaded onto the base model its config names (a peft ``PeftModel``),
    or with ``merge`` folded into it (a plain transformers model).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = adapters.from_checkpoint(model_dir, lambda b: AutoModelForCausalLM.from_pretrained(resolve_model(b)), merge)
    if model is None:  # a whole model
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def train(config: Mapping, task: Mapping, run: Mapping, reporter: Reporter) -> dict:
    """Run one trial (one model per fold under cross-validation); returns its last epoch's metrics."""
    return fit_task(CausalLM, config, task, run, reporter)


def tune_trainable(config: dict, task: Mapping, run: Mapping, reporter: Reporter | None = None) -> None:
    """Ray Tune function trainable (bind ``task`` and ``run`` with ``tune.with_parameters``)."""
    quiet_transformers()
    train(config, task, run, reporter or TuneReporter())


SMOKE_TASK = {
    "model": dict(DEFAULT_CAUSAL_LM),
    "tokenizer": "builtin:minilm",
    "dataset": {
        "source": "builtin:rotten_tomatoes",
        "prompt_column": "text",
        "response_column": "label",
        "prompt_template": "Review: {prompt}\nVerdict:",
        "text_column": None,
        "messages_column": None,
        "train_split": "train",
        "validation_split": 0.2,
        "train_size": MANIFEST.smoke_train_size,
        "validation_size": MANIFEST.smoke_validation_size,
        "seed": 0,
    },
    "max_length": 96,
    "generation": {"max_new_tokens": 4, "examples": 32},
    "gradient_checkpointing": False,
    "groups": None,
}
SMOKE_CONFIG = smoke_config(
    {"embeddings": {"lr": 1e-3}, "layers": {"lr": 1e-3}, "lm_head": {"lr": 1e-3}}, batch_size=16
)


def main(argv: list[str] | None = None) -> int:
    return smoke_main(argv, MANIFEST, train, SMOKE_TASK, SMOKE_CONFIG, __doc__.split("\n")[0], model_option="model")


if __name__ == "__main__":
    sys.exit(main())
