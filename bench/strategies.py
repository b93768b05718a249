"""Strategies side by side on the quickstart task: time to a target accuracy, best within a budget.

Every strategy searches the quickstart space (encoder and head learning rates,
the head's optimizer, the batch size) for the same wall-clock budget, one after
another in this process, with the same seed and 2 trials at a time (Hyperband:
no limit, as its brackets need; Ray still runs 2 at once on 2 CPUs); ``--cpus-per-trial 2``
runs one trial at a time on both threads instead. Grid
searches the same ranges as a 3 x 2 x 2 x 2 grid. Figures come from the MLflow
runs each sweep writes: per epoch, the validation accuracy and when it arrived.

    python bench/strategies.py [--budget 200] [--target 0.70[,0.75]] [--epochs 3] \
        [--train-size 320] [--validation-size 200] [--strategies grid,random,random:no-center,...] \
        [--cpus-per-trial 1]

Prints one row per strategy: trials started, epochs trained, best validation
accuracy within the budget, seconds from the sweep's start to the first epoch at
or above each target (- if never), and to the first epoch of any trial (the floor).
A target the middle of the space reaches in its first epochs measures the start,
not the search: a second, higher target shows what searching is worth.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

from _common import local_store
from mlflow.tracking import MlflowClient

from tune_service import load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
CPUS = 2
STRATEGIES = ["grid", "random", "bayesian", "random+asha", "bayesian+asha", "random+hyperband", "bohb", "pbt"]
# each strategy but grid starts from the middle of the space (search.center_first); NAME:no-center runs
# it from the searcher's own draws, to measure what the start is worth
GRID = {
    ("groups", "encoder", "lr"): {"grid": [3.0e-5, 1.0e-4, 3.0e-4]},
    ("groups", "head", "lr"): {"grid": [1.0e-3, 1.0e-2]},
    ("groups", "head", "optimizer"): {"grid": ["adamw", "sgd"]},
    ("batch_size",): {"grid": [16, 32]},
}


def spec_for(name: str, args) -> dict:
    """The quickstart spec for ``name``: a strategy, ``:no-center`` to start from the searcher's own draws."""
    strategy, _, variant = name.partition(":")
    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["name"] = f"bench-{strategy.replace('+', '-')}"
    data["task"]["dataset"].update(train_size=args.train_size, validation_size=args.validation_size)
    data["hyperparameters"]["epochs"] = args.epochs
    hp = data["hyperparameters"]
    if strategy == "grid":
        for path, value in GRID.items():
            node = hp
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(value)
    data["search"] = {
        "strategy": strategy,
        "metric": "val_accuracy",
        "mode": "max",
        "num_samples": 1 if strategy == "grid" else (4 if strategy == "pbt" else 64),
        "max_concurrent_trials": None if strategy.endswith("hyperband") else CPUS // args.cpus_per_trial,
        "time_budget_s": args.budget,
        "reduction_factor": 3,
        "seed": args.seed,
        "center_first": variant != "no-center",
    }
    data["resources"] = {"cpu": args.cpus_per_trial}  # a trial trains on as many threads
    return data


def target_keys(targets: list[float]) -> list[str]:
    """The JSON keys of the seconds to each target: ``to_target`` for the first, ``to_<t>`` for the rest."""
    return ["to_target"] + [f"to_{t}" for t in targets[1:]]


def measure(strategy: str, args, where: Path) -> dict:
    started = time.time()
    with local_store(where) as uri:
        spec = spec_for(strategy, args)
        result = run_sweep(spec, tracking_uri=uri, storage_path=str(where / "ray"), verbose=0, num_cpus=CPUS)
    client = MlflowClient(uri)
    t0 = client.get_run(result.parent_run_id).info.start_time / 1000
    epochs = [  # (seconds from the sweep's start, accuracy) of every epoch
        (m.timestamp / 1000 - t0, m.value)
        for trial in result.trials
        if trial.mlflow_run_id
        for m in client.get_metric_history(trial.mlflow_run_id, "val_accuracy")
    ]
    return {
        "strategy": strategy,
        "trials": len(result.trials),
        "epochs": sum(t.epochs for t in result.trials),
        "best": max((acc for _, acc in epochs), default=None),
        **{
            key: min((at for at, acc in epochs if acc >= target), default=None)
            for key, target in zip(target_keys(args.target), args.target)
        },
        "first_epoch": min((at for at, _ in epochs), default=None),  # the floor: no strategy beats its first epoch
        "wall": time.time() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=200, help="seconds per strategy")
    parser.add_argument(
        "--target",
        type=lambda text: [float(t) for t in text.split(",")],
        default=[0.70],
        help="validation accuracy to reach; several, comma-separated: the first is the JSON's to_target",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=320)
    parser.add_argument("--validation-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--cpus-per-trial", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    rows = []
    for strategy in args.strategies.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            rows.append(measure(strategy, args, Path(tmp)))
        r = rows[-1]
        print(f"done {strategy}: {r}", flush=True)
    print(
        f"\nquickstart task, train {args.train_size} / validation {args.validation_size}, {args.epochs} epochs, "
        f"{args.budget:.0f}s per strategy, seed {args.seed}, target val_accuracy {', '.join(map(str, args.target))}, "
        f"{args.cpus_per_trial} CPU a trial"
    )
    keys = target_keys(args.target)
    header = ("strategy", "trials", "epochs", "best acc", *(f"to {t} (s)" for t in args.target), "1st epoch (s)")
    print(f"{header[0]:18s} " + " ".join(f"{h:>{max(6, len(h))}s}" for h in header[1:]))

    def cell(value, form: str, width: int) -> str:
        return f"{(format(value, form) if value is not None else '-'):>{width}s}"

    for r in rows:
        cells = [cell(r["best"], ".3f", 8), *(cell(r[k], ".0f", 13) for k in keys), cell(r["first_epoch"], ".0f", 13)]
        print(f"{r['strategy']:18s} {r['trials']:6d} {r['epochs']:6d} " + " ".join(cells))
    grid = next((r for r in rows if r["strategy"] == "grid"), None)
    for key in keys:  # time to each target as a fraction of grid search's on the same space
        for r in rows:
            both = grid is not None and grid[key] and r[key] is not None
            r[f"{key}_vs_grid"] = round(r[key] / grid[key], 3) if both else None
    figures = {
        "bench": "strategies",
        "budget_s": args.budget,
        "target": args.target[0],
        **({"targets": args.target} if len(args.target) > 1 else {}),
        "cpus_per_trial": args.cpus_per_trial,
        "rows": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
    }
    print(json.dumps(figures))
    for target, key in zip(args.target, keys):
        ranked = sorted(
            (r for r in rows if r[f"{key}_vs_grid"] is not None and r["strategy"] != "grid"),
            key=lambda r: r[f"{key}_vs_grid"],
        )
        if ranked:
            fastest = ranked[0]
            print(
                f"fastest to {target}: {fastest['strategy']} in {fastest[key]:.0f} s, "
                f"x{fastest[f'{key}_vs_grid']} of grid's {grid[key]:.0f} s"
            )


if __name__ == "__main__":
    main()
