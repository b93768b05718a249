"""The small door through which a trainable reports: metrics plus a checkpoint.

A trainable only ever calls :meth:`Reporter.report` and
:meth:`Reporter.latest_checkpoint`; it never imports the service, Ray Tune or
MLflow. :class:`TuneReporter` connects it to Ray Tune (imported lazily, inside
a trial); :class:`LocalReporter` runs it without Ray.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class Reporter(Protocol):
    def latest_checkpoint(self) -> contextlib.AbstractContextManager[str | None]:
        """A context yielding the folder of the checkpoint to resume from, or None."""

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        """Report one epoch's metrics with the folder of its checkpoint.

        The folder may be deleted once this returns: keep a copy if needed.
        ``checkpoint_dir`` is None on the ranks of a data-parallel trial other than 0.
        """


@contextlib.contextmanager
def checkpoint_dir(checkpoint) -> Iterator[str | None]:
    """A Ray ``Checkpoint`` (or None) as a local folder for the ``with`` block."""
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as path:
        yield path


class TuneReporter:
    """Reports to Ray Tune (``tune.report`` / ``tune.get_checkpoint``)."""

    def latest_checkpoint(self) -> contextlib.AbstractContextManager[str | None]:
        from ray import tune

        return checkpoint_dir(tune.get_checkpoint())

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        from ray import tune

        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None)


class LocalReporter:
    """Runs a trainable without Ray: prints metrics, keeps checkpoints in a folder.

    ``resume_from`` is a checkpoint folder to continue from. With ``out_dir``,
    each epoch's checkpoint is copied to ``out_dir/checkpoint_<epoch>``.
    """

    def __init__(self, out_dir: str | Path | None = None, resume_from: str | Path | None = None, stream=sys.stdout):
        self.out_dir = Path(out_dir) if out_dir else None
        self.resume_from = str(resume_from) if resume_from else None
        self.history: list[dict] = []
        self.checkpoints: list[Path] = []
        self.stream = stream

    @contextlib.contextmanager
    def latest_checkpoint(self) -> Iterator[str | None]:
        yield self.resume_from

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.history.append(dict(metrics))
        if self.stream is not None:
            print(json.dumps(metrics, sort_keys=True), file=self.stream, flush=True)
        if self.out_dir is not None and checkpoint_dir is not None:
            dest = self.out_dir / f"checkpoint_{int(metrics['epoch']):03d}"
            shutil.copytree(checkpoint_dir, dest, dirs_exist_ok=True)
            self.checkpoints.append(dest)
