"""What the bench scripts share."""

from __future__ import annotations

import contextlib
import json
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


def kept_runs(path: Path | None, bench: str, same: dict) -> list[dict]:
    """The runs of ``bench`` kept in the JSON-lines file ``path`` under the settings ``same``: a long
    benchmark's runs spread over several invocations, each adding the runs it lacks."""
    if path is None or not path.exists():
        return []
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in runs if r.get("bench") == bench and all(r.get(k) == v for k, v in same.items())]


def keep_run(path: Path | None, run: dict) -> None:
    """``run`` printed as a JSON line, and added to ``path`` when given."""
    print(json.dumps(run), flush=True)
    if path is not None:
        with path.open("a") as out:
            out.write(json.dumps(run) + "\n")
