"""Turn the spec's hyperparameters (values and distributions) into Tune's param_space."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray import tune

from tune_service._distributions import Distribution, upper

if TYPE_CHECKING:
    from tune_service.spec import Hyperparameters


def to_tune_domain(dist: Distribution, enumerate_choices: bool = False) -> Any:
    """The Tune domain for a distribution (``grid`` becomes ``tune.grid_search``).

    With ``enumerate_choices`` a ``choice`` is enumerated like a grid (grid search).
    """
    kind, args = dist.kind, dist.args
    if kind == "grid" or (kind == "choice" and enumerate_choices):
        return tune.grid_search(list(args))
    if kind == "choice":
        return tune.choice(list(args))
    if kind == "uniform":
        return tune.uniform(*args)
    if kind == "loguniform":
        return tune.loguniform(*args)
    if kind == "quniform":
        return tune.quniform(*args)
    if kind == "randint":
        return tune.randint(*args)
    raise ValueError(f"unknown distribution {kind!r}")


def param_space(hp: Hyperparameters, enumerate_choices: bool = False) -> dict:
    """Nested dict of fixed values and Tune domains, the shape the trainable reads."""
    from tune_service.spec import iter_hyperparameters

    space: dict = {}
    for path, value in iter_hyperparameters(hp):
        node = space
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = to_tune_domain(value, enumerate_choices) if isinstance(value, Distribution) else value
    return space


def max_epochs(hp: Hyperparameters) -> int:
    """The most epochs any trial can run (the top of a searched ``epochs``)."""
    return int(upper(hp.epochs))
