"""Checks that need the data and the model's shape, run before Ray starts.

The spec's own validation cannot see a missing column, a model path that does
not exist or parameter groups that match nothing; these checks load the data
and build the model's skeleton on the meta device (no weights, no memory) with
the same code the trials use, and turn any problem into a :class:`SpecError`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._distributions import upper
from .spec import SpecError, SweepSpec

# task type -> module exposing `Adapter` (a trainables.loop.Task) and `tune_trainable`
TASK_MODULES = {
    "text_classification": "trainables.text_classification",
    "image_text": "trainables.image_text",
}


def task_module(task_type: str):
    return importlib.import_module(TASK_MODULES[task_type])


def task_config(spec: SweepSpec) -> dict:
    """The spec's task section as the plain data a trainable reads."""
    return spec.task.model_dump(mode="json")


def check(spec: SweepSpec) -> Any:
    """Load the data and the model skeleton; raise :class:`SpecError` on a problem.

    Returns the task adapter (data loaded), for callers that want to inspect it.
    ``datasets``' progress bars stay off meanwhile: a problem reads as one message.
    """
    import datasets

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return _check(spec)
    finally:
        if shown:
            datasets.enable_progress_bars()


def _check(spec: SweepSpec) -> Any:
    from trainables.data import TaskError
    from trainables.loop import freeze_lowest_layers
    from trainables.param_groups import ParamGroupError, build_param_groups

    module = task_module(spec.task.type)
    try:
        adapter = module.Adapter(task_config(spec))
    except TaskError as exc:
        raise SpecError([(exc.field, str(exc))]) from None
    except OSError as exc:  # transformers: no such model folder or hub id
        raise SpecError([("task.model", f"cannot load {spec.task.model!r}: {exc}")]) from None
    try:
        model = adapter.model_skeleton()
    except TaskError as exc:
        raise SpecError([(exc.field, str(exc))]) from None
    except (OSError, ValueError) as exc:
        raise SpecError(
            [("task.model", f"cannot load {getattr(spec.task, 'model', spec.task.type)!r}: {exc}")]
        ) from None
    unavailable = getattr(adapter, "unavailable_metrics", ())  # a task's metrics that this data cannot give
    for i, (metric, _) in enumerate(spec.search.all_objectives):
        if metric in unavailable:
            where = "search.metric" if i == 0 else f"search.objectives[{i - 1}].metric"
            raise SpecError([(where, f"got '{metric}', which this dataset cannot give: {unavailable[metric]}")])
    try:
        build_param_groups(model, adapter.selectors(model))
    except ParamGroupError as exc:
        raise SpecError([("task.groups", str(exc))]) from None
    k = upper(spec.hyperparameters.frozen_layers)
    try:
        freeze_lowest_layers(model, adapter.layers(model), k)
    except ValueError as exc:
        raise SpecError([("hyperparameters.frozen_layers", str(exc))]) from None
    return adapter
