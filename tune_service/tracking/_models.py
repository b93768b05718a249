"""MLflow Models: a run's logged model (MLflow 3's ``LoggedModel``), and its versions' aliases.

A sweep's winner is logged as a model of its trial's run, so the runs table's Model column links
run and model; the registered version's source is that logged model, so ``models:/NAME@ALIAS``
loads with ``mlflow.pyfunc.load_model`` and serves with ``mlflow models serve``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOGGED_MODEL_NAME = "model"


@dataclass(frozen=True)
class ModelTarget:
    """Where a logged model goes: the run it is the output of, at which step (epoch)."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    step: int
    model_type: str  # the task
    tags: Mapping[str, str] = field(default_factory=dict)
    credentials: Any = None  # an ObjectRef to a writers.Secret, for a secured server from any node


def log_model(target: ModelTarget, save: Callable[[str, Any], None]) -> str:
    """Log a model as ``target.run_id``'s output; ``save(path, mlflow_model)`` writes its folder. Returns its id.

    The logged model is created first (its id goes into the ``MLmodel`` file), its files uploaded
    through the tracking server, then it is marked READY (FAILED, and the error raised, if any step fails).
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    if target.credentials is not None:
        import ray

        os.environ.update(ray.get(target.credentials).reveal())
    client = MlflowClient(tracking_uri=target.tracking_uri)
    logged = client.create_logged_model(
        target.experiment_id,
        name=LOGGED_MODEL_NAME,
        source_run_id=target.run_id,
        tags=dict(target.tags),
        model_type=target.model_type,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="tune-service-model-") as tmp:
            path = os.path.join(tmp, LOGGED_MODEL_NAME)
            described = Model(
                artifact_path=logged.artifact_location,
                run_id=target.run_id,
                model_id=logged.model_id,
                model_uuid=logged.model_id,
            )
            save(path, described)
            for cache in Path(path).rglob("__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)
            client.log_model_artifacts(logged.model_id, path)
        client.log_outputs(target.run_id, [LoggedModelOutput(logged.model_id, step=target.step)])
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.model_id
