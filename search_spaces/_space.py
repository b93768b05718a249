"""The spec's hyperparameters (values and distributions) as Tune and Optuna spaces.

A trial's config always has the trainable's shape (``groups.encoder.lr``,
``batch_size``, ...). A conditional setting (``momentum`` when the group's
optimizer is SGD; see :data:`~search_spaces._hyperparameters.CONDITIONS`) that does not apply to
a trial is ``None`` in its config. Three ways to build the space, one per kind
of searcher:

- :func:`param_space`: Tune domains in the config, for Tune's variant generator
  (grid, random, PBT); a conditional setting is drawn after what it depends on.
- :func:`grid_space`: as above, but a group with a conditional setting is one
  grid over the group's valid combinations (no point differs only in a setting
  that does not apply).
- :class:`DefineByRun`: an Optuna define-by-run function, for searchers that
  own their space (bayesian); :func:`constants` is then the param_space.
"""

from __future__ import annotations

import itertools
from typing import Any

from ._distributions import Distribution, upper
from ._hyperparameters import (
    CONDITIONS,
    SEP,
    condition,
    iter_hyperparameters,
    searched,
    searcher_names,
    set_path,
)
from ._inputs import Hyperparameters, SearchInput


def to_tune_domain(dist: Distribution, enumerate_choices: bool = False) -> Any:
    """The Tune domain for a distribution (``grid`` becomes ``tune.grid_search``).

    With ``enumerate_choices`` a ``choice`` is enumerated like a grid (grid search).
    """
    from ray import tune

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


def is_conditional(hp: Hyperparameters, path: tuple) -> bool:
    """A searched setting whose controlling field is searched too (so it applies to some trials only)."""
    cond = condition(path)
    if cond is None:
        return False
    group = hp.groups[path[1]]
    return isinstance(getattr(group, path[2]), Distribution) and isinstance(getattr(group, cond[0]), Distribution)


def constants(hp: Hyperparameters) -> dict:
    """The fixed part of the config; a searched conditional setting is ``None`` until suggested."""
    tree: dict = {}
    for path, value in iter_hyperparameters(hp):
        if not isinstance(value, Distribution):
            set_path(tree, path, value)
        elif is_conditional(hp, path):
            set_path(tree, path, None)
    return tree


def conditional_domain(path: tuple, dist: Distribution):
    """A Tune domain drawing ``dist`` when the controlling field applies, else ``None``.

    Drawn from Tune's own seeded random state (saved and restored with the
    variant generator), after the controlling field is resolved.
    """
    from ray.tune.search.sample import Domain

    inner = to_tune_domain(dist)
    field, applies = condition(path)

    class Conditional(Domain):
        def sample(self, config=None, size=1, random_state=None):
            spec = config[0] if isinstance(config, list) else config
            trial_config = spec["config"] if "config" in spec else spec  # Tune passes the trial spec
            if trial_config["groups"][path[1]][field] not in applies:  # unresolved yet: Tune retries later
                return None
            return inner.sample(config, size=size, random_state=random_state)

        def is_valid(self, value):
            return value is None or inner.is_valid(value)

        @property
        def domain_str(self):
            return f"{inner.domain_str} if {field} in {list(applies)}"

    return Conditional()


def param_space(hp: Hyperparameters, enumerate_choices: bool = False) -> dict:
    """Nested dict of fixed values and Tune domains, the shape the trainable reads."""

    space: dict = {}
    for path, value in iter_hyperparameters(hp):
        if isinstance(value, Distribution) and is_conditional(hp, path):
            value = conditional_domain(path, value)
        elif isinstance(value, Distribution):
            value = to_tune_domain(value, enumerate_choices)
        set_path(space, path, value)
    return space


def grid_space(hp: Hyperparameters) -> dict:
    """The grid: every value of every grid or choice crossed; conditional groups as one joint grid each."""
    from ray import tune

    space = param_space(hp, enumerate_choices=True)
    for gname in hp.groups:
        if not any(is_conditional(hp, ("groups", gname, f)) for f in CONDITIONS):
            continue
        fields = {path[-1]: v for path, v in iter_hyperparameters(hp) if path[:2] == ("groups", gname)}
        axes = {f: v.values for f, v in fields.items() if isinstance(v, Distribution)}
        points = []
        for combo in itertools.product(*axes.values()):
            point = {
                f: (fields[f] if not isinstance(fields[f], Distribution) else dict(zip(axes, combo))[f]) for f in fields
            }
            for f, (parent, applies) in CONDITIONS.items():
                if f in axes and point[parent] not in applies:
                    point[f] = None
            if point not in points:
                points.append(point)
        space["groups"][gname] = tune.grid_search(points)
    return space


