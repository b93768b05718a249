"""Distributions -> Ray Tune domains, and each strategy's search plan."""

from __future__ import annotations

import copy
import pickle

import pytest
from ray.tune.schedulers import (
    ASHAScheduler,
    HyperBandForBOHB,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
)
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.bohb import TuneBOHB
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Float, Integer

import search_spaces
from search_spaces import Distribution, param_space, to_tune_domain
from tune_service import SpecError, load_spec

BASE = {
    "name": "s",
    "task": {"type": "text_classification"},
    "hyperparameters": {
        "groups": {
            "encoder": {"lr": {"loguniform": [1e-5, 1e-3]}, "optimizer": {"choice": ["adamw", "sgd"]}},
            "head": {"lr": {"uniform": [1e-4, 1e-2]}},
        },
        "batch_size": {"grid": [16, 32]},
        "frozen_layers": {"randint": [0, 3]},
        "dropout": {"quniform": [0.0, 0.3, 0.1]},
    },
}


@pytest.mark.parametrize(
    "dist,cls,check",
    [
        (Distribution("uniform", (0.1, 0.5)), Float, lambda d: (d.lower, d.upper) == (0.1, 0.5)),
        (Distribution("loguniform", (1e-5, 1e-2)), Float, lambda d: type(d.get_sampler()).__name__ == "_LogUniform"),
        (Distribution("quniform", (0.0, 1.0, 0.25)), Float, lambda d: d.get_sampler().q == 0.25),
        (Distribution("randint", (1, 4)), Integer, lambda d: (d.lower, d.upper) == (1, 4)),
        (Distribution("choice", ("a", "b")), Categorical, lambda d: d.categories == ["a", "b"]),
    ],
)
def test_distribution_becomes_its_tune_domain(dist, cls, check):
    domain = to_tune_domain(dist)
    assert isinstance(domain, cls)
    assert check(domain)
    samples = domain.sample(size=200, random_state=0)
    if dist.kind in ("uniform", "loguniform", "quniform", "randint"):
        low, high = dist.args[:2]
        assert all(low <= s <= high for s in samples)
        if dist.kind == "randint":
            assert set(samples) == {1, 2, 3}  # high exclusive
        if dist.kind == "quniform":
            assert all(abs(s / 0.25 - round(s / 0.25)) < 1e-9 for s in samples)
    else:
        assert set(samples) == {"a", "b"}


def test_grid_becomes_grid_search_and_choice_is_enumerated_only_for_grid():
    assert to_tune_domain(Distribution("grid", (1, 2))) == {"grid_search": [1, 2]}
    assert to_tune_domain(Distribution("choice", (1, 2)), enumerate_choices=True) == {"grid_search": [1, 2]}
    assert isinstance(to_tune_domain(Distribution("choice", (1, 2))), Categorical)


def test_param_space_has_the_trainable_config_shape():
    spec = load_spec(BASE)
    space = param_space(spec.hyperparameters)
    assert set(space["groups"]) == {"encoder", "head"}
    assert isinstance(space["groups"]["encoder"]["lr"], Float)
    assert space["groups"]["head"]["optimizer"] == "adamw"  # fixed values stay plain
    assert space["batch_size"] == {"grid_search": [16, 32]}
    assert space["epochs"] == 1 and space["seed"] == 0


PAIRS = [(st, sc) for st in sorted(search_spaces.SEARCHERS) for sc in sorted(search_spaces.SCHEDULERS)]
# pairings refused at validation, and a word of the reason
REFUSED_PAIRS = {
    ("grid", "pbt"): "a grid enumerates fixed points",
    ("bayesian", "pbt"): "model-based searcher",
    ("bohb", "pbt"): "model-based searcher",
    **{("bohb", sc): "fit across Hyperband brackets" for sc in ("fifo", "asha", "median")},
    **{(st, "hyperband"): "would never fill" for st in ("grid", "random", "bayesian")},
}
SEARCH_ALGS = {
    "grid": BasicVariantGenerator,
    "random": BasicVariantGenerator,
    "bayesian": OptunaSearch,
    "bohb": TuneBOHB,
}
SCHEDULER_TYPES = {
    "fifo": type(None),
    "asha": ASHAScheduler,
    "hyperband": HyperBandScheduler,
    "median": MedianStoppingRule,
    "pbt": PopulationBasedTraining,
}


