"""Shared fixtures: a tiny random-init BERT and generated sentiment data.

The tiny model is a real transformers BERT (2 layers, hidden size 32) with a
word-level tokenizer built here, saved to a folder, so tests go through the
same "local model path" code a user's model does.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

POSITIVE = ["good", "great", "superb", "lovely", "moving", "brilliant", "fun", "charming"]
NEGATIVE = ["bad", "awful", "dull", "boring", "clumsy", "weak", "tedious", "messy"]
NEUTRAL = ["the", "film", "movie", "plot", "actors", "story", "was", "and", "very", "quite"]


def write_sentiment_csv(path: Path, rows: int = 240, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment"])
        for i in range(rows):
            positive = i % 2 == 0
            words = rng.sample(NEUTRAL, 4) + rng.sample(POSITIVE if positive else NEGATIVE, 2)
            rng.shuffle(words)
            w.writerow([" ".join(words), "pos" if positive else "neg"])
    return path


def save_tiny_bert(path: Path, num_labels: int = 2) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {t: i for i, t in enumerate(specials + POSITIVE + NEGATIVE + NEUTRAL)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return str(save_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def sentiment_csv(tmp_path_factory) -> str:
    return str(write_sentiment_csv(tmp_path_factory.mktemp("data") / "reviews.csv"))


def tiny_spec(model: str, data: str, **overrides) -> dict:
    """A valid spec dict for the tiny model on the generated data."""
    spec = {
        "name": "tiny",
        "task": {
            "type": "text_classification",
            "model": model,
            "dataset": {
                "source": data,
                "text_column": "review",
                "label_column": "sentiment",
                "validation_split": 0.25,
            },
            "max_length": 16,
        },
        "hyperparameters": {
            "groups": {
                "encoder": {"lr": 1e-3, "optimizer": "adamw"},
                "head": {"lr": 1e-2, "optimizer": "sgd"},
            },
            "batch_size": 16,
            "epochs": 2,
        },
        "search": {"strategy": "random", "num_samples": 1},
    }
    for dotted, value in overrides.items():
        node = spec
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return spec


@pytest.fixture
def make_spec(tiny_bert, sentiment_csv):
    def make(**overrides) -> dict:
        return tiny_spec(tiny_bert, sentiment_csv, **overrides)

    return make
