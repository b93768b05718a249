"""Loading a sweep's best model back from MLflow."""

from __future__ import annotations

import tempfile
from typing import Any, Optional

from .result import SweepResult


def load_best(
    source: SweepResult | str,
    *,
    version: Optional[str] = None,
    tracking_uri: Optional[str] = None,
    dst: Optional[str] = None,
) -> tuple[Any, Any]:
    """The best checkpoint of a sweep as a ready ``(model, tokenizer)`` (eval mode), fetched from MLflow.

    ``source`` is one of:

    - a :class:`SweepResult` (its registered version, else its best run);
    - a registered model name (the sweep's ``name``), with ``version`` or the latest;
    - ``"models:/NAME/VERSION"``;
    - a run id: a sweep's parent run (its best trial) or a trial's run (its best checkpoint).

    The files are downloaded through the tracking server (``dst``, else a temporary folder).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from . import tracking
    from .preflight import task_module
    from .streaming import TAG_BEST_CHECKPOINT

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
    client = MlflowClient(tracking_uri=uri)
    dst = dst or tempfile.mkdtemp(prefix="tune-service-best-")

    name = None
    if source.startswith("models:/"):
        name, _, version = source[len("models:/") :].partition("/")
        version = version or None
    else:
        try:
            client.get_registered_model(source)
            name = source
        except MlflowException:
            pass
    if name is not None:
        if version is None:
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise ValueError(f"registered model {name!r} has no versions at {uri}")
            version = str(max(int(v.version) for v in versions))
        mv = client.get_model_version(name, version)
        task = mv.tags.get("tune_service.task", "text_classification")
        import mlflow.artifacts

        path = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=dst, tracking_uri=uri)
        return task_module(task).load_pretrained(path)

    try:
        run = client.get_run(source)
    except MlflowException:
        raise ValueError(f"{source!r} is neither a registered model nor a run at {uri}") from None
    best = run.data.tags.get(tracking.TAG_BEST_RUN)
    if best:  # a sweep's parent run
        run = client.get_run(best)
    checkpoint = run.data.tags.get(TAG_BEST_CHECKPOINT)
    if checkpoint is None:
        raise ValueError(f"run {run.info.run_id} has no checkpoint in MLflow (mlflow.log_checkpoints off?)")
    task = run.data.tags.get("tune_service.task", "text_classification")
    path = client.download_artifacts(run.info.run_id, checkpoint, dst)
    return task_module(task).load_pretrained(path)
