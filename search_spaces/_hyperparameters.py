"""The hyperparameters a trial is configured by: their choices, which depends on which, their names.

The bottom of the vocabulary with :mod:`search_spaces._distributions`: it imports
nothing of the service. The spec's schema takes its choices from here, the
strategies read the dependencies and the flat names, and MLflow params and
points to evaluate use the same dotted names (``groups.encoder.lr``).

A trial's config is nested (``{"groups": {"encoder": {"lr": ...}}, "batch_size": ...}``);
its flat name joins the path with dots, or with :data:`SEP` where a searcher
(Optuna, ConfigSpace) names its parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._distributions import Distribution, Relative
from ._inputs import Hyperparameters

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
LR_SCHEDULERS = ("constant", "linear", "cosine", "step", "exponential", "inverse_time")
# Group settings that only apply under some values of another setting of the group (a conditional space):
# setting -> (the setting it depends on, the values under which it applies).
CONDITIONS = {
    "momentum": ("optimizer", ("sgd", "rmsprop")),
    "beta1": ("optimizer", ("adam", "adamw")),
    "beta2": ("optimizer", ("adam", "adamw")),
    "gamma": ("scheduler", ("step", "exponential")),
    "step_epochs": ("scheduler", ("step",)),
    "decay": ("scheduler", ("inverse_time",)),
}
SEP = "/"  # Ray Tune's, Optuna's and ConfigSpace's flat-name separator (groups/encoder/lr)
# Sections of trial-wide settings, absent (None) when the sweep does not use them: an adapter's rank, scale, dropout.
SECTIONS = ("adapter",)
# Trial-wide settings absent (None) unless the sweep sets them: the base model, when task.model is searched.
OPTIONAL = ("model",)


def iter_hyperparameters(hp: Hyperparameters) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Yield ``(path, value)`` for every hyperparameter, groups first.

    ``hp`` is the spec's hyperparameters (a model with ``groups``, each group a
    model too; fields in declaration order). ``path`` is relative to it
    (``("groups", "encoder", "lr")``); ``value`` is a fixed value or a
    :class:`Distribution`. A derived value yields its two parts
    (``(..., "lr", "relative_to")`` and ``(..., "lr", "ratio")``); a section's settings
    their own paths (``("adapter", "r")``), an absent section nothing.
    """
    for gname, group in hp.groups.items():
        for field in type(group).model_fields:
            value = getattr(group, field)
            if isinstance(value, Relative):
                yield ("groups", gname, field, "relative_to"), value.relative_to
                yield ("groups", gname, field, "ratio"), value.ratio
            else:
                yield ("groups", gname, field), value
    for field in type(hp).model_fields:
        value = getattr(hp, field)
        if field == "groups" or (field in SECTIONS + OPTIONAL and value is None):
            continue
        if field in SECTIONS:
            yield from (((field, sub), getattr(value, sub)) for sub in type(value).model_fields)
        else:
            yield (field,), value


def searched(hp: Hyperparameters) -> dict[str, Distribution]:
    """The searched hyperparameters by dotted name (``groups.encoder.lr``)."""
    return {".".join(path): v for path, v in iter_hyperparameters(hp) if isinstance(v, Distribution)}


def condition(path: tuple) -> tuple[str, tuple] | None:
    """``(controlling setting, values under which it applies)`` for a conditional group setting."""
    if len(path) == 3 and path[0] == "groups":
        return CONDITIONS.get(path[2])
    return None


def flatten(config: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested config or point as ``{dotted.name: value}``; a point already dotted stays as it is."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def set_path(tree: dict, path: tuple, value: Any) -> None:
    """``tree[path[0]][path[1]]... = value``, making the levels on the way."""
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def unflatten_points(points: list[Mapping]) -> list[dict]:
    """Points (dotted or nested) in the config's nested shape."""
    out = []
    for point in points:
        tree: dict = {}
        for name, value in flatten(point).items():
            set_path(tree, tuple(name.split(".")), value)
        out.append(tree)
    return out


def searcher_names(point: Mapping) -> dict[str, Any]:
    """A point (dotted or nested) with the flat names a searcher uses (``groups/encoder/lr``)."""
    return {k.replace(".", SEP): v for k, v in flatten(point).items()}
