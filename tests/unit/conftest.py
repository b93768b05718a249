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


@pytest.fixture(scope="session")
def answers_csv(tmp_path_factory, sentiment_csv):
    """The generated reviews, answered in words of the tiny vocabulary: good or bad."""
    import csv

    with open(sentiment_csv, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    path = tmp_path_factory.mktemp("sft") / "answers.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "sentiment"])
        writer.writerows([r["review"], "good" if r["sentiment"] == "pos" else "bad"] for r in rows)
    return str(path)
