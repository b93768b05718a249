"""Image+text data: images paired with captions and/or class labels.

Loaded through Hugging Face ``datasets`` from

- ``builtin:fashion_mnist``: Fashion-MNIST (Debian's ``dataset-fashion-mnist``
  package: ``/usr/share/datasets/fashion-mnist``), 10 named classes;
- an image folder (``datasets``' ``imagefolder``): class subfolders give the
  label; or a ``metadata.csv``/``metadata.jsonl`` gives each image's columns
  (``file_name``, a caption, a label);
- a CSV/JSON/parquet file whose image column holds paths (relative to the file's
  folder), or image bytes;
- a hub id whose image column is an ``Image`` feature.

Every example gets a caption: its own (``caption_column``) or the class
caption made from ``caption_template`` and its label. Images are decoded,
converted to the vision tower's channels and preprocessed once, with a
transformers image processor that needs only PIL (no torchvision).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import DataError, class_names, encode_labels, load_raw, split_train_validation, subset, values

FASHION_MNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]
PREPROCESS_CHUNK = 512


def _idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): big-endian dims after a magic number, then uint8 data."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))


def _fashion_mnist():
    """Fashion-MNIST's 60,000 train and 10,000 test 28x28 grayscale images, 10 classes."""
    import datasets
    import pyarrow as pa

    if not FASHION_MNIST_DIR.is_dir():
        raise DataError(
            f"builtin:fashion_mnist reads {FASHION_MNIST_DIR}, which does not exist: install Debian's "
            "dataset-fashion-mnist package (`make data`, or `apt-get install dataset-fashion-mnist`), "
            "or point FASHION_MNIST_DIR at a folder holding its *-idx*-ubyte.gz files"
        )
    features = datasets.Features(
        {"image": datasets.Array2D((28, 28), "uint8"), "label": datasets.ClassLabel(names=FASHION_MNIST_CLASSES)}
    )
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")
        labels = _idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz")
        table = pa.table({"image": _array2d(images), "label": pa.array(labels.astype(np.int64))})
        splits[split] = datasets.Dataset(table, info=datasets.DatasetInfo(features=features))
    return datasets.DatasetDict(splits)


def _array2d(images: np.ndarray):
    """(N, H, W) uint8 as an Arrow column of ``datasets``' Array2D type, without a Python loop."""
    import pyarrow as pa
    from datasets.features.features import Array2DExtensionType

    n, h, w = images.shape
    rows = pa.ListArray.from_arrays(pa.array(np.arange(0, n * h * w + 1, w, dtype=np.int32)), pa.array(images.ravel()))
    storage = pa.ListArray.from_arrays(pa.array(np.arange(0, n * h + 1, h, dtype=np.int32)), rows)
    return pa.ExtensionArray.from_storage(Array2DExtensionType((h, w), "uint8"), storage)


BUILTIN_IMAGE_DATASETS = {"fashion_mnist": _fashion_mnist}


@dataclass
class Pairs:
    """Preprocessed images with the index of each one's caption (and its label, when there are labels)."""

    pixels: torch.Tensor  # (N, C, H, W), float16 (the processor's output, halved for memory)
    caption_ids: torch.Tensor  # (N,) index into ImageTextData.captions
    labels: torch.Tensor | None  # (N,) class ids

    def __len__(self) -> int:
        return len(self.caption_ids)

    def __reduce__(self):
        # pickled as numpy arrays, which Ray's object store hands back without a copy (shared memory)
        arrays = (self.pixels.numpy(), self.caption_ids.numpy(), None if self.labels is None else self.labels.numpy())
        return _pairs_of_arrays, arrays


def _pairs_of_arrays(pixels: np.ndarray, caption_ids: np.ndarray, labels: np.ndarray | None) -> Pairs:
    """Pairs viewing the arrays' memory (read-only from the object store: the trials only ever read it)."""
    import warnings

    def tensor(array: np.ndarray) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(array)

    return Pairs(tensor(pixels), tensor(caption_ids), None if labels is None else tensor(labels))


@dataclass
class ImageTextData:
    train: Pairs
    validation: Pairs
    captions: list[str]  # every distinct caption, train and validation
    label_names: list[str] | None
    class_captions: list[str] | None  # one per class, from the template (zero-shot classification)


def load_image_text_data(cfg: Mapping, seed: int, processor, mode: str) -> ImageTextData:
    """Load, split, subset and preprocess an image+text dataset.

    ``cfg`` is the spec's ``task.dataset`` section; ``processor`` a transformers
    image processor; ``mode`` the PIL mode the vision tower takes (``L`` or ``RGB``).
    """
    label_col, caption_col = cfg.get("label_column"), cfg.get("caption_column")
    if label_col is None and caption_col is None:
        raise DataError("give caption_column, label_column or both: every image needs a caption")
    source = cfg["source"]
    raw = load_raw(source, cfg.get("config_name"), BUILTIN_IMAGE_DATASETS)
    train, validation = split_train_validation(raw, cfg, seed, ("image_column", "caption_column", "label_column"))
    names = class_names(train, label_col) if label_col else None
    template = cfg.get("caption_template") or "{label}"
    base = Path(source).parent if os.path.isfile(source) else None
    captions: dict[str, int] = {}
    parts = []
    for ds, size, part_seed in (
        (train, cfg.get("train_size"), seed),
        (validation, cfg.get("validation_size"), seed + 1),
    ):
        ds = subset(ds, size, part_seed)
        labels = encode_labels(ds, label_col, names) if names else None
        if caption_col:
            texts = ["" if c is None else str(c) for c in values(ds, caption_col)]
        else:
            texts = [template.format(label=names[i]) for i in labels]
        ids = [captions.setdefault(t, len(captions)) for t in texts]
        pixels = _preprocess(_images(ds, cfg["image_column"], base), processor, mode)
        parts.append(
            Pairs(
                pixels,
                torch.tensor(ids, dtype=torch.long),
                None if labels is None else torch.tensor(labels, dtype=torch.long),
            )
        )
    class_captions = [template.format(label=n) for n in names] if names else None
    return ImageTextData(parts[0], parts[1], list(captions), names, class_captions)


def _images(ds, column: str, base: Path | None) -> list:
    """The column's images as PIL images: ``Image`` features, paths, bytes or arrays."""
    import datasets
    from PIL import Image

    feature = ds.features[column]
    if isinstance(feature, datasets.Image):
        return values(ds, column)
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        paths = [str(p) for p in values(ds, column)]
        if base is not None:
            paths = [p if os.path.isabs(p) else str(base / p) for p in paths]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise DataError(f"image_column={column!r}: {len(missing)} image files do not exist, e.g. {missing[0]!r}")
        return [Image.open(p) for p in paths]
    if isinstance(feature, (datasets.Array2D, datasets.Array3D, datasets.Sequence, datasets.List)):
        arrays = ds.with_format("numpy", columns=[column])[0 : len(ds)][column]  # one batch read, not row by row
        return [Image.fromarray(np.asarray(a, dtype=np.uint8)) for a in arrays]
    raise DataError(f"image_column={column!r} holds {feature!r}; accepted: images, image file paths, or uint8 arrays")


def _preprocess(images: list, processor, mode: str) -> torch.Tensor:
    from PIL import UnidentifiedImageError

    chunks = []
    for start in range(0, len(images), PREPROCESS_CHUNK):
        try:
            batch = [im.convert(mode) for im in images[start : start + PREPROCESS_CHUNK]]
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"an image cannot be read: {exc}") from None
        chunks.append(processor(batch, return_tensors="pt")["pixel_values"].to(torch.float16))
    return torch.cat(chunks)
