"""Contract: every strategy against every search-space shape, fed fake results.

Each searcher either refuses the shape at validation (with the reason) or
suggests configs in the trainable's shape, inside the spec's distributions,
with conditional settings ``None`` exactly where they do not apply; it learns
from fake results, and after ``save_to_dir``/``restore_from_dir`` (what Tune
does on an experiment checkpoint and on resume) it carries on exactly where the
original does. Schedulers, which Tune pickles with the Tuner, make the same
decision after a pickle round trip as before it.
"""

from __future__ import annotations

import copy
import math
import pickle

import pytest
from ray import cloudpickle
from ray.tune.experiment import Experiment, Trial
from ray.tune.search import Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.variant_generator import generate_variants
from ray.tune.utils.util import merge_dicts

import search_spaces
from search_spaces import CONDITIONS, flatten
from search_spaces._space import constants
from tune_service import SpecError, load_spec
from tune_service.tracking import param_from, param_value

ENC = ("hyperparameters", "groups", "encoder")

# shape -> {dotted path under hyperparameters: value}; grid variants for strategy grid
SHAPES = {
    "continuous": {"groups.encoder.lr": {"uniform": [1e-5, 1e-3]}, "dropout": {"uniform": [0.0, 0.3]}},
    "log": {"groups.encoder.lr": {"loguniform": [1e-5, 1e-3]}, "l2": {"loguniform": [1e-6, 1e-2]}},
    "integer": {"frozen_layers": {"randint": [0, 3]}, "dropout": {"quniform": [0.0, 0.3, 0.1]}},
    "categorical": {"batch_size": {"choice": [8, 16, 32]}, "groups.head.optimizer": {"choice": ["adamw", "sgd"]}},
    "grid": {"batch_size": {"grid": [8, 16]}, "groups.encoder.lr": {"grid": [1e-4, 1e-3]}},
    "conditional": {
        "groups.encoder.optimizer": {"choice": ["sgd", "adamw", "rmsprop"]},
        "groups.encoder.momentum": {"uniform": [0.5, 0.99]},
        "groups.encoder.beta1": {"uniform": [0.8, 0.95]},
        "groups.encoder.lr": {"loguniform": [1e-5, 1e-3]},
    },
    "derived": {
        "groups.encoder.lr": {"loguniform": [1e-5, 1e-3]},
        "groups.head.lr": {"relative_to": "encoder", "ratio": {"loguniform": [3.0, 300.0]}},
    },
}
GRID_SHAPES = {  # strategy grid enumerates: the same shapes written with finite values
    "conditional": {
        "groups.encoder.optimizer": {"grid": ["sgd", "adamw"]},
        "groups.encoder.momentum": {"grid": [0.5, 0.9]},
        "groups.encoder.beta1": {"grid": [0.8, 0.9]},
    },
    "derived": {"groups.head.lr": {"relative_to": "encoder", "ratio": {"grid": [10.0, 100.0]}}},
    "categorical": SHAPES["categorical"],
    "grid": SHAPES["grid"],
}
SEARCHERS = ["grid", "random", "bayesian:tpe", "bayesian:gp", "bayesian:cmaes", "bayesian:qmc", "bohb"]
# (strategy, shape) pairs refused at validation, and a word of the reason
REFUSED = {
    ("grid", "continuous"): "enumerates finite values",
    ("grid", "log"): "enumerates finite values",
    ("grid", "integer"): "enumerates finite values",
    ("bayesian", "grid"): "cannot enumerate a grid",
    ("bohb", "grid"): "cannot enumerate a grid",
}


def spec_for(searcher: str, shape: str, **search) -> dict:
    strategy, _, sampler = searcher.partition(":")
    hp: dict = {"groups": {"encoder": {"lr": 1e-4}, "head": {"lr": 1e-3}}, "epochs": 4}
    values = (GRID_SHAPES if strategy == "grid" and shape in GRID_SHAPES else SHAPES)[shape]
    for dotted, value in values.items():
        node = hp
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = copy.deepcopy(value)
    search = {"strategy": strategy, "seed": 11, **search}
    if sampler:
        search["sampler"] = sampler
    return {"name": "contract", "task": {"type": "text_classification"}, "hyperparameters": hp, "search": search}


