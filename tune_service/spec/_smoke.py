"""The smoke test's transform: the same sweep, shrunk to run end to end in a couple of minutes."""

from __future__ import annotations

from search_spaces import CONDITIONS
from trainables.api import TASKS as TASK_MANIFESTS

from ._loader import parse_spec
from ._sweep import SweepSpec

SMOKE_TRIALS = 2


def smoke_spec(spec: SweepSpec) -> SweepSpec:
    """The same sweep, shrunk to run end to end in a couple of minutes.

    Same code path: at most :data:`SMOKE_TRIALS` trials of one epoch on the
    task's smoke subsets (and, with ``search.confirm``, the best config once
    more; with ``search.cross_validation``, two folds). A grid keeps two
    points: the first two values of its first axis, the first value of every
    other axis. Checked against the schema;
    :func:`tune_service.validate.load_spec` checks the rest.
    """
    data = spec.to_dict()
    hp = data["hyperparameters"]
    hp["epochs"] = 1
    enumerated = ("grid", "choice") if spec.search.strategy == "grid" else ("grid",)
    grids_kept = 0

    def shrink(node: dict) -> None:
        nonlocal grids_kept
        for key, value in node.items():
            if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in enumerated:
                kind, values = next(iter(value.items()))
                node[key] = {kind: values[: SMOKE_TRIALS if grids_kept == 0 else 1]}
                grids_kept += 1
            elif isinstance(value, dict):
                shrink(value)

    shrink(hp)
    # a searched setting whose controlling grid lost the values it applies to is fixed instead
    for group in hp["groups"].values():
        for field, (parent, applies) in CONDITIONS.items():
            value, ctrl = group.get(field), group.get(parent)
            options = next(iter(ctrl.values())) if isinstance(ctrl, dict) else [ctrl]
            if isinstance(value, dict) and len(value) == 1 and not set(options) & set(applies):
                kind, args = next(iter(value.items()))
                group[field] = args[0]
    ds = data["task"]["dataset"]
    sizes = TASK_MANIFESTS[spec.task.type]
    ds["train_size"] = min(ds["train_size"] or sizes.smoke_train_size, sizes.smoke_train_size)
    ds["validation_size"] = min(ds["validation_size"] or sizes.smoke_validation_size, sizes.smoke_validation_size)
    search = data["search"]
    # Ray Tune repeats the whole grid num_samples times: with a grid, once is enough.
    search["num_samples"] = 1 if grids_kept else SMOKE_TRIALS
    search["time_budget_s"] = None
    if search.get("confirm"):  # the best config once more, with one new seed
        search["confirm"] = {"top_k": 1, "seeds": 1}
    search["test_top_k"] = 1  # the winner alone scored on the test split
    if search.get("cross_validation"):  # two folds: the same path at twice a trial's cost, not K times
        search["cross_validation"]["folds"] = 2
        ds["validation_size"] = None  # each fold validates on its half of the train_size rows
    if spec.search.scheduler == "pbt":  # one exploit/explore step
        hp["epochs"], search["perturbation_interval"] = 2, 1
    data["name"] = f"{spec.name}-smoke"[:100]
    return parse_spec(data)
