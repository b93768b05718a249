"""The contract each strategy module keeps: a searcher ("what to try") or a scheduler ("when to stop").

Every strategy module defines one subclass of :class:`Searcher` or :class:`Scheduler`
and nothing the service calls besides it. Each has two methods, called at two
moments of a sweep, each given a :class:`~search_spaces._inputs.SearchInput` (the
service's validated spec, read and never changed):

1. ``problems(spec)``, from validation, once the spec has passed its schema and
   before anything runs (no Ray, no data, no MLflow): every reason this strategy
   cannot run this spec, as ``(field path, message)`` pairs. It never raises and
   never changes the spec; an empty list accepts it.
2. ``build(spec)``, from the driver, only for a spec that passed validation: the
   Ray Tune objects. It may import Ray; it does not refuse (that was ``problems``).

A searcher and a scheduler are kept apart, as Ray Tune keeps them; a pairing one
of them cannot work with is refused by that one's ``problems``.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ._distributions import Distribution
from ._hyperparameters import flatten, iter_hyperparameters, searched
from ._inputs import SearchInput

Problem = tuple[str, str]  # (the field's dotted path in the spec, what is wrong and what is accepted)

# More trials than this from enumerated values is a mistake (an axis too many), not a sweep.
MAX_GRID_TRIALS = 10_000


class Searcher(ABC):
    """What to try: the Tune search space and searcher for a spec's hyperparameters.

    The class attributes say what the searcher can do; :meth:`problems` refuses
    a spec that asks for more, then adds the searcher's own refusals
    (:meth:`own_problems`).
    """

    name: ClassVar[str]
    #: tries every value of every ``grid`` (and ``choice``) instead of drawing
    enumerates: ClassVar[bool] = False
    #: fits a model to the results so far: it draws every value, so it cannot enumerate a ``grid`` entry
    model_based: ClassVar[bool] = False
    #: draws through an Optuna sampler (``search.sampler``)
    takes_sampler: ClassVar[bool] = False
    #: learns from an earlier sweep's results (``search.warm_start``)
    warm_starts: ClassVar[bool] = False

    def problems(self, spec: SearchInput) -> list[Problem]:
        """Why this searcher cannot run ``spec``; called by validation before anything runs. Never raises."""
        return (
            self._entry_problems(spec)
            + self._setting_problems(spec)
            + grid_size_problems(spec, self.enumerates)
            + self._points_problems(spec)
            + self.own_problems(spec)
        )

    def own_problems(self, spec: SearchInput) -> list[Problem]:
        """This searcher's refusals beyond its flags (a missing package, one objective only, ...)."""
        return []

    @abstractmethod
    def build(self, spec: SearchInput, warm_trials: list | None = None) -> tuple[dict, Any]:
        """``(param_space, search_alg)`` for ``Tuner``; called by the driver for a validated spec.

        ``param_space`` has the trainable's config shape. The searcher applies
        ``search.max_concurrent_trials`` itself (Tune ignores TuneConfig's limit for a
        variant generator). ``warm_trials``, ``(dotted params, objective values)`` of
        earlier trials, comes only to a searcher that ``warm_starts``.
        """

    def _entry_problems(self, spec: SearchInput) -> list[Problem]:
        out = []
        for path, value in iter_hyperparameters(spec.hyperparameters):
            where = ".".join(("hyperparameters",) + path)
            if self.enumerates and isinstance(value, Distribution) and not value.is_finite:
                out.append(
                    (
                        where,
                        f"strategy '{self.name}' enumerates finite values, but this is {value.kind}: "
                        "write {grid: [...]} or use strategy 'random'",
                    )
                )
            if self.model_based and isinstance(value, Distribution) and value.kind == "grid":
                out.append(
                    (
                        where,
                        f"strategy '{self.name}' samples every value it tries, so it cannot enumerate "
                        "a grid: write {choice: [...]} or use strategy 'grid' or 'random'",
                    )
                )
        return out

    def _setting_problems(self, spec: SearchInput) -> list[Problem]:
        search, out = spec.search, []
        if search.sampler is not None and not self.takes_sampler:
            out.append(
                ("search.sampler", f"got '{search.sampler}', but only strategy 'bayesian' uses an Optuna sampler")
            )
        if search.startup_trials is not None and not self.takes_sampler:
            out.append(
                (
                    "search.startup_trials",
                    f"got {search.startup_trials}, but only strategy 'bayesian' has start-up trials to set",
                )
            )
        if search.warm_start is not None and not self.warm_starts:
            out.append(
                (
                    "search.warm_start",
                    f"strategy '{self.name}' does not learn from earlier results: warm "
                    "start needs strategy 'bayesian' (or use points_to_evaluate to try given configurations "
                    "first)",
                )
            )
        return out

    def _points_problems(self, spec: SearchInput) -> list[Problem]:
        points = spec.search.points_to_evaluate
        if not points:
            return []
        if self.enumerates:
            return [
                (
                    "search.points_to_evaluate",
                    f"strategy '{self.name}' tries every point anyway: drop points_to_evaluate",
                )
            ]
        return points_problems(points, searched(spec.hyperparameters))


def points_problems(points: list[dict], space: dict[str, Distribution]) -> list[Problem]:
    """Each value of each point to evaluate must name a searched hyperparameter and lie in its distribution."""
    out = []
    for i, point in enumerate(points):
        for name, value in flatten(point).items():
            where = f"search.points_to_evaluate[{i}].{name}"
            dist = space.get(name)
            if dist is None:
                close = difflib.get_close_matches(name, list(space), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                out.append((where, f"not a searched hyperparameter{hint}; searched: {', '.join(space)}"))
            elif not dist.contains(value):
                accepted = (
                    f"one of {list(dist.values)}" if dist.is_finite else f"a number in [{dist.args[0]}, {dist.upper()}]"
                )
                out.append((where, f"got {value!r}; accepted: {accepted}"))
    return out


def grid_size_problems(spec: SearchInput, enumerates_choices: bool) -> list[Problem]:
    """Tune runs every point of a grid (times num_samples): refuse a grid that explodes."""
    enumerated = ("grid", "choice") if enumerates_choices else ("grid",)
    axes = [
        (".".join(path), len(value.values))
        for path, value in iter_hyperparameters(spec.hyperparameters)
        if isinstance(value, Distribution) and value.kind in enumerated
    ]
    total = spec.search.num_samples
    for _, n in axes:
        total *= n
    if total <= MAX_GRID_TRIALS:
        return []
    shape = " x ".join(f"{n} ({name})" for name, n in axes)
    return [
        (
            "hyperparameters",
            f"the grid makes {total:,} trials ({shape} x num_samples {spec.search.num_samples}); "
            f"at most {MAX_GRID_TRIALS:,}: fewer values, or search the widest axes with strategy random or bayesian",
        )
    ]


class Scheduler(ABC):
    """When to stop: the Tune trial scheduler that ends (or, for PBT, re-seeds) trials by their results."""

    name: ClassVar[str]

    def problems(self, spec: SearchInput) -> list[Problem]:
        """Why this scheduler cannot run ``spec`` (a searcher or a setting it cannot work with); called by
        validation before anything runs. Never raises."""
        return []

    @abstractmethod
    def build(self, spec: SearchInput) -> Any:
        """The Tune ``TrialScheduler`` for a validated spec, or None for Tune's FIFO (every trial runs to the end)."""