def check_config(config: dict, spec) -> None:
    """A suggested config: the trainable's shape, inside the spec's space, conditionals consistent."""
    from search_spaces import iter_hyperparameters

    for path, value in iter_hyperparameters(spec.hyperparameters):
        node = config
        for key in path:
            node = node[key]
        got = node
        if hasattr(value, "kind"):
            cond = CONDITIONS.get(path[-1]) if path[0] == "groups" and len(path) == 3 else None
            if cond and config["groups"][path[1]][cond[0]] not in cond[1]:
                assert got is None, (path, config)
                continue
            if value.is_finite:
                assert got in value.values, (path, got)
            else:
                assert value.args[0] - 1e-12 <= got <= value.upper() + 1e-12, (path, got)
                if value.kind == "randint":
                    assert isinstance(got, int)
                if value.kind == "quniform":
                    q = value.args[2]
                    assert abs(got / q - round(got / q)) < 1e-6, got
        else:
            assert got == value, (path, got)
        if path[-1] in CONDITIONS and path[0] == "groups" and hasattr(value, "kind"):
            continue


def fake_score(config: dict) -> float:
    """A smooth fake objective: best at encoder lr 1e-4, batch 16."""
    lr = config["groups"]["encoder"]["lr"]
    lr = lr if isinstance(lr, float) else 1e-4
    return -abs(math.log10(lr) + 4) - abs(config["batch_size"] - 16) / 16


class Driver:
    """Drives one plan's search algorithm the way Tune does: suggest, report, complete."""

    def __init__(self, plan, spec, samples: int):
        self.spec, self.plan = spec, plan
        alg = plan.search_alg
        if isinstance(alg, BasicVariantGenerator):
            alg.add_configurations(
                [Experiment("contract", run=lambda config: None, config=plan.param_space, num_samples=samples)]
            )
        else:
            alg.set_search_properties(spec.search.metric, spec.search.mode, plan.param_space)
        self.alg = alg
        self.n = 0

    def next(self) -> dict | None:
        self.n += 1
        if isinstance(self.alg, BasicVariantGenerator):
            trial = self.alg.next_trial()
            return None if trial is None else trial.config
        suggestion = self.alg.suggest(f"t{self.n}")
        if suggestion is None or suggestion == Searcher.FINISHED:
            return None
        return merge_dicts(self.plan.param_space, suggestion)  # as Tune's SearchGenerator does

    def complete(self, config: dict) -> None:
        if isinstance(self.alg, BasicVariantGenerator):
            return
        result = {"val_accuracy": fake_score(config), "training_iteration": 4, "time_total_s": 1.0}
        result["hyperband_info"] = {"budget": 4}
        self.alg.on_trial_result(f"t{self.n}", result)
        self.alg.on_trial_complete(f"t{self.n}", result)


CASES = [(st, sh) for st in SEARCHERS for sh in SHAPES]


