"""Loading a sweep's best model back from MLflow."""

from __future__ import annotations

import tempfile
from typing import Any, Optional

from trainables.api import task_module

from . import tracking
from .result import SweepResult


def load_best(
    source: SweepResult | str,
    *,
    version: Optional[str] = None,
    tracking_uri: Optional[str] = None,
    dst: Optional[str] = None,
    merge: bool = False,
) -> tuple[Any, Any]:
    """The best checkpoint of a sweep as a ready ``(model, tokenizer)`` (eval mode), fetched from MLflow.

    ``source`` is one of:

    - a :class:`SweepResult` (its registered version, else its best run);
    - a registered model name (the sweep's ``name``), with ``version`` or the latest;
    - ``"models:/NAME/VERSION"``;
    - a run id: a sweep's parent run (its best trial) or a trial's run (its best checkpoint).

    The files are downloaded through the tracking server (``dst``, else a temporary folder).
    A LoRA sweep's model is its base with the adapter loaded (a peft ``PeftModel``); ``merge=True``
    folds the adapter into the base weights, for a plain transformers model that serves as fast as
    the base. Without an adapter ``merge`` changes nothing.
    """
    if isinstance(source, SweepResult):
        uri = tracking_uri or source.tracking_uri
        if source.model_version:
            source, version = source.name, source.model_version
        elif source.best_run_id:
            source = source.best_run_id
        else:
            raise ValueError(f"sweep {source.sweep_id} has no best trial to load")
    else:
        uri = tracking.resolve_tracking_uri(tracking_uri, None)
    task, path = tracking.download_best(source, version, uri, dst or tempfile.mkdtemp(prefix="tune-service-best-"))
    return task_module(task).load_pretrained(path, merge=merge)
