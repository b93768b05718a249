"""The sweep's data, prepared once: put in Ray's object store by the driver, taken by every process that
builds one of its trials' tasks (a trial, the error analysis, the packaging of the winner).

The checks before a sweep load, split and tokenize its data (or preprocess its images) with the
trials' own code (:func:`tune_service.validate.check_task`); :func:`put` hands that to the object
store, keyed by the task section a trial builds its task from (:func:`trainables.prepared.key`);
:func:`take` provides it to the process that is about to build such a task, from any node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .spec import SweepSpec


def put(spec: SweepSpec, checked: list) -> dict[str, Any]:
    """Each trial task's prepared data (``checked``: the checks' tasks and adapters) in the object store.

    Not for a fold of cross-validation or a data-parallel trial, which prepare their own."""
    import ray

    from trainables import prepared

    if spec.search.cross_validation is not None or spec.resources.workers > 1:
        return {}
    return {prepared.key(task): ray.put(adapter.prepared) for task, adapter in checked if hasattr(adapter, "prepared")}


def take(task: Mapping, config: Mapping, refs: Mapping) -> None:
    """Provide this process the data prepared for ``task`` with the base model ``config`` chose, if there is."""
    import ray

    from trainables import prepared
    from trainables.config import with_trial_model

    own = with_trial_model(task, config)
    ref = refs.get(prepared.key(own))
    if ref is not None and prepared.provided(own) is None:
        prepared.provide(own, ray.get(ref))
