"""A task's data prepared once per sweep and handed to its trials: tokenized, in numpy arrays.

The service prepares the data once (the checks before a sweep load and tokenize it anyway), puts
it in Ray's object store, and :func:`provide` s it to each trial's process before the trial builds
its task. Numpy arrays come out of the object store without a copy (shared memory, on every node
that reads them), so a trial's start does not grow with the dataset and the trials of a node share
one copy of it. A task built without it (a trainable run on its own) prepares its own, the same way.

One dataset serves several task sections (the folds of cross-validation, a refit on every training
row, the test split's scoring): their data is prepared together, each text tokenized once, and each
section's rows are a :meth:`Ragged.select` of the one pool of token ids.
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


def provide_all(data: Mapping[str, Any]) -> None:
    """Each task section's prepared data, by its :func:`key`, for the tasks built in this process."""
    _PROVIDED.update(data)


def provided(task: Mapping) -> Any | None:
    """The data prepared for ``task`` and provided to this process, or None."""
    return _PROVIDED.get(key(task))


@dataclass(frozen=True)
class Ragged:
    """Sequences of token ids end to end (``flat``), sequence ``j`` at ``flat[offsets[j]:offsets[j + 1]]``.

    With ``rows``, a selection of them that shares their arrays: sequence ``i`` is sequence ``rows[i]``.
    """

    flat: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray | None = None

    @classmethod
    def of(cls, sequences: Sequence[Sequence[int]]) -> Ragged:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)

    def select(self, rows: Sequence[int] | np.ndarray) -> Ragged:
        """Sequences ``rows`` (in that order), sharing this one's arrays."""
        rows = np.asarray(rows, dtype=np.int64)
        return Ragged(self.flat, self.offsets, rows if self.rows is None else self.rows[rows])

    def __len__(self) -> int:
        return len(self.offsets) - 1 if self.rows is None else len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        j = i if self.rows is None else self.rows[i]
        return self.flat[self.offsets[j] : self.offsets[j + 1]]

    def lengths(self) -> np.ndarray:
        lengths = np.diff(self.offsets)
        return lengths if self.rows is None else lengths[self.rows]


@dataclass(frozen=True)
class PreparedText:
    """A text classification task's data: the training and validation texts tokenized, their labels."""

    label_names: list[str]
    train_ids: Ragged
    train_labels: np.ndarray
    validation_ids: Ragged
    validation_labels: np.ndarray
    validation_texts: list[str]  # for error analysis and a logged model's input example
