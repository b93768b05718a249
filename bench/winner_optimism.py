"""How much a sweep's winner's validation score overstates its score on unseen data, and what confirm changes.

Each seed runs one sweep of the quickstart task (MiniLM, 640 reviews to train on, 400 to
validate, ``--trials`` trials of random search with that seed, which also seeds their
training), a tenth of the reviews held out of every trial as the test split, and
``search.confirm`` (the 3 best configs trained again with 2 new seeds each). The 3 finalists
are scored on the test split, so one sweep gives both:

- the search's winner (best validation score): its validation score against its test score;
- confirm's winner (best mean over the new seeds): its mean against its test score.

    python bench/winner_optimism.py [--seeds 0,1] [--trials 12]

Prints a JSON line and a summary: per seed, the two winners' scores and their gaps (validation
or mean minus test: positive is optimism), and the mean gap over the seeds.
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


def spec_for(seed: int, trials: int) -> dict:
    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["name"] = f"bench-optimism-{seed}"
    data["task"]["dataset"]["test_split"] = 0.1
    # the seed draws the trials (none starts from the space's middle, which every seed would share) and
    # seeds their training
    data["hyperparameters"]["seed"] = seed
    data["search"].update(
        strategy="random", num_samples=trials, seed=seed, time_budget_s=None, max_concurrent_trials=CPUS,
        test_top_k=3, confirm={"top_k": 3, "seeds": 2}, center_first=False,
    )  # fmt: skip
    data["mlflow"]["register_model"] = False
    return data


def measure(seed: int, trials: int, where: Path) -> dict:
    started = time.time()
    with local_store(where) as uri:
        result = run_sweep(spec_for(seed, trials), tracking_uri=uri, storage_path=str(where / "ray"), verbose=0,
                           num_cpus=CPUS)  # fmt: skip
    by_id = {t.trial_id: t for t in result.trials}
    finalists = [by_id[o] for o in result.confirmed]
    searched = max(finalists, key=lambda t: t.metrics["val_accuracy"])
    confirmed = by_id[result.best_trial_id]
    mean = result.confirmed[confirmed.trial_id]["mean"]
    return {
        "seed": seed,
        "search_winner_val": searched.metrics["val_accuracy"],
        "search_winner_test": searched.test_metrics.get("test_accuracy"),
        "confirm_winner_mean": mean,
        "confirm_winner_test": confirmed.test_metrics.get("test_accuracy"),
        "same_winner": searched.trial_id == confirmed.trial_id,
        "wall_s": time.time() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            rows.append(measure(seed, args.trials, Path(tmp)))
        print(f"done seed {seed}: {rows[-1]}", flush=True)
    for r in rows:
        r["search_gap"] = r["search_winner_val"] - r["search_winner_test"]
        r["confirm_gap"] = r["confirm_winner_mean"] - r["confirm_winner_test"]
    record = {
        "bench": "winner_optimism",
        "trials": args.trials,
        "rows": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
        "mean_search_gap": round(statistics.fmean(r["search_gap"] for r in rows), 4),
        "mean_confirm_gap": round(statistics.fmean(r["confirm_gap"] for r in rows), 4),
    }
    print(json.dumps(record))
    print(
        f"over {len(rows)} seeds of {args.trials} trials: the search's winner overstates its test accuracy by "
        f"{record['mean_search_gap']:+.3f} on average, confirm's winner (its mean over new seeds) by "
        f"{record['mean_confirm_gap']:+.3f}"
    )


if __name__ == "__main__":
    main()
