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
    works inside ``where`` so that the checkpoints go away with it. The store's tables are made
    here, before the clock starts: MLflow makes them on a new store's first use (about
    6 s on the 2-core VM), once per store: a user's second sweep on ``mlflow.db`` does not pay it.
    """
    before = os.getcwd()
    os.chdir(where)
    try:
        uri = f"sqlite:///{Path(where).resolve() / 'mlflow.db'}"
        from mlflow.tracking import MlflowClient

        MlflowClient(uri).search_experiments()
        yield uri
    finally:
        os.chdir(before)
