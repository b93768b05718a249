"""The end of a sweep as its steps, run in order from :data:`STEPS`, each timed (see :mod:`tune_service.end`).

A step takes the :class:`EndState` and leaves in it what the steps after it need. A step
whose work is a record of the sweep (test scores, reports, the registered model, the error
analysis) logs a warning when it fails: the sweep's record is worth more than any one of them.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import search_spaces
from trainables.api import TASKS as TASK_MANIFESTS

from .. import console, summary, tracking
from ..result import SweepResult
from ..tracking import writers
from ..tuning import Sweep, train_again
from . import confirm, refit

log = logging.getLogger(__name__)


@dataclass
class EndState:
    """What the steps of a sweep's end share: given by the driver, then filled in step by step."""

    sweep: Sweep
    grid: Any  # Tune's ResultGrid
    tracker: tracking.SweepTracker
    wall: float  # seconds Tune's fit took
    verbose: int
    repeats: list | None = None  # confirm's trials (None: no search.confirm)
    result: SweepResult | None = None  # from the summary step on
    histories: list = dataclasses.field(default_factory=list)  # each trial's record, for the reports
    errors: Any = None  # the error analysis under way (its Ray task), from best_trials until error_analysis


def finish(state: EndState) -> SweepResult:
    """Every step of :data:`STEPS` in order, each one's seconds on the parent run; then the parent run ended."""
    laps, last = {}, time.perf_counter()
    for name, step in STEPS:
        step(state)
        now = time.perf_counter()
        laps[f"end/{name}_s"], last = round(now - last, 3), now
    result, sweep = state.result, state.sweep
    state.tracker.log_metrics(laps)
    state.tracker.finish_sweep(
        best_trial_id=result.best_trial_id,
        best_metrics=result.best_metrics,
        best_config=result.best_config,
        trials_table=console.trials_table(result, sweep.searched),
        pareto=console.pareto_record(result) if len(result.objectives) > 1 else None,
        stopped_by=result.stopped_by,
    )
    if state.verbose:
        print(console.summary(result, sweep.searched), file=sys.stdout, flush=True)
    return result


def confirm_finalists(state: EndState) -> None:
    """``search.confirm``: the finalists' configs trained again with new seeds, in a Tuner of their own."""
    sweep, spec = state.sweep, state.sweep.spec
    if not spec.search.confirm:
        return
    first, _ = summary.summarize(
        state.grid, spec, sweep.sweep_id, sweep.tracking_uri, state.tracker, sweep.storage, 0.0
    )
    points = confirm.configs(spec, first)
    state.repeats = []
    if not points:
        return
    if state.verbose:
        print(
            f"Confirming the {spec.search.confirm.top_k} best configs with {spec.search.confirm.seeds} new seeds "
            f"each: {len(points)} trials",
            flush=True,
        )
    space = confirm.param_space(points)
    state.repeats = train_again(sweep, state.tracker, space, "confirm", spec.trial_task(), state.verbose)


def land_writes(state: EndState) -> None:
    """The trials' last MLflow writes landed (or given up after ``mlflow.flush_timeout_s``), counted."""
    writes = writers.flush_writers(state.sweep.sweep_id, state.sweep.spec.mlflow.flush_timeout_s)
    state.tracker.log_metrics({f"tracking/{k}": v for k, v in writes.items()})
    if writes["failed"]:
        log.warning("MLflow refused %d trial writes (see the writers' Ray worker logs)", writes["failed"])


def summarize(state: EndState) -> None:
    """The result read from Tune's grid and the trials' runs; confirm's repeats joined to it."""
    sweep = state.sweep
    state.result, state.histories = summary.summarize(
        state.grid, sweep.spec, sweep.sweep_id, sweep.tracking_uri, state.tracker, sweep.storage, state.wall
    )
    if state.repeats is not None:
        confirm.merge(state.result, state.repeats, state.tracker)


def best_trials(state: EndState) -> None:
    """The winner refitted (``cross_validation.refit``), its error analysis started, the finalists tested."""
    spec = state.sweep.spec
    if spec.search.cross_validation is not None and spec.search.cross_validation.refit:
        _refit(state)
    state.errors = _start_error_analysis(state)  # its Ray task runs beside the steps after this one
    if spec.task.dataset.test_split is not None:
        from . import held_out

        try:
            held_out.score_on_test(spec, state.result, state.tracker, state.sweep.prepared)
        except Exception as exc:
            log.warning("the best trials were not scored on the test split: %s", exc)


