"""When a sweep's new version takes the alias champion (``mlflow.promote``), and what it is judged by."""

from __future__ import annotations

import pytest

from tune_service.end.registry import Score, decide, score, version_tags
from tune_service.result import SweepResult
from tune_service.validate import load_spec


def tags_of(value: float, name: str = "test_accuracy", data: str = "test:abc") -> dict:
    return version_tags(Score(name, value, data))


NEW = Score("test_accuracy", 0.80, "test:abc")


@pytest.mark.parametrize(
    "promote,mode,champion,moves,why",
    [
        ("auto", "max", None, True, "there was no champion"),
        ("auto", "max", ("3", tags_of(0.75)), True, "test_accuracy 0.8 beats champion version 3's 0.75"),
        ("auto", "max", ("3", tags_of(0.85)), False, "test_accuracy 0.8 does not beat champion version 3's 0.85"),
        ("auto", "max", ("3", tags_of(0.80)), False, "does not beat"),  # a tie keeps the champion
        ("auto", "min", ("3", tags_of(0.85)), True, "beats"),  # a loss: lower is better
        ("auto", "max", ("3", tags_of(0.5, data="test:other")), False, "not comparable"),
        ("auto", "max", ("3", tags_of(0.5, name="val_accuracy")), False, "not comparable"),
        ("auto", "max", ("3", {}), False, "not comparable"),  # a version registered before scores were recorded
        ("always", "max", ("3", tags_of(0.99)), True, "mlflow.promote is always"),
        ("never", "max", None, False, "mlflow.promote is never"),
    ],
)
def test_the_champion_moves_only_when_the_new_version_beats_it_on_the_same_data(promote, mode, champion, moves, why):
    version, tags = champion or (None, {})
    promotion = decide(promote, mode, NEW, version, tags)
    assert promotion.promoted is moves
    assert why in promotion.reason


def result_of(spec, **fields) -> SweepResult:
    base = dict(name=spec.name, sweep_id="s", strategy="random", metric="val_accuracy", mode="max",
                best_trial_id="t", best_config={}, best_metrics={"val_accuracy": 0.9}, best_checkpoint=None,
                tracking_uri="", experiment_id="", parent_run_id="", best_run_id="r", storage_path="",
                wall_time_s=0)  # fmt: skip
    return SweepResult(**(base | fields))


def test_a_sweep_with_a_test_split_is_judged_on_it_and_the_data_names_the_rows(make_spec):
    plain = load_spec(make_spec())
    held_out = load_spec(make_spec(**{"task.dataset.test_split": 0.2}))
    other_seed = load_spec(make_spec(**{"task.dataset.test_split": 0.2, "task.dataset.seed": 7}))

    on_validation = score(plain, result_of(plain))
    assert (on_validation.name, on_validation.value) == ("val_accuracy", 0.9)
    assert on_validation.data.startswith("validation:")
    on_test = score(held_out, result_of(held_out, test_metrics={"test_accuracy": 0.7}))
    assert (on_test.name, on_test.value) == ("test_accuracy", 0.7) and on_test.data.startswith("test:")
    # the same test rows give the same name; rows drawn with another seed do not
    assert score(held_out, result_of(held_out, test_metrics={"test_accuracy": 0.6})).data == on_test.data
    assert score(other_seed, result_of(other_seed, test_metrics={"test_accuracy": 0.7})).data != on_test.data
    # a sweep whose test scoring failed has nothing to be judged by
    assert score(held_out, result_of(held_out)) is None
