"""A finished Tune run as a :class:`SweepResult`: each trial's best epoch, the best trial, why the sweep ended.

Read from Tune's ``ResultGrid`` (each trial's result.json) and the trials' MLflow
runs; also each trial's history, for the report figures.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from search_spaces import unflatten_points
from trainables.api import CHECKPOINT_PATH

from .result import SweepResult, TrialHistory, TrialResult
from .spec import SweepSpec
from .tracking import numeric_metrics

log = logging.getLogger(__name__)

PBT_CONFIG = "config/"  # the prefix of result.json's config columns, one per setting


def summarize(grid, spec: SweepSpec, sweep_id: str, uri: str, tracker, storage: str, wall: float):
    """The :class:`SweepResult`, and each trial's history for the reports."""
    runs = tracker.child_runs()
    trials: list[TrialResult] = []
    histories: list[TrialHistory] = []
    unstarted = 0
    for r in grid:
        if r.config is None:  # created, but a budget ended the sweep before it ran: nothing to report
            unstarted += 1
            continue
        trial, history = _trial(r, spec, runs)
        trials.append(trial)
        if history is not None:
            histories.append(history)
    if unstarted:
        log.info("%d trials were created but never ran before the sweep ended", unstarted)
    return _result(spec, sweep_id, uri, tracker, storage, wall, trials), histories


def _best_checkpoint(checkpoints: list, metric: str, mode: str) -> str | None:
    """The folder of the best of a trial's ``(checkpoint, metrics)``; on a tie the later one."""
    sign = 1 if mode == "max" else -1
    scored = [(c, m) for c, m in checkpoints if m.get(metric) is not None]
    if not scored:
        return None
    best, _ = max(scored, key=lambda cm: (sign * cm[1][metric], cm[1].get("training_iteration", 0)))
    return best.path


def _trial(r, spec: SweepSpec, runs: dict) -> tuple[TrialResult, TrialHistory | None]:
    """One trial's result at its best epoch, and its history (None when it never reported the metric)."""
    metric, mode = spec.search.metric, spec.search.mode
    # the trial's folder is named by its id (trial_dirname_creator). Under PBT its last result is not
    # always its own: a trial restarted from another's final checkpoint ends without reporting, and
    # Tune keeps the donor's result (id and config) as its last.
    trial_id = Path(r.path).name
    config, df = r.config, r.metrics_dataframe
    steps = None if df is None else df.get("epoch", df.get("training_iteration"))  # each result's epoch
    best_row: dict[str, Any] = {}
    if df is not None and metric in df and df[metric].notna().any():
        latest_first = df[metric][::-1]  # on a tie the later epoch, as the writers and Tune's checkpoints rank
        idx = latest_first.idxmax() if mode == "max" else latest_first.idxmin()
        row = df.loc[idx].to_dict()
        best_row = numeric_metrics(row)
        if spec.search.scheduler == "pbt":  # the hyperparameters its best epoch trained with: PBT changes them
            config = _config_columns(row)
    ckpt_path = _best_checkpoint(r.best_checkpoints or [], metric, mode)
    if ckpt_path is None and best_row and CHECKPOINT_PATH in df:  # a multi-worker trial: Ray Train's
        ckpt_path = df.loc[idx, CHECKPOINT_PATH]
    trial = TrialResult(
        trial_id=trial_id,
        status="ERROR" if r.error else "TERMINATED",
        config=config,
        metrics={k: v for k, v in best_row.items() if not k.startswith(PBT_CONFIG)},
        # an epoch a retried trial trained again (its checkpoint not yet recorded) counts once
        epochs=0 if steps is None else int(steps.nunique()),
        checkpoint=ckpt_path,
        mlflow_run_id=runs[trial_id].info.run_id if trial_id in runs else None,
        error=None if r.error is None else f"{type(r.error).__name__}: {r.error}",
    )
    if not best_row:
        return trial, None
    curve = {int(e): float(v) for e, v in zip(steps, df[metric]) if v == v}
    values = [best_row.get(m) for m, _ in spec.search.all_objectives]
    return trial, TrialHistory(trial_id, config, values, curve)


def _config_columns(row: dict) -> dict:
    """The config a result row was trained with (a ``config/...`` column per setting; NaN where a null met numbers)."""
    point = {k.removeprefix(PBT_CONFIG).replace("/", "."): v for k, v in row.items() if k.startswith(PBT_CONFIG)}
    return unflatten_points([{k: None if v != v else v for k, v in point.items()}])[0]


def _result(spec, sweep_id, uri, tracker, storage, wall, trials: list[TrialResult]) -> SweepResult:
    metric, mode = spec.search.metric, spec.search.mode
    objectives = spec.search.all_objectives
    scored = [t for t in trials if metric in t.metrics]
    best = (max if mode == "max" else min)(scored, key=lambda t: t.metrics[metric]) if scored else None
    return SweepResult(
        name=spec.name,
        sweep_id=sweep_id,
        strategy=spec.search.strategy,
        metric=metric,
        mode=mode,
        best_trial_id=best.trial_id if best else None,
        best_config=best.config if best else None,
        best_metrics=best.metrics if best else {},
        best_checkpoint=best.checkpoint if best else None,
        tracking_uri=uri,
        experiment_id=tracker.experiment_id,
        parent_run_id=tracker.parent_run_id,
        best_run_id=best.mlflow_run_id if best else None,
        storage_path=f"{storage.rstrip('/')}/{sweep_id}",
        wall_time_s=wall,
        trials=trials,
        objectives=[list(o) for o in objectives],
        pareto_front=_front(trials, objectives),
        stopped_by=stopped_by(spec, sum(t.epochs for t in trials), wall),
    )


def _front(trials: list[TrialResult], objectives: list[tuple[str, str]]) -> list[str]:
    if len(objectives) == 1:
        return []
    points = {
        t.trial_id: [t.metrics[m] for m, _ in objectives] for t in trials if all(m in t.metrics for m, _ in objectives)
    }
    return pareto_front(points, [o for _, o in objectives])


def pareto_front(points: dict[str, list[float]], modes: list[str]) -> list[str]:
    """Ids of the non-dominated points (none other is at least as good on every objective and better on
    one), as Optuna's study finds its ``best_trials``; in the order given."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize" if m == "max" else "minimize" for m in modes])
    ids = list(points)
    study.add_trials([optuna.trial.create_trial(values=list(points[i])) for i in ids])
    return [ids[n] for n in sorted(t.number for t in study.best_trials)]


def stopped_by(spec: SweepSpec, epochs: int, wall: float) -> str | None:
    """The budget that ended the sweep before its trials did, if one did."""
    budget = spec.search.max_total_epochs
    if budget and epochs >= budget:
        return "max_total_epochs"
    if spec.search.time_budget_s and wall >= spec.search.time_budget_s:
        return "time_budget_s"
    return None
