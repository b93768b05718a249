"""The finalists trained again with new seeds; the winner by the mean (``search.confirm``).

Fine-tuning's score moves with the seed, so the best of many trials is partly the luckiest. After
the search, the ``top_k`` best configs each train again with ``seeds`` new seeds (the config's seed
plus 1, 2, ...), as trials of the same sweep with their own MLflow runs, each tagged with the trial
whose config it repeats (``tune_service.confirms``). The winner is the finalist whose repeats
score best on average; its own trial stays the registered model.
"""

from __future__ import annotations

import copy
import statistics

from ..result import SweepResult, TrialResult
from ..spec import SweepSpec
from ..tracking import CONFIRMS
from . import finalists

POINT = "finalist"  # the confirmation Tuner's one grid axis: each value a whole config


def configs(spec: SweepSpec, first: SweepResult) -> list[dict]:
    """Each finalist's config once per new seed, naming the finalist."""
    out = []
    for trial in finalists.ranked(first, spec.search.confirm.top_k, with_checkpoint=False):
        for j in range(1, spec.search.confirm.seeds + 1):
            config = copy.deepcopy(trial.config)
            config["seed"] = int(config.get("seed") or 0) + j
            config[CONFIRMS] = trial.trial_id
            out.append(config)
    return out


def param_space(points: list[dict]) -> dict:
    from ray import tune

    return {POINT: tune.grid_search(points)}


def unwrapped(config: dict) -> dict:
    """A trial's config: a confirmation trial's own, out of the grid axis it came in."""
    return config.get(POINT, config)


def merge(result: SweepResult, repeats: list[TrialResult], tracker) -> None:
    """The repeats joined to ``result``: each finalist's mean and spread, the winner by the mean."""
    metric = result.metric
    by_origin: dict[str, list[TrialResult]] = {}
    for trial in repeats:
        trial.config = unwrapped(trial.config)
        by_origin.setdefault(str(trial.config.get(CONFIRMS)), []).append(trial)
    result.trials += repeats
    for origin, runs in by_origin.items():
        values = [t.metrics[metric] for t in runs if metric in t.metrics]
        result.confirmed[origin] = {
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values,
            "trial_ids": [t.trial_id for t in runs],
        }
        run_id = next((t.mlflow_run_id for t in result.trials if t.trial_id == origin), None)
        if values and run_id:
            stats = result.confirmed[origin]
            tracker.log_run_metrics(
                run_id, {f"confirm_mean_{metric}": stats["mean"], f"confirm_std_{metric}": stats["std"]}
            )
    scored = {o: c["mean"] for o, c in result.confirmed.items() if c["mean"] is not None}
    if scored:
        winner = (max if result.mode == "max" else min)(scored, key=scored.get)
        _make_best(result, next(t for t in result.trials if t.trial_id == winner))


def _make_best(result: SweepResult, trial: TrialResult) -> None:
    result.best_trial_id = trial.trial_id
    result.best_config = trial.config
    result.best_metrics = trial.metrics
    result.best_checkpoint = trial.checkpoint
    result.best_run_id = trial.mlflow_run_id
