"""The sweep's data, prepared once: shared in Ray's object store by the driver, provided to every process
that builds one of its trials' tasks (a trial, each worker of a data-parallel trial, the error analysis, the test
split's scoring, the packaging of the winner).

The checks before a sweep load, split and tokenize its data (or preprocess its images) with the
trials' own code (:func:`tune_service.validate.check_task`); :func:`prepare` adds the other sections of
the dataset the sweep will need while the data is at hand; :func:`share` hands that to the object
store, keyed by the task section a trial builds its task from (:func:`trainables.prepared.key`);
:func:`provide` hands it to the process that is about to build such a task, from any node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .spec import SweepSpec


def prepare(spec: SweepSpec, checked: list) -> list[dict[str, Any]]:
    """Each base model's prepared data, by the key of each task section it serves (:func:`sections`): read
    while the checks have the data at hand (``checked``: each task section checked, with the task built from it).

    The built task prepares the sections (its ``prepare``); its own section's data it has prepared already.
    """
    from trainables.api import prepared_key

    out = []
    for task, built in checked:
        more = sections(spec, task)
        out.append(built.prepare([task, *more]) if more else {prepared_key(task): built.prepared})
    return out


def share(data: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`prepare`'s data in the object store: each section's key names its base model's object."""
    import ray

    refs: dict[str, Any] = {}
    for sections_data in data:
        refs |= dict.fromkeys(sections_data, ray.put(sections_data))
    return refs


def sections(spec: SweepSpec, task: Mapping) -> list[dict]:
    """The other task sections that processes of the sweep build from ``task``'s dataset: each fold of
    cross-validation and the refit on every row with each fold's part as its validation, the test split's."""
    from trainables.api import every_row_task, fold_task, test_task

    out: list[dict] = []
    cv = spec.search.cross_validation
    if cv is not None:
        out += [fold_task(task, i) for i in range(cv.folds)]
        if cv.refit:
            out += [every_row_task(task, i) for i in range(cv.folds)]
    if spec.task.dataset.test_split is not None:
        out.append(test_task(task))
    return out


def provide(task: Mapping, config: Mapping, refs: Mapping) -> None:
    """Provide this process the data prepared for ``task`` with the base model ``config`` chose, and for the
    sections of its dataset prepared with it, if there is."""
    import ray

    from trainables.api import prepared_key, provide_all, provided, with_trial_model

    own = with_trial_model(task, config)
    ref = refs.get(prepared_key(own))
    if ref is not None and provided(own) is None:
        provide_all(ray.get(ref))
