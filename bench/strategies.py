"""Strategies side by side on a wide space: median time to target accuracies, best within a budget.

The quickstart task (MiniLM on Rotten Tomatoes) with 8 searched settings: both groups' learning
rates, the head's optimizer, the batch size, the encoder's warmup ratio, weight decay and
layer-wise rate decay, and the dropout. Every strategy searches it for the same wall-clock
budget, 2 trials at a time on 2 CPUs (Hyperband and BOHB: no limit, as their brackets need; Ray
still runs 2 at once), for each seed (the searcher's seed and the trials' training seed).

Grid search gets 3 values per continuous setting (both ends and the middle: 3^6 x 2 x 2 = 2,916
points, far more than a budget runs) and runs twice: ``grid``, in Ray Tune's own order (what a
user gets: the grid's first corner first), and ``grid-shuffled``, the same points in an order
shuffled with the run's seed (as ``points_to_evaluate`` of a random search that never gets past
them), so the figure does not hang on which corner comes first.

Figures come from the MLflow runs each sweep writes: per epoch, the validation accuracy and when
it arrived, in seconds from the sweep's start.

    python bench/strategies.py [--budget 240] [--seeds 0,1,2] [--target 0.70,0.75,0.78,0.80] \
        [--strategies grid,grid-shuffled,random,tpe,gp,bohb,random+asha,tpe+asha] [--runs runs.jsonl]

``--runs FILE`` keeps each finished run there as a JSON line; a run already there (same strategy,
seed and settings) is not run again, so the runs can be spread over several invocations and the
summary is taken over all of them. Prints one JSON line per run, then the summary: per strategy,
the median over seeds of the time to each target (a seed that never reached it counts as longer
than the budget) and of the best accuracy, and the share of its trials that reached each target
(how rare a good configuration is: random search's share is the chance that one draw gets there);
then the fastest strategy to the highest target every
searcher reaches (and the better grid), as a fraction of the better grid's time and of random
search's, as a JSON line and a line of text.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from _common import keep_run, kept_runs, local_store
from mlflow.tracking import MlflowClient

from tune_service import load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
CPUS = 2
# dotted name -> (the distribution every strategy but grid searches, the grid's values)
SPACE = {
    "groups.encoder.lr": ({"loguniform": [3.0e-5, 3.0e-4]}, [3.0e-5, 9.5e-5, 3.0e-4]),
    "groups.head.lr": ({"loguniform": [1.0e-3, 3.0e-2]}, [1.0e-3, 5.5e-3, 3.0e-2]),
    "groups.head.optimizer": ({"choice": ["adamw", "sgd"]}, ["adamw", "sgd"]),
    "batch_size": ({"choice": [16, 32]}, [16, 32]),
    "groups.encoder.warmup_ratio": ({"uniform": [0.0, 0.2]}, [0.0, 0.1, 0.2]),
    "groups.encoder.weight_decay": ({"loguniform": [1.0e-3, 1.0e-1]}, [1.0e-3, 1.0e-2, 1.0e-1]),
    "groups.encoder.layer_decay": ({"uniform": [0.5, 1.0]}, [0.5, 0.75, 1.0]),
    "dropout": ({"uniform": [0.0, 0.3]}, [0.0, 0.15, 0.3]),
}
# bench name -> the spec's search settings
STRATEGIES = {
    "grid": {"strategy": "grid"},
    "grid-shuffled": {"strategy": "random", "center_first": False},
    "random": {"strategy": "random"},
    "tpe": {"strategy": "bayesian"},
    "gp": {"strategy": "bayesian", "sampler": "gp"},
    "bohb": {"strategy": "bohb"},
    "random+asha": {"strategy": "random+asha"},
    "tpe+asha": {"strategy": "bayesian+asha"},
    # more of what Optuna ships, run when named in --strategies
    "cmaes": {"strategy": "bayesian", "sampler": "cmaes"},
    "qmc": {"strategy": "bayesian", "sampler": "qmc"},
    # the model-based searchers with a shorter random start than their default 10 (search.startup_trials)
    "tpe-start4": {"strategy": "bayesian", "startup_trials": 4},
    "gp-start4": {"strategy": "bayesian", "sampler": "gp", "startup_trials": 4},
}
DEFAULT = ["grid", "grid-shuffled", "random", "tpe", "gp", "bohb", "random+asha", "tpe+asha"]
GRIDS = ("grid", "grid-shuffled")


def grid_points(seed: int) -> list[dict]:
    """Every point of the grid, as ``points_to_evaluate``, in an order shuffled with ``seed``."""
    names = list(SPACE)
    points = [dict(zip(names, values)) for values in itertools.product(*(grid for _, grid in SPACE.values()))]
    random.Random(seed).shuffle(points)
    return points


def search_wide(hp: dict, grid: bool = False) -> None:
    """``hp`` (a spec's hyperparameters) searching :data:`SPACE`: its distributions, or the grid's values."""
    for dotted, (dist, values) in SPACE.items():
        *parents, last = dotted.split(".")
        node = hp
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = {"grid": list(values)} if grid else dict(dist)


def spec_for(name: str, seed: int, args) -> dict:
    """The quickstart spec searching :data:`SPACE` with strategy ``name`` (a key of :data:`STRATEGIES`)."""
    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["name"] = f"bench-{name.replace('+', '-')}"
    data["task"]["dataset"].update(train_size=args.train_size, validation_size=args.validation_size)
    data["hyperparameters"].update(epochs=args.epochs, seed=seed)
    search_wide(data["hyperparameters"], grid=name == "grid")
    search = STRATEGIES[name]
    data["search"] = {
        "metric": "val_accuracy",
        "mode": "max",
        "num_samples": 1 if name == "grid" else 1000,
        "max_concurrent_trials": None if search["strategy"] == "bohb" else CPUS,  # its brackets need no limit
        "time_budget_s": args.budget,
        "reduction_factor": 3,
        "seed": seed,
        **search,
    }
    if name == "grid-shuffled":
        points = grid_points(seed)
        data["search"].update(points_to_evaluate=points, num_samples=len(points))
    data["resources"] = {"cpu": 1}
    # what comes after the budget is not on the clock: leave it out, and each run ends half a minute sooner
    data["mlflow"].update(reports=False, register_model=False, error_analysis=False)
    return data


def measure(name: str, seed: int, args, where: Path) -> dict:
    """One sweep: every epoch's accuracy and when it arrived; the time to each target; the best."""
    started = time.time()
    with local_store(where) as uri:
        result = run_sweep(
            spec_for(name, seed, args), tracking_uri=uri, storage_path=str(where / "ray"), verbose=0, num_cpus=CPUS
        )
    client = MlflowClient(uri)
    t0 = client.get_run(result.parent_run_id).info.start_time / 1000
    per_trial = [  # per trial, (seconds from the sweep's start, accuracy) of every epoch
        [(m.timestamp / 1000 - t0, m.value) for m in client.get_metric_history(trial.mlflow_run_id, "val_accuracy")]
        for trial in result.trials
        if trial.mlflow_run_id
    ]
    epochs = [epoch for trial in per_trial for epoch in trial]
    return {
        "bench": "search_run",
        "strategy": name,
        "seed": seed,
        **settings(args),
        "trials": len(result.trials),
        "epochs_trained": sum(t.epochs for t in result.trials),
        "best": max((acc for _, acc in epochs), default=None),
        "to": {str(t): _round(min((at for at, acc in epochs if acc >= t), default=None)) for t in args.target},
        "first_epoch_s": _round(min((at for at, _ in epochs), default=None)),  # no strategy beats its first epoch
        "curve": [[_round(at), acc] for at, acc in sorted(epochs)],  # every epoch, for targets chosen later
        # per trial, in the order they first reported: its first epoch's time and its best accuracy
        "trial_best": sorted([_round(min(trial)[0]), max(acc for _, acc in trial)] for trial in per_trial if trial),
        "wall_s": round(time.time() - started, 1),
    }


def settings(args) -> dict:
    """What makes two runs comparable: a run kept in ``--runs`` counts only under the same settings."""
    return {
        "budget_s": args.budget,
        "epochs": args.epochs,
        "train_size": args.train_size,
        "validation_size": args.validation_size,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def median_time(runs: list[dict], target: float) -> float:
    """The median over seeds of the time to ``target``; a seed that never reached it counts as infinite."""
    return statistics.median(math.inf if r["to"].get(str(target)) is None else r["to"][str(target)] for r in runs)


def share_reaching(runs: list[dict], target: float) -> float | None:
    """The share of the trials of ``runs`` (every seed) whose best epoch reached ``target``; None if not kept."""
    bests = [best for r in runs for _, best in r.get("trial_best", [])]
    return round(sum(best >= target for best in bests) / len(bests), 3) if bests else None


def summarize(runs: list[dict], strategies: list[str], targets: list[float]) -> dict:
    """Per strategy, the medians over its seeds; the fastest strategy's ratios at the highest common target."""
    by = {s: [r for r in runs if r["strategy"] == s] for s in strategies}
    rows = {
        s: {
            "seeds": sorted(r["seed"] for r in rs),
            "best": statistics.median(r["best"] or 0.0 for r in rs),
            "trials": statistics.median(r["trials"] for r in rs),
            "to": {str(t): median_time(rs, t) for t in targets},
            "reaching": {str(t): share_reaching(rs, t) for t in targets},
        }
        for s, rs in by.items()
        if rs
    }

    def reached(row: dict, target: float) -> bool:
        return math.isfinite(row["to"][str(target)])

    # the targets every searcher reaches, and the better grid (either order) too
    grid_rows = [rows[g] for g in GRIDS if g in rows]
    common = [
        t
        for t in targets
        if all(reached(row, t) for s, row in rows.items() if s not in GRIDS)
        and (not grid_rows or any(reached(row, t) for row in grid_rows))
    ]
    out = {"bench": "search", "rows": {s: _finite(row) for s, row in rows.items()}, "common_target": None}
    if not common or not {"random", *GRIDS} & set(rows):
        return out
    target = str(common[-1])
    grids = [row["to"][target] for row in grid_rows]
    searchers = {s: row for s, row in rows.items() if s not in GRIDS}
    fastest = min(searchers, key=lambda s: searchers[s]["to"][target])
    took = searchers[fastest]["to"][target]
    out.update(
        common_target=common[-1],
        fastest=fastest,
        fastest_s=took,
        better_grid_s=min(grids) if grids else None,
        vs_grid=round(took / min(grids), 3) if grids else None,
        vs_random=round(took / rows["random"]["to"][target], 3) if "random" in rows else None,
    )
    return out


def _finite(row: dict) -> dict:
    return {**row, "to": {t: None if math.isinf(v) else round(v, 1) for t, v in row["to"].items()}}


def report(summary: dict, targets: list[float]) -> None:
    """The table of medians, then the summary line."""
    print(
        f"\n{'strategy':14s} {'seeds':>6s} {'trials':>6s} {'best':>6s} "
        + " ".join(f"{'to ' + str(t):>8s}" for t in targets)
    )
    for name, row in summary["rows"].items():
        times = " ".join(
            f"{'-' if row['to'][str(t)] is None else format(row['to'][str(t)], '.0f'):>8s}" for t in targets
        )
        print(f"{name:14s} {len(row['seeds']):6d} {row['trials']:6.0f} {row['best']:6.3f} {times}")
    print("\nshare of the trials whose best epoch reached each target (runs that kept each trial's best):")
    for name, row in summary["rows"].items():
        shares = " ".join(f"{'-' if row['reaching'][str(t)] is None else row['reaching'][str(t)]:>8}" for t in targets)
        print(f"{name:14s} {shares}")
    if summary["common_target"] is None:
        print("no target that every searcher and either grid reached in the median")
        return
    print(
        f"fastest to {summary['common_target']} (the highest target every searcher and a grid reached, median "
        f"over seeds): "
        f"{summary['fastest']} in {summary['fastest_s']:.0f} s, x{summary['vs_grid']} of the better grid's "
        f"{summary['better_grid_s']:.0f} s, x{summary['vs_random']} of random search's"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240, help="seconds per strategy and seed")
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[0, 1, 2])
    parser.add_argument(
        "--target", type=lambda text: [float(t) for t in text.split(",")], default=[0.70, 0.75, 0.78, 0.80]
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=320)
    parser.add_argument("--validation-size", type=int, default=200)
    parser.add_argument("--strategies", default=",".join(DEFAULT), help=f"of {', '.join(STRATEGIES)}")
    parser.add_argument("--runs", type=Path, help="a JSON-lines file of finished runs: kept, and not run again")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    if unknown := set(strategies) - set(STRATEGIES):
        parser.error(f"--strategies: {', '.join(sorted(unknown))} unknown; accepted: {', '.join(STRATEGIES)}")
    runs = kept_runs(args.runs, "search_run", settings(args))
    for seed, name in itertools.product(args.seeds, strategies):  # every strategy once before any seed twice
        if any(r["strategy"] == name and r["seed"] == seed for r in runs):
            continue
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            run = measure(name, seed, args, Path(tmp))
        runs.append(run)
        keep_run(args.runs, run)
    chosen = [r for r in runs if r["seed"] in args.seeds]
    summary = summarize(chosen, strategies, args.target)
    print(json.dumps({**summary, **settings(args), "seeds": args.seeds, "targets": args.target}))
    report(summary, args.target)


if __name__ == "__main__":
    main()
