"""Work on the best trials' checkpoints after the search, in Ray tasks with a trial's resources."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..result import SweepResult, TrialResult
from ..spec import SweepSpec
from ..tracking import CONFIRMS, REFITS


def ranked(result: SweepResult, k: int, with_checkpoint: bool = True, repeats: bool = True) -> list[TrialResult]:
    """The ``k`` best trials (with a checkpoint, unless told otherwise; the repeats of ``search.confirm``
    too, unless told otherwise) by the sweep's metric. A refit, validated on rows it trained on, never is."""
    skip = {REFITS} if repeats else {REFITS, CONFIRMS}
    pool = [t for t in result.trials if not skip & set(t.config)]
    scored = [t for t in pool if (t.checkpoint or not with_checkpoint) and result.metric in t.metrics]
    return sorted(scored, key=lambda t: t.metrics[result.metric], reverse=result.mode == "max")[:k]


def on_checkpoints(
    spec: SweepSpec, trials: list[TrialResult], task: Mapping, job: str, prepared: Mapping | None = None
) -> list:
    """``job`` (``evaluate`` or ``predictions``, a task's method) on each trial's best checkpoint's model.

    ``prepared``: the sweep's prepared data (:mod:`trainables.prepared`), taken where ``task`` is a trial's."""
    import ray

    return ray.get(submit(spec, trials, task, job, prepared))


def submit(
    spec: SweepSpec, trials: list[TrialResult], task: Mapping, job: str, prepared: Mapping | None = None
) -> list:
    """:func:`on_checkpoints` started, not waited for: the Ray object refs of its answers, in ``trials``' order."""
    import ray

    run = {
        "metric": spec.search.metric,
        "mode": spec.search.mode,
        "num_threads": max(1, int(spec.resources.cpu)),
        "precision": spec.resources.precision,
    }
    remote = ray.remote(_on_checkpoint).options(num_cpus=spec.resources.cpu, num_gpus=spec.resources.gpu)
    given = dict(prepared or {})
    return [remote.remote(job, spec.task.type, task, t.config, t.checkpoint, run, given) for t in trials]


def _on_checkpoint(
    job: str, task_type: str, task: Mapping, config: Mapping, checkpoint: str, run: Mapping, prepared: Mapping
):
    from ray.train import Checkpoint

    from trainables.api import MODEL_DIR, build_task, checkpoint_model, quiet_transformers, with_trial_model

    from .. import prepared_data

    quiet_transformers()
    prepared_data.provide(task, config, prepared)
    built = build_task(task_type, with_trial_model(task, config))
    with Checkpoint(checkpoint).as_directory() as folder:
        model = checkpoint_model(built, config, os.path.join(folder, MODEL_DIR), run)
    return getattr(built, job)(model)
