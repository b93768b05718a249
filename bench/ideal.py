"""Overhead against the ideal: many short trials through tune-service, wall time over their compute per slot.

N short trials of the quickstart task (1280 Rotten Tomatoes reviews, one epoch; by default on
bench/memory.py's 2-layer BERT with MiniLM's tokenizer, about a second of compute, as in Ray's
figure, and a 4 MB checkpoint each; ``--model builtin:minilm`` for MiniLM, about 260 MB of
checkpoints per trial) run through ``run_sweep``, 2 at a time on 2 CPUs, with everything on:
preflight, the MLflow parent and child runs (a local SQLite store), per-epoch streaming, each
trial's best checkpoint to MLflow. The ideal is what a perfect orchestrator would take: the trials' own
compute (the sum of Tune's ``time_total_s``, model loading included) divided by the slots.
Ray's own figure for Tune is 1.14 on 10,000 one-second trials.

    python bench/ideal.py [--trials 200] [--epochs 1] [--train-size 1280] [--model tiny|builtin:minilm]

Ray is started by the sweep itself, as a user's ``tune-service run`` does, so its start is
counted; the MLflow store's tables exist, as in a store in use (a new store's first use makes
them, once). ``wall_in_fit_s`` is the part from building the Tuner to the end of its ``fit``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import local_store
from memory import tiny_model
from orchestration import SLOTS, compute_s, short_trials

from tune_service import run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=1280, help="reviews per trial: about a second of compute")
    parser.add_argument("--model", default="tiny", help="tiny, or a model source (builtin:minilm)")
    args = parser.parse_args()

    spec = short_trials(args.trials, args.epochs, args.train_size, reuse_actors=True)
    with tempfile.TemporaryDirectory(prefix="bench-ideal-") as tmp:
        where = Path(tmp)
        spec["task"]["model"] = tiny_model(where / "model") if args.model == "tiny" else args.model
        with local_store(where) as uri:
            started = time.perf_counter()
            result = run_sweep(spec, tracking_uri=uri, storage_path=str(where / "ray"), verbose=0, num_cpus=SLOTS)
            wall = time.perf_counter() - started
        dirs = [p.parent for p in (where / "ray").glob("*/*/result.json")]
        assert len(dirs) == len(result.trials) == args.trials, (len(dirs), len(result.trials))
        compute = compute_s(dirs)
    ideal = compute / SLOTS
    figures = {
        "bench": "ideal",
        "model": args.model,
        "trials": args.trials,
        "epochs": args.epochs,
        "slots": SLOTS,
        "wall_s": round(wall, 1),
        "trial_compute_s": round(compute, 1),
        "mean_trial_s": round(compute / args.trials, 2),
        "ideal_s": round(ideal, 1),
        "wall_in_fit_s": round(result.wall_time_s, 1),
        "service_over_ideal": round(wall / ideal, 3),
        "fit_over_ideal": round(result.wall_time_s / ideal, 3),
    }
    print(json.dumps(figures))
    print(
        f"{args.trials} trials of {figures['mean_trial_s']} s on {SLOTS} slots: wall {wall:.0f} s, "
        f"ideal {ideal:.0f} s, x{figures['service_over_ideal']} (Tune's fit alone x{figures['fit_over_ideal']})"
    )


if __name__ == "__main__":
    main()