def _suggest(trial, name: str, dist: Distribution) -> Any:
    kind, args = dist.kind, dist.args
    if kind == "uniform":
        return trial.suggest_float(name, args[0], args[1])
    if kind == "loguniform":
        return trial.suggest_float(name, args[0], args[1], log=True)
    if kind == "quniform":
        return trial.suggest_float(name, args[0], args[1], step=args[2])
    if kind == "randint":
        return trial.suggest_int(name, args[0], args[1] - 1)
    if kind in ("choice", "grid"):  # a grid is only ever told to a study (the sweep's reports), never sampled
        return trial.suggest_categorical(name, list(args))
    raise ValueError(f"{kind} cannot be sampled by Optuna")


class DefineByRun:
    """Optuna define-by-run space: a conditional setting is suggested only where it applies.

    Picklable (a plain object), as Ray's OptunaSearch pickles its space when it saves.
    """

    def __init__(self, hp: Hyperparameters):
        entries = [(p, v) for p, v in iter_hyperparameters(hp) if isinstance(v, Distribution)]
        # controlling fields (optimizer, scheduler) before the settings that depend on them
        self.entries = sorted(entries, key=lambda e: condition(e[0]) is not None)
        self.fixed = {p: v for p, v in iter_hyperparameters(hp) if not isinstance(v, Distribution)}

    def __call__(self, trial) -> dict | None:
        chosen: dict = {}
        for path, dist in self.entries:
            cond = condition(path)
            if cond is not None:
                parent = path[:2] + (cond[0],)
                if chosen.get(parent, self.fixed.get(parent)) not in cond[1]:
                    continue  # stays None (from constants)
            chosen[path] = _suggest(trial, SEP.join(path), dist)
        return None


def mutable(hp: Hyperparameters) -> dict[tuple, Distribution]:
    """Searched continuous settings that apply to every trial: what PBT may perturb."""
    return {
        path: v
        for path, v in iter_hyperparameters(hp)
        if isinstance(v, Distribution)
        and v.kind in ("uniform", "loguniform", "quniform")
        and not is_conditional(hp, path)
    }


def max_epochs(hp: Hyperparameters) -> int:
    """The most epochs any trial can run (the top of a searched ``epochs``)."""
    return int(upper(hp.epochs))


def center_point(hp: Hyperparameters) -> dict[str, Any]:
    """The middle of every searched range (:meth:`Distribution.center`), by dotted name.

    A conditional setting that does not apply at the middle of what it depends on is left out.
    """
    point = {}
    for path, value in iter_hyperparameters(hp):
        if not isinstance(value, Distribution):
            continue
        cond = condition(path)
        if cond is not None:
            parent = getattr(hp.groups[path[1]], cond[0])
            if (parent.center() if isinstance(parent, Distribution) else parent) not in cond[1]:
                continue
        point[".".join(path)] = value.center()
    return point


def start_points(spec: SearchInput, warm: bool = False) -> list[dict]:
    """The points a searcher tries first: ``points_to_evaluate``, else the space's center (``center_first``).

    No center after a warm start (the searcher has results to go on), over a space with a grid
    (Tune crosses the grid with each point), nor for Optuna's QMC sampler, whose Sobol sequence
    runs the center among its first points (the third suggestion) and would repeat it.
    """
    search = spec.search
    if search.points_to_evaluate:
        return list(search.points_to_evaluate)
    space = searched(spec.hyperparameters)
    qmc = search.sampler == "qmc"  # a sampler is accepted with strategy bayesian alone
    if not search.center_first or warm or qmc or not space or any(d.kind == "grid" for d in space.values()):
        return []
    return [center_point(spec.hyperparameters)]


def searcher_points(points: list[dict]) -> list[dict] | None:
    """Points to evaluate with flat names (``groups/encoder/lr``), as Optuna and ConfigSpace name them."""
    return [searcher_names(p) for p in points] or None


def limited(searcher, spec):
    """The searcher behind Tune's ConcurrencyLimiter when ``search.max_concurrent_trials`` is set."""
    from ray.tune.search import ConcurrencyLimiter

    limit = spec.search.max_concurrent_trials
    return ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher
