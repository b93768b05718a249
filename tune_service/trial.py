"""The function Ray Tune runs for each trial: the task's trainable, streaming to MLflow."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from . import prepared_data
from .tracking.writers import MlflowReporter, TrialTracking


def trainable(
    config: dict,
    *,
    task_type: str,
    task: Mapping,
    run: Mapping,
    tracking: TrialTracking | None,
    parallel: Mapping | None = None,
    prepared: Mapping | None = None,
) -> None:
    """Train one trial; with ``tracking``, each epoch and checkpoint also goes to the trial's MLflow run.

    ``parallel`` (``workers`` > 1, ``resources_per_worker``, ``storage_path``,
    ``keep_checkpoints``) trains the trial data-parallel under Ray Train, rank 0
    streaming to MLflow. ``prepared`` maps a trial task's key (:func:`trainables.prepared.key`) to its
    data in Ray's object store, prepared once for the sweep: the trial's task takes it from there.
    """
    from ray import tune

    from trainables.api import TuneReporter, task_module

    from .console import trial_label
    from .end.confirm import unwrapped

    config = unwrapped(config)  # a search.confirm trial's config comes as its grid axis's value
    prepared_data.provide(task, config, prepared or {})
    module = task_module(task_type)
    label = "" if tracking is None else trial_label(config, tracking.searched)
    if parallel is not None and parallel["workers"] > 1:
        from trainables.api import fit_data_parallel

        trial_id = tune.get_context().get_trial_id()
        make = None
        if tracking is not None:
            make = functools.partial(_streaming, tracking, dict(config), label, trial_id)
        fit_data_parallel(
            module.tune_trainable,
            config,
            task,
            run,
            workers=int(parallel["workers"]),
            resources_per_worker=parallel["resources_per_worker"],
            storage_path=parallel["storage_path"],
            name=f"{trial_id}-train",
            make_reporter=make,
            keep_checkpoints=int(parallel["keep_checkpoints"]),
            setup=functools.partial(prepared_data.provide, task, config, prepared or {}),
        )
        return
    reporter = TuneReporter()
    if tracking is not None:
        reporter = MlflowReporter(tracking, reporter, config, label)
    module.tune_trainable(config, task, run, reporter)


def _streaming(tracking: TrialTracking, config: dict, label: str, trial_id: str, inner) -> MlflowReporter:
    """Rank 0's reporter in a data-parallel trial: MLflow first, then Ray Train."""
    return MlflowReporter(tracking, inner, config, label, trial_id=trial_id)
