"""Unit-tier fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def task(tiny_bert, sentiment_csv):
    return {
        "model": tiny_bert,
        "dataset": {
            "source": sentiment_csv, "config_name": None, "text_column": "review", "label_column": "sentiment",
            "train_split": "train", "validation_split": 0.25, "train_size": 120, "validation_size": 60, "seed": 0,
        },
        "max_length": 16,
        "groups": None,
    }  # fmt: skip
