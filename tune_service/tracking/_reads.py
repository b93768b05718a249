"""Reading earlier sweeps back from MLflow: warm start's trials, a sweep's spec, its best model's files."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._names import (
    PARENT_RUN,
    SPEC_FILE,
    TAG_BEST_CHECKPOINT,
    TAG_BEST_RUN,
    TAG_SWEEP_ID,
    TAG_TASK,
    TAG_TRIAL_ID,
    param_from,
)


class WarmStartError(ValueError):
    """An earlier sweep to warm-start from cannot be read."""


def earlier_trials(
    tracking_uri: str,
    *,
    experiment: str | None,
    parent_run_id: str | None,
    accepts: Mapping[str, Any],
    objectives: list[tuple[str, str]],
) -> tuple[list[tuple[dict, list[float]]], int]:
    """The finished trials of an earlier sweep: ``([(params, objective values)], skipped)``.

    ``accepts`` maps each searched name (``groups.encoder.lr``) to a predicate
    telling whether a value lies in this sweep's space; a trial whose values do
    not all fit, or which lacks an objective, is skipped. An objective's value
    is the trial's last reported one, as Ray Tune tells its searcher.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if parent_run_id is not None:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException:
            raise WarmStartError(f"parent_run_id {parent_run_id!r}: no such run at {tracking_uri}") from None
        experiment_ids = [parent.info.experiment_id]
        query = f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'FINISHED'"
    else:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise WarmStartError(f"experiment {experiment!r}: no such experiment at {tracking_uri}")
        experiment_ids = [exp.experiment_id]
        query = "attributes.status = 'FINISHED'"
    runs = client.search_runs(experiment_ids, filter_string=query, max_results=10_000)
    trials, skipped = [], 0
    for run in runs:
        if TAG_TRIAL_ID not in run.data.tags:
            continue  # a sweep's parent run
        params = {k: param_from(v) for k, v in run.data.params.items()}
        point = {k: params[k] for k in accepts if params.get(k) is not None}
        values = [run.data.metrics.get(m) for m, _ in objectives]
        missing = [k for k in accepts if k not in params]
        if missing or any(v is None for v in values) or not all(accepts[k](v) for k, v in point.items()):
            skipped += 1
            continue
        trials.append((point, values))
    if not trials:
        where = f"parent run {parent_run_id}" if parent_run_id else f"experiment {experiment!r}"
        raise WarmStartError(
            f"{where} has no finished trial over this sweep's searched hyperparameters "
            f"({', '.join(accepts)}) reporting {', '.join(m for m, _ in objectives)} ({skipped} skipped)"
        )
    return trials, skipped


def find_sweep(tracking_uri: str, sweep_id: str):
    """The parent run of sweep ``sweep_id`` in any experiment; :class:`SweepNotFound` when there is none."""
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///") and not os.path.exists(tracking_uri.removeprefix("sqlite:///")):
        raise SweepNotFound(f"no MLflow store at {tracking_uri}: give the --tracking-uri the sweep ran with")
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = []
    for i in range(0, len(experiments), 100):
        runs += client.search_runs(experiments[i : i + 100], filter_string=f"tags.`{TAG_SWEEP_ID}` = '{sweep_id}'")
    parents = [r for r in runs if PARENT_RUN not in r.data.tags]
    if not parents:
        raise SweepNotFound(
            f"no sweep {sweep_id!r} in the MLflow store at {tracking_uri}: give the sweep id a run printed "
            "(its parent run's tune_service.sweep_id tag) and the same --tracking-uri"
        )
    return parents[0]


class SweepNotFound(LookupError):
    """No sweep by that id where tune-service looked (the MLflow store, Tune's storage)."""


def sweep_spec(tracking_uri: str, sweep_id: str) -> tuple[str, str]:
    """``(parent run id, spec YAML)`` of sweep ``sweep_id``, as its parent run recorded them."""
    import tempfile
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    parent = find_sweep(tracking_uri, sweep_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = MlflowClient(tracking_uri=tracking_uri).download_artifacts(parent.info.run_id, SPEC_FILE, tmp)
        return parent.info.run_id, Path(path).read_text(encoding="utf-8")


def download_best(source: str, version: str | None, tracking_uri: str, dst: str) -> tuple[str, str]:
    """``(task type, local folder)`` of a best checkpoint's model, downloaded through the tracking server into ``dst``.

    ``source`` is a registered model name (``version``, else its latest), ``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS``, a sweep's parent run id (its best trial) or a trial's run id (its best checkpoint).
    A registered version is a logged MLflow Model: its checkpoint folder is the model's artifact ``model``.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    name = alias = None
    if source.startswith("models:/"):
        name, _, version = source[len("models:/") :].partition("/")
        name, _, alias = name.partition("@")
        version = version or None
    else:
        try:
            client.get_registered_model(source)
            name = source
        except MlflowException:
            pass
    if name is not None:
        mv = client.get_model_version_by_alias(name, alias) if alias else _version(client, name, version, tracking_uri)
        return _download_version(mv, tracking_uri, dst)
    try:
        run = client.get_run(source)
    except MlflowException:
        raise ValueError(f"{source!r} is neither a registered model nor a run at {tracking_uri}") from None
    best = run.data.tags.get(TAG_BEST_RUN)
    if best:  # a sweep's parent run
        run = client.get_run(best)
    checkpoint = run.data.tags.get(TAG_BEST_CHECKPOINT)
    if checkpoint is None:
        raise ValueError(f"run {run.info.run_id} has no checkpoint in MLflow (mlflow.log_checkpoints off?)")
    task = run.data.tags.get(TAG_TASK, "text_classification")
    return task, client.download_artifacts(run.info.run_id, checkpoint, dst)


def _version(client, name: str, version: str | None, tracking_uri: str):
    if version is None:
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            raise ValueError(f"registered model {name!r} has no versions at {tracking_uri}")
        version = str(max(int(v.version) for v in versions))
    return client.get_model_version(name, version)


def _download_version(mv, tracking_uri: str, dst: str) -> tuple[str, str]:
    """A version's checkpoint folder: the logged model's artifact ``model`` (an earlier version: its source)."""
    import mlflow.artifacts

    from trainables.api import MODEL_ARTIFACT

    task = mv.tags.get(TAG_TASK, "text_classification")
    folder = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=dst, tracking_uri=tracking_uri)
    packaged = os.path.join(folder, "artifacts", MODEL_ARTIFACT)
    return task, packaged if os.path.exists(os.path.join(folder, "MLmodel")) else folder
