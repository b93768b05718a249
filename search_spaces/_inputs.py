"""What a strategy reads: the input of the search contract, defined here, in the strategies' own terms.

The service's spec (``tune_service.spec.SweepSpec``) is one such input; the strategies
know it only by these shapes, so ``search_spaces`` imports nothing of the service. A
section is read as a pydantic model is: its settings are attributes, named in declaration
order by its class's ``model_fields``. Every value is fixed, a
:class:`~search_spaces.Distribution` (searched), or for a group's rate a
:class:`~search_spaces.Relative` (derived). Strategies read their input and never change it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Optional, Protocol


class Section(Protocol):
    """Settings read as attributes; their class's ``model_fields`` names them in declaration order."""

    model_fields: ClassVar[Mapping[str, Any]]


class Hyperparameters(Section, Protocol):
    """Every setting a trial is configured by: each parameter group's (``groups``), then the trial-wide ones."""

    groups: Mapping[str, Section]
    epochs: Any  # a fixed count or a distribution: schedulers size their rungs by its largest value


class Objective(Protocol):
    metric: str
    mode: str  # "max" or "min"


class SearchSettings(Protocol):
    """The search section: which searcher and scheduler, their options, the objectives and the trial count."""

    strategy: str
    scheduler: str
    sampler: Optional[str]
    startup_trials: Optional[int]
    grace_period: int
    reduction_factor: float
    perturbation_interval: int
    metric: str
    mode: str
    objectives: Sequence[Objective]
    num_samples: int
    max_concurrent_trials: Optional[int]
    points_to_evaluate: Sequence[Mapping[str, Any]]
    warm_start: Any  # None unless the searcher is to learn from an earlier sweep
    center_first: bool
    seed: int

    @property
    def all_objectives(self) -> list[tuple[str, str]]:
        """``(metric, mode)`` of every objective, ``metric`` first."""


class TrialResources(Protocol):
    workers: int  # training workers per trial (PBT continues a trial in one process)


class SearchInput(Protocol):
    """What :func:`search_spaces.problems` and :func:`search_spaces.build` take."""

    hyperparameters: Hyperparameters
    search: SearchSettings
    resources: TrialResources
