"""The winner as an MLflow Model: its best checkpoint packaged as a pyfunc model, logged to its run.

Built in a Ray task with a trial's resources, on a node that can read the checkpoint from Tune's
storage: the task's own code picks an input example from the validation rows and MLflow infers the
signature by loading the packaged model and predicting on it, so a model that logs is a model that
loads. The model is the output of the winner's run (MLflow's logged models), and the registry's
versions point at it (:mod:`.registry`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from trainables.api import build_task, with_trial_model

from .. import tracking
from ..result import SweepResult, TrialResult
from ..spec import SweepSpec


def winner(result: SweepResult) -> TrialResult | None:
    """The sweep's best trial, when it has a checkpoint to package."""
    return next((t for t in result.trials if t.trial_id == result.best_trial_id and t.checkpoint), None)


def log_winner(spec: SweepSpec, result: SweepResult, target: tracking.ModelTarget, prepared: Mapping) -> str:
    """Package the best trial's best checkpoint and log it to its run; returns the logged model's id.

    ``prepared``: the sweep's prepared data (:mod:`trainables.prepared`), for the input example."""
    import ray

    best = winner(result)
    if best is None:
        raise ValueError(f"sweep {result.sweep_id} has no best trial with a checkpoint to log")
    task = spec.trial_task()  # the example: the first validation rows (under cross-validation, fold 0's part)
    remote = ray.remote(_package).options(num_cpus=spec.resources.cpu, num_gpus=spec.resources.gpu)
    base = base_model(spec, result)
    return ray.get(remote.remote(spec.task.type, task, best.config, best.checkpoint, target, base, dict(prepared)))


def base_model(spec: SweepSpec, result: SweepResult) -> str | None:
    """The base model the winner's adapter goes on, as the spec names it (the one it chose, where the sweep
    searches it); None without an adapter."""
    if getattr(spec.task, "adapter", None) is None:
        return None
    return (result.best_config or {}).get("model") or spec.task.base_model


def _package(
    task_type: str,
    task: Mapping,
    config: Mapping,
    checkpoint: str,
    target: tracking.ModelTarget,
    base: str | None,
    prepared: Mapping,
) -> str:
    from ray.train import Checkpoint

    from trainables.api import MODEL_DIR, quiet_transformers, save_served_model, served_requirements

    from .. import prepared_data

    quiet_transformers()
    prepared_data.provide(task, config, prepared)
    example = build_task(task_type, with_trial_model(task, config)).serving_example()
    builtin_base = base is not None and base.startswith("builtin:")
    requirements = served_requirements(task_type, adapter=base is not None, builtin_base=builtin_base)
    with Checkpoint(checkpoint).as_directory() as folder:
        model_dir = os.path.join(folder, MODEL_DIR)
        return tracking.log_model(
            target,
            lambda path, described: save_served_model(path, model_dir, task_type, example, requirements, described),
        )
