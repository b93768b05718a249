"""Loading text classification data: local files, built-in sets, label encoding, clear errors."""

from __future__ import annotations

import pytest

from trainables.data import DataError, load_text_data

CFG = {
    "source": None, "config_name": None, "text_column": "review", "label_column": "sentiment",
    "train_split": "train", "validation_split": 0.25, "train_size": None, "validation_size": None, "seed": 0,
}  # fmt: skip


def cfg(**changes) -> dict:
    return {**CFG, **changes}


def write(tmp_path, rows: list[tuple], name: str = "d.csv", header=("review", "sentiment")):
    import pandas as pd

    path = tmp_path / name
    df = pd.DataFrame(rows, columns=list(header))
    if name.endswith(".parquet"):
        df.to_parquet(path)
    elif name.endswith(".jsonl"):
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, index=False)
    return str(path)


def test_string_labels_are_sorted_and_encoded(sentiment_csv):
    data = load_text_data(cfg(source=sentiment_csv), seed=0)
    assert data.label_names == ["neg", "pos"]
    assert len(data.train) == 180 and len(data.validation) == 60
    assert set(data.train.labels) == {0, 1}


def test_subsets_and_seeded_split_are_reproducible(sentiment_csv):
    a = load_text_data(cfg(source=sentiment_csv, train_size=50, validation_size=20), seed=4)
    b = load_text_data(cfg(source=sentiment_csv, train_size=50, validation_size=20), seed=4)
    c = load_text_data(cfg(source=sentiment_csv, train_size=50, validation_size=20), seed=5)
    assert (len(a.train), len(a.validation)) == (50, 20)
    assert a.train.texts == b.train.texts and a.validation.texts == b.validation.texts
    assert a.train.texts != c.train.texts


@pytest.mark.parametrize("name", ["d.csv", "d.jsonl", "d.parquet"])
def test_local_formats_and_integer_labels(tmp_path, name):
    path = write(tmp_path, [(f"text {i}", i % 3) for i in range(30)], name)
    data = load_text_data(cfg(source=path), seed=0)
    assert data.label_names == ["0", "1", "2"]
    assert sorted(set(data.train.labels) | set(data.validation.labels)) == [0, 1, 2]


def test_builtin_rotten_tomatoes():
    data = load_text_data(
        cfg(source="builtin:rotten_tomatoes", text_column="text", label_column="label", train_size=10),
        seed=0,
    )
    assert data.label_names == ["rotten", "fresh"] and len(data.train) == 10
    assert len(data.validation) > 2000  # 20% of 12,808 fresh + rotten snippets


TWO = [("a", 0), ("b", 1)] * 5


@pytest.mark.parametrize(
    "rows,changes,message",
    [
        (TWO, {"text_column": "text"}, "text_column='text' not in the train data; columns: review, sentiment"),
        (TWO, {"label_column": "y"}, "label_column='y' not in the train data"),
        ([("a", 0)] * 10, {}, "has 1 class; classification needs at least 2"),
        ([("a", -1), ("b", 1)] * 5, {}, "negative label -1"),
        (TWO, {"validation_split": "test"}, "validation_split='test' not in the dataset; splits: train"),
        (TWO, {"train_split": "training"}, "train_split='training' not in the dataset"),
    ],
)  # fmt: skip
def test_bad_data_is_named(tmp_path, rows, changes, message):
    path = write(tmp_path, rows)
    with pytest.raises(DataError) as info:
        load_text_data(cfg(source=path, **changes), seed=0)
    assert message in str(info.value)


def test_missing_file_and_unknown_builtin(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_text_data(cfg(source=str(tmp_path / "nope.csv")), seed=0)
    with pytest.raises(DataError, match="not built in; built-in: builtin:rotten_tomatoes"):
        load_text_data(cfg(source="builtin:imdb"), seed=0)
