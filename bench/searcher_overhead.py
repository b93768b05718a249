"""The searcher's own cost per suggestion: ours against plain Optuna, side by side.

Ray's OptunaSearch has been reported several times slower per suggestion than
plain Optuna (ray#46965). This measures, on the quickstart search space, the
time to suggest a config and tell its result, for N trials in sequence:

- plain Optuna: ``study.ask()``, the define-by-run space, ``study.tell()``
- ours (bayesian): Ray's OptunaSearch over our define-by-run space, as a sweep builds it
- Ray's path: OptunaSearch converting a Tune param_space (the one ray#46965 measured)
- random: Tune's variant generator (no model), and bohb: TuneBOHB

All in one process, one after another, same seed and fake objective; no Ray
runtime is started (searchers run in the Tune driver).

    python bench/searcher_overhead.py [--trials 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import optuna
from ray.tune.experiment import Experiment
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import merge_dicts

import search_spaces
from search_spaces import searched
from search_spaces._space import DefineByRun, param_space
from tune_service import load_spec

ROOT = Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(config: dict) -> float:
    g = config["groups"]
    return (
        -abs(math.log10(g["encoder"]["lr"]) + 4)
        - abs(math.log10(g["head"]["lr"]) + 2)
        - (g["head"]["optimizer"] == "sgd") * 0.1
    )


def plain_optuna(spec, n: int) -> None:
    space = DefineByRun(spec.hyperparameters)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    for _ in range(n):
        trial = study.ask()
        space(trial)
        config: dict = {}
        for name, value in trial.params.items():
            node = config
            *parents, leaf = name.split("/")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        study.tell(trial, objective(config))


def searcher(alg, constants: dict, n: int) -> None:
    for i in range(n):
        config = merge_dicts(constants, alg.suggest(f"t{i}"))
        alg.on_trial_complete(f"t{i}", {"val_accuracy": objective(config)})


def ours(spec, n: int) -> None:
    plan = search_spaces.build(spec)
    plan.search_alg.set_search_properties("val_accuracy", "max", plan.param_space)
    searcher(plan.search_alg, plan.param_space, n)


def ray_param_space(spec, n: int) -> None:
    alg = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=0))
    space = param_space(spec.hyperparameters)
    alg.set_search_properties("val_accuracy", "max", space)
    searcher(alg, {}, n)


def bohb(spec, n: int) -> None:
    data = spec.to_dict()
    data["search"] = {"strategy": "bohb"}
    plan = search_spaces.build(load_spec(data))
    alg = plan.search_alg
    for i in range(n):
        config = merge_dicts(plan.param_space, alg.suggest(f"t{i}"))
        result = {"val_accuracy": objective(config), "hyperband_info": {"budget": 2}, "training_iteration": 2}
        alg.on_trial_result(f"t{i}", result)
        alg.on_trial_complete(f"t{i}", result)


def random(spec, n: int) -> None:
    plan = search_spaces.build(
        spec.model_copy(update={"search": spec.search.model_copy(update={"strategy": "random"})})
    )
    alg: BasicVariantGenerator = plan.search_alg
    alg.add_configurations([Experiment("bench", run=lambda config: None, config=plan.param_space, num_samples=n)])
    for _ in range(n):
        alg.next_trial()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["search"] = {"strategy": "bayesian", "seed": 0}
    spec = load_spec(data)
    cases = {
        "plain Optuna (ask/tell, TPE)": plain_optuna,
        "ours: bayesian (OptunaSearch, define-by-run)": ours,
        "Ray OptunaSearch over a Tune param_space": ray_param_space,
        "bohb (TuneBOHB)": bohb,
        "random (Tune variant generator)": random,
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so drift on a noisy machine hits every case alike
        for name, fn in cases.items():
            start = time.perf_counter()
            fn(spec, args.trials)
            times[name].append((time.perf_counter() - start) / args.trials * 1000)
    base = statistics.median(times["plain Optuna (ask/tell, TPE)"])
    names = ", ".join(searched(spec.hyperparameters))
    print(f"quickstart space ({names}); {args.trials} suggestions, median of {args.repeats}")
    print(f"{'searcher':48s} {'ms/suggestion':>14s} {'vs plain Optuna':>16s}")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"{name:48s} {ms:14.2f} {ms / base:15.2f}x")
    ms = {name: round(statistics.median(v), 2) for name, v in times.items()}
    print(json.dumps({"bench": "searcher_overhead", "suggestions": args.trials, "ms_per_suggestion": ms}))


if __name__ == "__main__":
    main()
