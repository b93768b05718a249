"""The sweep's data, prepared once: put in Ray's object store by the driver, taken by every process that
builds one of its trials' tasks (a trial, each worker of a data-parallel trial, the error analysis, the test
split's scoring, the packaging of the winner).

The checks before a sweep load, split and tokenize its data (or preprocess its images) with the
trials' own code (:func:`tune_service.validate.check_task`); :func:`prepare` adds the other sections of
the dataset the sweep will need while the data is at hand; :func:`put` hands that to the object
store, keyed by the task section a trial builds its task from (:func:`trainables.prepared.key`);
:func:`take` provides it to the process that is about to build such a task, from any node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .spec import SweepSpec


def prepare(spec: SweepSpec, checked: list) -> list[dict[str, Any]]:
    """Each base model's prepared data (``checked``: the checks' tasks and adapters), by the key of each
    task section it serves (:func:`sections`): read while the checks have the data at hand.

    The adapter prepares the sections (its ``prepare``); the checked task's own data it has prepared already.
    """
    from trainables import prepared

    out = []
    for task, adapter in checked:
        more = sections(spec, task)
        out.append(adapter.prepare([task, *more]) if more else {prepared.key(task): adapter.prepared})
    return out


def put(data: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`prepare`'s data in the object store: each section's key names its base model's object."""
    import ray

    refs: dict[str, Any] = {}
    for sections_data in data:
        refs |= dict.fromkeys(sections_data, ray.put(sections_data))
    return refs


def sections(spec: SweepSpec, task: Mapping) -> list[dict]:
    """The other task sections that processes of the sweep build from ``task``'s dataset: each fold of
    cross-validation and the refit on every row with each fold's part as its validation, the test split's."""
    from trainables.data import every_row_task, fold_task, test_task

    out: list[dict] = []
    cv = spec.search.cross_validation
    if cv is not None:
        out += [fold_task(task, i) for i in range(cv.folds)]
        if cv.refit:
            out += [every_row_task(task, i) for i in range(cv.folds)]
    if spec.task.dataset.test_split is not None:
        out.append(test_task(task))
    return out


def take(task: Mapping, config: Mapping, refs: Mapping) -> None:
    """Provide this process the data prepared for ``task`` with the base model ``config`` chose, and for the
    sections of its dataset prepared with it, if there is."""
    import ray

    from trainables import prepared
    from trainables.config import with_trial_model

    own = with_trial_model(task, config)
    ref = refs.get(prepared.key(own))
    if ref is not None and prepared.provided(own) is None:
        prepared.provide_all(ray.get(ref))