@pytest.mark.parametrize("folds", [None, 3], ids=["", "cross-validated"])
@pytest.mark.parametrize("strategy,scheduler", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_every_strategy_and_scheduler_pair_builds_a_plan_or_is_refused_with_the_reason(strategy, scheduler, folds):
    """... with cross-validation too: a trial reports its folds' mean each epoch, as any trial reports its score."""
    spec = copy.deepcopy(BASE)
    if strategy == "grid":
        spec["hyperparameters"]["groups"]["encoder"]["lr"] = {"grid": [1e-5, 1e-4]}
        spec["hyperparameters"]["groups"]["head"]["lr"] = 1e-3
        spec["hyperparameters"]["frozen_layers"] = {"choice": [0, 1]}
        spec["hyperparameters"]["dropout"] = 0.1
    if strategy in ("bayesian", "bohb"):
        spec["hyperparameters"]["batch_size"] = {"choice": [16, 32]}
    spec["hyperparameters"]["epochs"] = 6 if scheduler == "pbt" else {"choice": [2, 6]}
    spec["search"] = {"strategy": strategy, "scheduler": scheduler, "max_concurrent_trials": 3, "seed": 7}
    if folds:
        spec["search"]["cross_validation"] = {"folds": folds, "refit": True}
    if (strategy, scheduler) in REFUSED_PAIRS:
        with pytest.raises(SpecError) as info:
            load_spec(spec)
        assert REFUSED_PAIRS[(strategy, scheduler)] in str(info.value)
        return
    plan = search_spaces.build(load_spec(spec))
    alg = plan.search_alg.searcher if isinstance(plan.search_alg, ConcurrencyLimiter) else plan.search_alg
    assert isinstance(alg, SEARCH_ALGS[strategy])
    assert isinstance(plan.scheduler, SCHEDULER_TYPES[scheduler])
    if strategy == "bohb":
        assert isinstance(plan.scheduler, HyperBandForBOHB)
    if scheduler == "asha":
        assert plan.scheduler._max_t == 6  # the longest trial's epochs
    if strategy == "grid":
        assert plan.param_space["groups"]["encoder"]["optimizer"] == {"grid_search": ["adamw", "sgd"]}


@pytest.mark.parametrize("max_t,eta", [(1, 2), (4, 2), (6, 2), (9, 3), (27, 3), (10, 4)])
def test_hyperband_brackets_are_the_ones_ray_deals(max_t, eta):
    from search_spaces.hyperband import brackets

    ray_hb = HyperBandScheduler(max_t=max_t, reduction_factor=eta)
    assert brackets(max_t, eta) == [(ray_hb._get_n0(s), ray_hb._get_r0(s)) for s in range(ray_hb._s_max_1)]


def test_hyperband_within_its_brackets_and_bohb_at_any_concurrency_are_accepted():
    spec = copy.deepcopy(BASE)
    spec["hyperparameters"]["batch_size"] = {"choice": [16, 32]}
    spec["hyperparameters"]["epochs"] = 4  # eta 2: brackets of 3, 3 and 4 trials
    spec["search"] = {"strategy": "random+hyperband", "max_concurrent_trials": 4}
    assert isinstance(search_spaces.build(load_spec(spec)).scheduler, HyperBandScheduler)
    spec["search"]["max_concurrent_trials"] = 3
    with pytest.raises(SpecError, match="largest holds 4 trials"):
        load_spec(spec)
    spec["search"] = {"strategy": "bohb", "max_concurrent_trials": 1}  # HyperBandForBOHB pauses and resumes
    assert isinstance(search_spaces.build(load_spec(spec)).scheduler, HyperBandForBOHB)


def test_bayesian_refuses_grids_with_the_reason():
    spec = copy.deepcopy(BASE)
    spec["search"] = {"strategy": "bayesian"}
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert "cannot enumerate a grid" in dict(info.value.problems)["hyperparameters.batch_size"]


def test_bayesian_search_is_seeded():
    spec = copy.deepcopy(BASE)
    spec["hyperparameters"]["batch_size"] = {"choice": [16, 32]}
    spec["search"] = {"strategy": "bayesian", "seed": 3}

    def suggestions(seed_spec) -> list:
        plan = search_spaces.build(load_spec(seed_spec))
        plan.search_alg.set_search_properties("val_accuracy", "max", plan.param_space)
        return [plan.search_alg.suggest(f"t{i}") for i in range(3)]

    first, again = suggestions(spec), suggestions(spec)
    assert first == again
    spec["search"]["seed"] = 4
    assert suggestions(spec) != first
    assert all(1e-5 <= s["groups"]["encoder"]["lr"] <= 1e-3 for s in first)


@pytest.mark.parametrize(
    "raw,center",
    [
        ({"loguniform": [1e-5, 1e-3]}, 1e-4),  # the geometric middle
        ({"uniform": [0.0, 0.2]}, 0.1),
        ({"quniform": [0.0, 0.5, 0.2]}, 0.2),  # the middle rounded to q
        ({"randint": [0, 3]}, 1),  # of 0, 1, 2 (high exclusive)
        ({"choice": [32, 8, 16, 64]}, 16),  # numbers: the lower middle
        ({"choice": ["sgd", "adamw"]}, "sgd"),  # others: the first written
    ],
)
def test_the_center_of_each_distribution(raw, center):
    from search_spaces._distributions import parse_distribution

    dist = parse_distribution(raw)
    assert dist.center() == pytest.approx(center) and dist.contains(dist.center())


def center_spec(**search) -> dict:
    spec = copy.deepcopy(BASE)
    hp = spec["hyperparameters"]
    hp["batch_size"] = {"choice": [16, 32]}
    hp["dropout"] = {"quniform": [0.0, 0.4, 0.1]}
    hp["groups"]["encoder"]["momentum"] = {"uniform": [0.5, 0.9]}  # for sgd alone: not at the center (adamw)
    hp["groups"]["encoder"]["beta1"] = {"uniform": [0.8, 0.9]}  # for adamw: at the center
    spec["search"] = {"seed": 3, **search}
    return spec


CENTER = {
    "groups": {
        "encoder": {"lr": 1e-4, "optimizer": "adamw", "beta1": 0.85},
        "head": {"lr": (1e-4 + 1e-2) / 2},
    },
    "batch_size": 16,
    "frozen_layers": 1,
    "dropout": 0.2,
}


def at(config: dict) -> dict:
    """The config's values of the centered hyperparameters, by dotted name."""
    from search_spaces import flatten as flat_point

    flat = flat_point(config)
    return {name: flat[name] for name in flat_point(CENTER)}


@pytest.mark.parametrize("strategy", ["bayesian", "bohb"])
def test_model_based_searchers_start_at_the_center_then_search(strategy):
    from search_spaces import flatten as flat_point

    def suggestions(spec) -> list:
        plan = search_spaces.build(load_spec(spec))
        plan.search_alg.set_search_properties("val_accuracy", "max", plan.param_space)
        return [plan.search_alg.suggest(f"t{i}") for i in range(2)]

    first, second = suggestions(center_spec(strategy=strategy))
    assert at(first) == pytest.approx(flat_point(CENTER))
    assert first["groups"]["encoder"].get("momentum") is None  # does not apply under adamw
    assert at(second) != at(first)
    # off, or another start given: the searcher's own first suggestion
    off, _ = suggestions(center_spec(strategy=strategy, center_first=False))
    assert at(off) != at(first)
    given, _ = suggestions(center_spec(strategy=strategy, points_to_evaluate=[{"groups.encoder.lr": 3e-4}]))
    assert given["groups"]["encoder"]["lr"] == 3e-4


def test_the_center_is_left_to_grids_and_warm_starts():
    from search_spaces._space import start_points

    assert start_points(load_spec(center_spec(strategy="random"))) == [
        {"groups.encoder.lr": pytest.approx(1e-4), "groups.encoder.optimizer": "adamw",
         "groups.encoder.beta1": pytest.approx(0.85), "groups.head.lr": pytest.approx(0.00505), "batch_size": 16,
         "frozen_layers": 1, "dropout": pytest.approx(0.2)}
    ]  # fmt: skip
    assert start_points(load_spec(center_spec(strategy="bayesian")), warm=True) == []
    grid = center_spec(strategy="random")
    grid["hyperparameters"]["batch_size"] = {"grid": [16, 32]}
    assert start_points(load_spec(grid)) == []


def test_unknown_strategy_or_scheduler_is_an_error(monkeypatch):
    spec = load_spec(BASE)
    monkeypatch.setattr(search_spaces, "SEARCHERS", {"grid": ("search_spaces.grid", "GridSearch")})
    with pytest.raises(ValueError, match="search.strategy='random'; accepted: grid"):
        search_spaces.build(spec)
    monkeypatch.setattr(search_spaces, "SEARCHERS", {"random": ("search_spaces.random", "RandomSearch")})
    monkeypatch.setattr(search_spaces, "SCHEDULERS", {"asha": ("search_spaces.asha", "ASHA")})
    with pytest.raises(ValueError, match="search.scheduler='fifo'; accepted: asha"):
        search_spaces.build(spec)


def test_warm_start_tells_earlier_trials_to_the_study_before_it_suggests():
    from search_spaces.bayesian import warm_storage

    spec = copy.deepcopy(BASE)
    spec["hyperparameters"]["batch_size"] = {"choice": [16, 32]}
    spec["search"] = {"strategy": "bayesian", "seed": 3}
    spec = load_spec(spec)
    earlier = [
        ({"groups.encoder.lr": lr, "groups.encoder.optimizer": "adamw", "groups.head.lr": 1e-3, "batch_size": 16,
          "frozen_layers": 1, "dropout": 0.1}, [acc])
        for lr, acc in ((1e-5 * 10 ** (i / 6), 0.9 - abs(i - 6) / 20) for i in range(13))
    ]  # fmt: skip
    storage = warm_storage(spec, earlier)
    import optuna

    study = optuna.load_study(study_name="tune-service", storage=storage)
    told = sorted((t.params["groups/encoder/lr"], t.value) for t in study.trials)
    assert told == sorted((p["groups.encoder.lr"], v[0]) for p, v in earlier)

    def first_suggestion(warm):
        plan = search_spaces.build(spec, warm)
        plan.search_alg.set_search_properties("val_accuracy", "max", plan.param_space)
        return plan.search_alg.suggest("t0")

    # 13 earlier trials are past TPE's 10 random start-up trials: the model proposes at once
    assert first_suggestion(earlier) != first_suggestion(None)
    # the warm study is saved and restored with the searcher (Tune checkpoints it)
    plan = search_spaces.build(spec, earlier)
    searcher = plan.search_alg
    searcher.set_search_properties("val_accuracy", "max", plan.param_space)
    back = pickle.loads(pickle.dumps(searcher.__dict__))
    assert len(back["_ot_study"].trials) == 13


def test_pareto_front_keeps_the_trials_nothing_beats_on_every_objective():
    from tune_service.summary import pareto_front

    points = {"a": [0.8, 10.0], "b": [0.7, 5.0], "c": [0.7, 6.0], "d": [0.6, 20.0], "e": [0.8, 10.0]}
    assert pareto_front(points, ["max", "min"]) == ["a", "b", "e"]
    assert pareto_front(points, ["max", "max"]) == ["a", "d", "e"]


def test_epoch_budget_counts_each_epoch_once_and_stops_the_sweep():
    from tune_service.driver import EpochBudget

    budget = EpochBudget(3)
    for trial, it in (("t1", 1), ("t1", 2), ("t1", 2), ("t2", 1)):  # t1's last result comes twice (done)
        assert budget(trial, {"training_iteration": it}) is False
        if (trial, it) == ("t1", 2):
            assert not budget.stop_all()
    assert budget.spent == 3 and budget.stop_all()


@pytest.mark.parametrize("strategy", ["grid", "random", "bayesian", "bohb"])
def test_the_base_model_is_one_more_searched_setting_of_every_searcher(strategy):
    """``task.model: {choice: [...]}`` (a grid for grid search) is the trial config's ``model``."""
    spec = copy.deepcopy(BASE)
    spec["hyperparameters"]["batch_size"] = 16
    if strategy == "grid":
        spec["hyperparameters"] = {"groups": {"encoder": {"lr": 1e-4}, "head": {"lr": 1e-3}}}
    spec["task"]["model"] = {"grid" if strategy == "grid" else "choice": ["org/small", "./models/large"]}
    spec["search"] = {"strategy": strategy, "num_samples": 6, "seed": 3}
    loaded = load_spec(spec)
    assert loaded.task.models == ("org/small", "./models/large")
    assert "model" in search_spaces.searched(loaded.hyperparameters)
    plan = search_spaces.build(loaded)
    if strategy == "grid":
        assert plan.param_space["model"] == {"grid_search": ["org/small", "./models/large"]}
    elif strategy == "random":
        assert plan.param_space["model"].categories == ["org/small", "./models/large"]
    else:
        alg = plan.search_alg
        alg.set_search_properties("val_accuracy", "max", plan.param_space)
        chosen = {alg.suggest(f"t{i}")["model"] for i in range(6)}
        assert chosen == {"org/small", "./models/large"}  # both tried in 6 suggestions
    # a sweep that does not search it gives trials no model setting: they train task.model
    spec["task"]["model"] = "org/small"
    assert "model" not in search_spaces.build(load_spec(spec)).param_space


def test_the_base_model_is_searched_in_task_model_alone():
    spec = copy.deepcopy(BASE)
    spec["task"]["model"] = {"choice": ["a", "b"]}
    spec["hyperparameters"]["model"] = {"choice": ["a", "c"]}
    with pytest.raises(SpecError, match="search the base model in task.model alone"):
        load_spec(spec)
