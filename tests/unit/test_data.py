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


def test_a_folder_written_by_save_to_disk_keeps_its_splits(tmp_path):
    """A DatasetDict saved with save_to_disk: its validation split is the one named; one Dataset is train."""
    import datasets

    rows = {"review": [f"text {i}" for i in range(40)], "sentiment": ["pos", "neg"] * 20}
    whole = datasets.Dataset.from_dict(rows)
    datasets.DatasetDict({"train": whole.select(range(30)), "validation": whole.select(range(30, 40))}).save_to_disk(
        str(tmp_path / "saved")
    )
    data = load_text_data(cfg(source=str(tmp_path / "saved"), validation_split="validation"), seed=0)
    assert (len(data.train), len(data.validation)) == (30, 10)
    assert sorted(data.validation.texts) == sorted(f"text {i}" for i in range(30, 40))
    whole.save_to_disk(str(tmp_path / "one"))
    data = load_text_data(cfg(source=str(tmp_path / "one")), seed=0)
    assert (len(data.train), len(data.validation)) == (30, 10) and data.label_names == ["neg", "pos"]


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


def test_the_test_rows_are_held_out_of_what_every_trial_loads(tmp_path):
    """A trial's data (train and validation) never holds a test row; scoring at the end reads exactly those."""
    rows = [(f"review number {i} good" if i % 2 else f"review number {i} bad", "pos" if i % 2 else "neg")
            for i in range(100)]  # fmt: skip
    source = write(tmp_path, rows)
    trial = load_text_data(cfg(source=source, test_split=0.2), seed=0)
    test = load_text_data(cfg(source=source, test_split=0.2, part="test"), seed=0).validation
    seen = set(trial.train.texts) | set(trial.validation.texts)
    assert len(test) == 20 and len(seen) == 80 and not seen & set(test.texts)
    assert set(test.texts) | seen == {r[0] for r in rows}
    # the same rows every time, and another seed holds out others
    assert load_text_data(cfg(source=source, test_split=0.2, part="test"), seed=0).validation.texts == test.texts
    assert set(load_text_data(cfg(source=source, test_split=0.2, part="test"), seed=1).validation.texts) != set(
        test.texts
    )
    # a named test split is read as it is
    named = write(tmp_path, rows[:10], name="test.csv")
    import datasets

    raw = datasets.DatasetDict({"train": datasets.load_dataset("csv", data_files=source)["train"],
                                "test": datasets.load_dataset("csv", data_files=named)["train"]})  # fmt: skip
    from trainables.data import held_out_test

    kept, held = held_out_test(raw, raw["train"], cfg(test_split="test"), seed=0)
    assert len(kept) == 100 and len(held) == 10


def test_a_test_split_that_is_the_train_split_or_leaves_no_rows_is_refused(make_spec, tmp_path):
    from tune_service import SpecError, load_spec
    from tune_service.validate import check_task

    spec = make_spec(**{"task.dataset.test_split": "train"})
    with pytest.raises(SpecError, match="test_split='train' is also the train or validation split"):
        load_spec(spec)
    tiny = write(tmp_path, [("good film", "pos"), ("bad film", "neg")])
    spec = make_spec(**{"task.dataset.test_split": 0.5, "task.dataset.source": tiny})
    with pytest.raises(SpecError) as exc:
        check_task(load_spec(spec))
    assert exc.value.problems[0][0] == "task.dataset.test_split" and "cannot hold out a test set" in str(exc.value)
