"""A task's data prepared once per sweep and handed to its trials: tokenized, in numpy arrays.

The service prepares the data once (the checks before a sweep load and tokenize it anyway), puts
it in Ray's object store, and :func:`provide` s it to each trial's process before the trial builds
its task. Numpy arrays come out of the object store without a copy (shared memory, on every node
that reads them), so a trial's start does not grow with the dataset and the trials of a node share
one copy of it. A task built without it (a trainable run on its own, a fold of cross-validation)
prepares its own, the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_PROVIDED: dict[str, Any] = {}


def key(task: Mapping) -> str:
    """What a prepared dataset is for: the task section a trial builds its task from."""
    return hashlib.sha256(json.dumps(task, sort_keys=True, default=str).encode()).hexdigest()


def provide(task: Mapping, data: Any) -> None:
    """``data`` is ``task``'s, prepared: the task built from ``task`` in this process takes it."""
    _PROVIDED[key(task)] = data


def provided(task: Mapping) -> Any | None:
    """The data prepared for ``task`` and provided to this process, or None."""
    return _PROVIDED.get(key(task))


@dataclass(frozen=True)
class Ragged:
    """Sequences of token ids end to end (``flat``), sequence ``i`` at ``flat[offsets[i]:offsets[i + 1]]``."""

    flat: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, sequences: Sequence[Sequence[int]]) -> Ragged:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class PreparedText:
    """A text classification task's data: the training and validation texts tokenized, their labels."""

    label_names: list[str]
    train_ids: Ragged
    train_labels: np.ndarray
    validation_ids: Ragged
    validation_labels: np.ndarray
    validation_texts: list[str]  # for error analysis and a logged model's input example