def _refit(state: EndState) -> None:
    """The winner's config on every training row; its model becomes the best."""
    sweep, result = state.sweep, state.result
    point = refit.config(result)
    if point is None:
        return
    if state.verbose:
        print(
            f"Refitting the winner ({result.best_trial_id}) on every training row for {point['epochs']} epochs",
            flush=True,
        )
    ranked = dataclasses.replace(sweep, spec=refit.ranked_by_epoch(sweep.spec))
    space = confirm.param_space([point])
    (refitted,) = train_again(ranked, state.tracker, space, "refit", refit.task(sweep.spec, result), state.verbose)
    writers.flush_writers(sweep.sweep_id, sweep.spec.mlflow.flush_timeout_s)
    refitted.config = confirm.unwrapped(refitted.config)
    refit.adopt(result, refitted)


def _start_error_analysis(state: EndState):
    """The best trial's error analysis started (``mlflow.error_analysis``, a classifier's), or None."""
    from . import error_analysis

    spec = state.sweep.spec
    if not (spec.mlflow.error_analysis and TASK_MANIFESTS[spec.task.type].classifies):
        return None
    try:
        return error_analysis.start(spec, state.result, state.sweep.prepared)
    except Exception as exc:
        log.warning("no error analysis of the best trial: %s", exc)
        return None


def close_runs(state: EndState) -> None:
    """Each trial's MLflow run ended: FAILED for a trial that errored, else FINISHED."""
    statuses = {t.trial_id: "FAILED" if t.status == "ERROR" else "FINISHED" for t in state.result.trials}
    state.tracker.close_trial_runs(statuses)


def reports(state: EndState) -> None:
    """The report figures on the parent run (``mlflow.reports``)."""
    from . import figures

    if state.sweep.spec.mlflow.reports:
        try:
            state.tracker.log_figures(figures.figures(state.sweep.spec, state.histories))
        except Exception as exc:
            log.warning("reports not drawn: %s", exc)


def register(state: EndState) -> None:
    """The best checkpoint logged as an MLflow Model of its run, registered, and promoted if it earns it."""
    import ray

    from . import logged_model, registry

    sweep, result = state.sweep, state.result
    spec = sweep.spec
    if not (spec.mlflow.register_model and result.best_run_id):
        return
    tags = _version_tags(sweep, result)
    best = logged_model.winner(result)
    target = tracking.ModelTarget(
        tracking_uri=result.tracking_uri,
        experiment_id=result.experiment_id,
        run_id=result.best_run_id,
        step=best.epochs if best else 0,
        model_type=spec.task.type,
        tags=tags,
        credentials=ray.put(writers.credentials_from_env()),
    )
    try:
        result.model_id = logged_model.log_winner(spec, result, target, sweep.prepared)
        registry.publish(spec, result, state.tracker, result.model_id, tags)
    except Exception as exc:
        log.warning("best model not logged or registered: %s", exc)


def _version_tags(sweep: Sweep, result: SweepResult) -> dict[str, str]:
    """The registered version's tags: its searched settings, the sweep, its scores, what base an adapter needs."""
    from . import logged_model

    spec = sweep.spec
    flat = search_spaces.flatten(result.best_config or {})
    tags = {k: tracking.param_value(flat[k]) for k in sweep.searched if k in flat}
    tags |= {
        tracking.TAG_SWEEP_ID: result.sweep_id,
        tracking.TAG_TASK: spec.task.type,
        tracking.TAG_CONFIG: tracking.param_value(result.best_config),
        result.metric: str(result.best_value),
        **{k: str(v) for k, v in result.test_metrics.items()},  # scored on rows no trial saw
    }
    adapter = getattr(spec.task, "adapter", None)
    if adapter is not None:  # the version holds the adapter and what trained in full: it says which base it needs
        tags |= {tracking.TAG_ADAPTER: adapter.type, tracking.TAG_BASE_MODEL: logged_model.base_model(spec, result)}
    return tags


def log_error_analysis(state: EndState) -> None:
    """The error analysis's wait (what is left of it), then its tables and figure on the best trial's run."""
    from . import error_analysis

    if state.errors is None:
        return
    try:
        error_analysis.log(state.errors, state.tracker.client)
    except Exception as exc:
        log.warning("no error analysis of the best trial: %s", exc)


#: the end's steps, in the order they run; each one's time goes on the parent run as ``end/NAME_s``
STEPS: list[tuple[str, Callable[[EndState], None]]] = [
    ("confirm", confirm_finalists),
    ("writes", land_writes),
    ("summary", summarize),
    ("best_trials", best_trials),
    ("close_runs", close_runs),
    ("reports", reports),
    ("registry", register),
    ("error_analysis", log_error_analysis),
]
