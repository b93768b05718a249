"""What the bench scripts share."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def local_store(where: Path) -> Iterator[str]:
    """A SQLite MLflow store in ``where``, with its artifacts there too.

    MLflow puts a SQLite store's artifacts in ``./mlruns`` of the working directory; the bench
    works inside ``where`` so that the checkpoints go away with it.
    """
    before = os.getcwd()
    os.chdir(where)
    try:
        yield f"sqlite:///{Path(where).resolve() / 'mlflow.db'}"
    finally:
        os.chdir(before)
