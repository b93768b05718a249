"""How much a sweep's winner's validation score overstates its score on unseen data, three ways.

Each seed runs two sweeps of the quickstart task (MiniLM on Rotten Tomatoes, ``--trials`` trials of
random search drawn with that seed, which also seeds their training; the same configs in both),
each learning from ``--rows`` labeled reviews, a tenth of the whole dataset held out of every trial
as the test split:

- **plain + confirm**: each trial trains on two thirds of the rows and is validated on the other
  third; then ``search.confirm`` trains the 3 best configs again with 2 new seeds. The search's
  winner (best validation score) and confirm's winner (best mean over the new seeds) are scored
  on the test split.
- **cross-validation + refit**: each trial trains ``--folds`` models, each validated on its fold
  of the rows, and reports their mean; the winner by that mean is refit on all the rows. The
  refit model and the winner's best fold's model are scored on the test split.

    python bench/winner_optimism.py [--seeds 0,1,2] [--trials 24] [--folds 5] [--rows 240]

Prints a JSON line and a summary: per seed, each winner's validation score (or mean), its test
score and the gap (positive is optimism), the mean gaps over the seeds, and each sweep's wall time
(what cross-validation costs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import local_store

from tune_service import load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
CPUS = 2


def spec_for(seed: int, args, folds: int | None) -> dict:
    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["name"] = f"bench-optimism-{seed}-{'cv' if folds else 'plain'}"
    dataset = data["task"]["dataset"]
    dataset.update(test_split=0.1, train_size=args.rows, validation_size=None)
    if not folds:  # the same rows, a third of them to validate on
        dataset.update(train_size=args.rows * 2 // 3, validation_size=args.rows - args.rows * 2 // 3)
    # the seed draws the trials (none starts from the space's middle, which every seed would share) and
    # seeds their training
    data["hyperparameters"]["seed"] = seed
    data["search"].update(
        strategy="random", num_samples=args.trials, seed=seed, time_budget_s=None, max_concurrent_trials=CPUS,
        center_first=False,
    )  # fmt: skip
    if folds:
        data["search"].update(cross_validation={"folds": folds, "refit": True}, test_top_k=2)
    else:
        top = min(3, args.trials)
        data["search"].update(confirm={"top_k": top, "seeds": 2}, test_top_k=top)
    data["mlflow"]["register_model"] = False
    return data


def sweep(seed: int, args, folds: int | None, where: Path):
    started = time.time()
    with local_store(where) as uri:
        result = run_sweep(spec_for(seed, args, folds), tracking_uri=uri, storage_path=str(where / "ray"),
                           verbose=0, num_cpus=CPUS)  # fmt: skip
    return result, time.time() - started


def plain(seed: int, args, where: Path) -> dict:
    result, wall = sweep(seed, args, None, where)
    by_id = {t.trial_id: t for t in result.trials}
    finalists = [by_id[o] for o in result.confirmed]
    searched = max(finalists, key=lambda t: t.metrics["val_accuracy"])
    confirmed = by_id[result.best_trial_id]
    return {
        "search_winner_val": searched.metrics["val_accuracy"],
        "search_winner_test": searched.test_metrics.get("test_accuracy"),
        "search_winner_config": searched.config["groups"],
        "confirm_winner_mean": result.confirmed[confirmed.trial_id]["mean"],
        "confirm_winner_test": confirmed.test_metrics.get("test_accuracy"),
        "same_winner": searched.trial_id == confirmed.trial_id,
        "plain_wall_s": wall,
    }


def cross_validated(seed: int, args, where: Path) -> dict:
    result, wall = sweep(seed, args, args.folds, where)
    by_id = {t.trial_id: t for t in result.trials}
    winner, refitted = by_id[result.refit["winner"]], by_id[result.refit["trial_id"]]
    return {
        "cv_winner_mean": winner.metrics["val_accuracy"],
        "cv_winner_std": winner.metrics["val_accuracy_std"],
        "cv_refit_test": refitted.test_metrics.get("test_accuracy"),
        "cv_best_fold_test": winner.test_metrics.get("test_accuracy"),
        "cv_winner_config": winner.config["groups"],
        "cv_wall_s": wall,
    }


def measure(seed: int, args) -> dict:
    row = {"seed": seed}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        row.update(plain(seed, args, Path(tmp)))
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        row.update(cross_validated(seed, args, Path(tmp)))
    row["cv_picks_search_winner"] = row.pop("cv_winner_config") == row.pop("search_winner_config")
    row["search_gap"] = row["search_winner_val"] - row["search_winner_test"]
    row["confirm_gap"] = row["confirm_winner_mean"] - row["confirm_winner_test"]
    row["cv_refit_gap"] = row["cv_winner_mean"] - row["cv_refit_test"]
    row["cv_best_fold_gap"] = row["cv_winner_mean"] - row["cv_best_fold_test"]
    return row


GAPS = ("search_gap", "confirm_gap", "cv_refit_gap", "cv_best_fold_gap")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=240, help="labeled reviews each sweep learns from")
    args = parser.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows.append(measure(seed, args))
        print(f"done seed {seed}: {rows[-1]}", flush=True)
    record = {
        "bench": "winner_optimism",
        "trials": args.trials,
        "folds": args.folds,
        "labeled_rows": args.rows,
        "rows": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
        **{f"mean_{g}": round(statistics.fmean(r[g] for r in rows), 4) for g in GAPS},
        "cv_cost": round(statistics.fmean(r["cv_wall_s"] / r["plain_wall_s"] for r in rows), 3),
    }
    print(json.dumps(record))
    print(
        f"over {len(rows)} seeds of {args.trials} trials, the winner's validation score minus its test accuracy: "
        f"search {record['mean_search_gap']:+.3f}, confirm's mean {record['mean_confirm_gap']:+.3f}, "
        f"{args.folds}-fold mean against the refit {record['mean_cv_refit_gap']:+.3f} and against the best fold "
        f"{record['mean_cv_best_fold_gap']:+.3f}; the cross-validated sweep (with its refit) took "
        f"{record['cv_cost']:.2f}x the plain one (with confirm's 6 repeats)"
    )


if __name__ == "__main__":
    main()
