"""The winner in the Model Registry: a new version with the alias ``challenger``, ``champion`` when it earns it.

A version records the score it is judged by (``tune_service.score``: the sweep's metric on the test
split when the sweep has one, else on the validation rows) and which data that score was measured
on (``tune_service.scored_on``). Under ``mlflow.promote: auto`` the new version takes ``champion``
when there is none yet, or when it beats the champion's score measured on the same data; scores on
different data are not compared, and the champion stays. ``always`` moves the alias; ``never``
leaves it. The parent run says what happened and why (``tune_service.promotion``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..result import SweepResult, test_name
from ..spec import SweepSpec
from ..tracking import TAG_PROMOTION, TAG_SCORE, TAG_SCORE_NAME, TAG_SCORED_ON

CHALLENGER, CHAMPION = "challenger", "champion"


@dataclass(frozen=True)
class Score:
    name: str  # test_accuracy, or val_accuracy without a test split
    value: float
    data: str  # which rows: the split and a digest of what selects them


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str


def score(spec: SweepSpec, result: SweepResult) -> Score | None:
    """What the winner is judged by: its test score when the sweep has a test split, else its validation score."""
    dataset = spec.task.dataset
    if dataset.test_split is not None:
        name = test_name(result.metric)
        value = result.test_metrics.get(name)
        keys = ("source", "config_name", "test_split", "seed")
    else:
        name, value = result.metric, result.best_value
        keys = ("source", "config_name", "train_split", "validation_split", "validation_size", "seed")
    if value is None:
        return None
    chosen = {k: getattr(dataset, k, None) for k in keys}
    digest = hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Score(name, float(value), f"{'test' if dataset.test_split is not None else 'validation'}:{digest}")


def version_tags(judged: Score | None) -> dict[str, str]:
    if judged is None:
        return {}
    return {TAG_SCORE_NAME: judged.name, TAG_SCORE: repr(judged.value), TAG_SCORED_ON: judged.data}


def decide(promote: str, mode: str, new: Score | None, champion_version: str | None, champion_tags: dict) -> Promotion:
    """Whether the new version takes ``champion`` from ``champion_version`` (tagged ``champion_tags``)."""
    if promote == "never":
        return Promotion(False, "mlflow.promote is never")
    if promote == "always":
        return Promotion(True, "mlflow.promote is always")
    if champion_version is None:
        return Promotion(True, "there was no champion")
    if new is None:
        return Promotion(False, "this sweep's winner has no score to compare")
    old_name, old_data = champion_tags.get(TAG_SCORE_NAME), champion_tags.get(TAG_SCORED_ON)
    if old_name != new.name or old_data != new.data:
        scored = f"champion version {champion_version} was scored as {old_name} on {old_data}"
        return Promotion(False, f"{scored}, this one as {new.name} on {new.data}: not comparable (always moves it)")
    old = float(champion_tags[TAG_SCORE])
    better = new.value > old if mode == "max" else new.value < old
    verb = "beats" if better else "does not beat"
    return Promotion(better, f"{new.name} {new.value:.4g} {verb} champion version {champion_version}'s {old:.4g}")


def publish(spec: SweepSpec, result: SweepResult, tracker, model_id: str, tags: dict[str, str]) -> Promotion:
    """Register the logged model as a new version (alias ``challenger``), and move ``champion`` if it earns it."""
    judged = score(spec, result)
    description = f"best of sweep {result.sweep_id}: {result.metric}={result.best_value:.4g}"
    version = tracker.register_best(spec.name, model_id, tags | version_tags(judged), description)
    result.model_version = version
    tracker.set_alias(spec.name, CHALLENGER, version)
    champion = tracker.version_by_alias(spec.name, CHAMPION)
    held = None if champion is None else (champion.version, dict(champion.tags))
    promotion = decide(spec.mlflow.promote, result.mode, judged, *(held or (None, {})))
    if promotion.promoted:
        tracker.set_alias(spec.name, CHAMPION, version)
    outcome = f"version {version} is {CHAMPION if promotion.promoted else CHALLENGER}: {promotion.reason}"
    tracker.tag_sweep(TAG_PROMOTION, outcome)
    result.promotion = outcome
    return promotion