@pytest.mark.parametrize("searcher,shape", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_searcher_contract(searcher, shape, tmp_path):
    strategy = searcher.partition(":")[0]
    raw = spec_for(searcher, shape)
    if (strategy, shape) in REFUSED:
        with pytest.raises(SpecError) as info:
            load_spec(raw)
        assert REFUSED[(strategy, shape)] in str(info.value)
        return
    spec = load_spec(raw)
    samples = 20
    driver = Driver(search_spaces.build(spec), spec, samples)
    seen = []
    for _ in range(4):
        config = driver.next()
        assert config is not None
        check_config(config, spec)
        for name, value in flatten(config).items():  # what MLflow gets back is the value tried
            assert param_from(param_value(value)) == value, (name, value)
        driver.complete(config)
        seen.append(config)
    if strategy != "grid" and shape in ("continuous", "log", "conditional", "derived"):
        assert len({repr(c) for c in seen}) == len(seen), "a searcher repeated itself"
    if shape == "conditional" and strategy != "grid":
        # suggestions reach both sides of the condition (SGD/RMSprop: momentum; Adam(W): beta1) within 16
        # (CMA-ES draws the optimizer at random: 1 in 3 is AdamW)
        sides = {c["groups"]["encoder"]["momentum"] is None for c in seen}
        while len(sides) < 2 and driver.n < 16:
            config = driver.next()
            driver.complete(config)
            sides.add(config["groups"]["encoder"]["momentum"] is None)
        assert sides == {True, False}, driver.n

    # save, restore into a freshly built plan, and both carry on alike
    driver.alg.save_to_dir(str(tmp_path), "contract")
    restored = Driver(search_spaces.build(spec), spec, samples)
    restored.alg.restore_from_dir(str(tmp_path))
    restored.n = driver.n
    nxt, again = driver.next(), restored.next()
    assert nxt is not None and nxt == again


def test_conditional_grid_enumerates_valid_combinations_only():
    spec = load_spec(spec_for("grid", "conditional"))
    plan = search_spaces.build(spec)
    groups = [c["groups"]["encoder"] for _, c in generate_variants(plan.param_space)]
    combos = sorted((g["optimizer"], g["momentum"], g["beta1"]) for g in groups)
    # sgd x 2 momenta (beta1 does not apply) + adamw x 2 beta1 (momentum does not apply): not 2x2x2
    assert combos == [("adamw", None, 0.8), ("adamw", None, 0.9), ("sgd", 0.5, None), ("sgd", 0.9, None)]


def test_random_conditional_draws_are_seeded_and_vary_between_trials():
    def draws(seed: int) -> list:
        spec = load_spec(spec_for("random", "conditional", seed=seed))
        driver = Driver(search_spaces.build(spec), spec, 12)
        return [driver.next()["groups"]["encoder"]["momentum"] for _ in range(12)]

    first = draws(3)
    assert first == draws(3)
    momenta = [m for m in first if m is not None]
    assert len(set(momenta)) == len(momenta) > 1
    assert draws(4) != first


def test_searcher_owned_space_leaves_only_constants_in_param_space():
    spec = load_spec(spec_for("bayesian:tpe", "conditional"))
    space = constants(spec.hyperparameters)
    assert "lr" not in space["groups"]["encoder"] and "optimizer" not in space["groups"]["encoder"]
    assert space["groups"]["encoder"]["momentum"] is None  # until suggested
    assert space["groups"]["head"]["lr"] == 1e-3


def fake_trial(trial_id: str, config: dict) -> Trial:
    return Trial("contract", config=config, trial_id=trial_id, stub=True)


def test_asha_decides_alike_after_a_pickle_round_trip():
    spec = load_spec(spec_for("random", "log", scheduler="asha", grace_period=1))
    sched = search_spaces.build(spec).scheduler
    sched.set_search_properties("val_accuracy", "max")
    trials = [fake_trial(f"t{i}", {}) for i in range(6)]
    for t in trials:
        sched.on_trial_add(None, t)
    for it in (1, 2):
        for i, t in enumerate(trials[:4]):
            sched.on_trial_result(None, t, {"val_accuracy": i / 10, "training_iteration": it, "time_total_s": it})
    copy_ = cloudpickle.loads(cloudpickle.dumps(sched))
    late = trials[4]
    result = {"val_accuracy": 0.0, "training_iteration": 2, "time_total_s": 2.0}
    decisions = {s.on_trial_result(None, late, result) for s in (sched, copy_)}
    assert decisions == {"STOP"}  # the worst trial at a rung stops, before and after the round trip


@pytest.mark.parametrize("preset", ["random+hyperband", "bohb", "pbt", "random+median"])
def test_schedulers_survive_the_pickle_tune_saves_them_in(preset):
    spec = load_spec(spec_for("random" if preset != "bohb" else "bohb", "log", strategy=preset))
    plan = search_spaces.build(spec)
    back = pickle.loads(cloudpickle.dumps(plan.scheduler))
    assert type(back) is type(plan.scheduler)
    if preset == "pbt":
        # what PBT perturbs: the continuous searched settings, kept inside their ranges
        assert set(back._hyperparam_mutations) == {"groups", "l2"}
        explore = back._custom_explore_fn
        config = {"groups": {"encoder": {"lr": 5e-3}}, "l2": 1e-9}
        assert explore(config) == {"groups": {"encoder": {"lr": 1e-3}}, "l2": 1e-6}
    elif preset == "random+median":
        assert back._grace_period == 1  # metric and mode come from TuneConfig
    else:
        assert back._max_t_attr == 4


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_startup_trials_hand_the_search_to_the_sampler_s_model_sooner(sampler):
    """``search.startup_trials``: the same random start as the sampler's default, its model from trial N + 1."""

    def suggestions(**search) -> list[dict]:
        spec = load_spec(spec_for(f"bayesian:{sampler}", "log", **search))
        driver = Driver(search_spaces.build(spec), spec, 8)
        out = []
        for _ in range(5):
            config = driver.next()
            driver.complete(config)
            out.append(config)
        return out

    default, short = suggestions(), suggestions(startup_trials=3)
    assert short[:3] == default[:3]  # the center, then random draws of the same seed
    assert short[3] != default[3] and short[4] != default[4]  # the model picks; the default still draws
