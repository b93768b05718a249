"""Overhead against the ideal: many short trials through tune-service, wall time over their compute per slot.

N short trials of the quickstart task (1280 Rotten Tomatoes reviews, one epoch; by default on
bench/memory.py's 2-layer BERT with MiniLM's tokenizer, about a second of compute, as in Ray's
figure, and a 4 MB checkpoint each; ``--model builtin:minilm`` for MiniLM, about 260 MB of
checkpoints per trial) run through ``run_sweep``, 2 at a time on 2 CPUs, with everything on:
preflight, the MLflow parent and child runs (a local SQLite store), per-epoch streaming, each
trial's best checkpoints to MLflow, the report figures and the registry at the end. The ideal is
what a perfect orchestrator would take: the trials' own compute (the sum of Tune's
``time_total_s``, model loading included) divided by the slots.
Ray's own figure for Tune is 1.14 on 10,000 one-second trials.

    python bench/ideal.py [--trials 200] [--epochs 1] [--train-size 1280] [--model tiny|builtin:minilm] \
        [--ray embedded,running]

``--ray embedded``: the sweep starts Ray in-process and stops it, as a user's ``tune-service run``
does on the embedded default, so Ray's start and stop (about 5 s) are on the clock. ``running``:
the sweep joins a Ray started before the clock, as on a cluster (``tune-service submit``, or the
Python API called from a job), which is how Ray's own figure is taken. The default runs both, one
after the other. The MLflow store's tables exist, as in a store in use (a new store's first use
makes them, once). ``wall_in_fit_s`` is the part from building the Tuner to the end of its ``fit``;
``end_s`` the part after it (the writers flushed, the summary, the reports, the registry), by step
as the parent run records it (``end/STEP_s``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import local_store
from memory import tiny_model
from mlflow import MlflowClient
from orchestration import SLOTS, compute_s, short_trials

from tune_service import run_sweep

WAYS = ("embedded", "running")


def measure(spec: dict, model: str, ray_way: str) -> dict:
    """One sweep of ``spec``'s short trials: its wall time and the sum of its trials' compute."""
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-ideal-") as tmp:
        where = Path(tmp)
        spec["task"]["model"] = tiny_model(where / "model") if model == "tiny" else model
        if ray_way == "running":  # as on a cluster: Ray is up before the clock, and stays up after the sweep
            ray.init(address="local", num_cpus=SLOTS, include_dashboard=False)
        try:
            with local_store(where) as uri:
                started = time.perf_counter()
                result = run_sweep(spec, tracking_uri=uri, storage_path=str(where / "ray"), verbose=0, num_cpus=SLOTS)
                wall = time.perf_counter() - started
                end = MlflowClient(uri).get_run(result.parent_run_id).data.metrics
        finally:
            ray.shutdown()  # the running way's Ray; an embedded sweep has stopped its own
        dirs = [p.parent for p in (where / "ray").glob("*/*/result.json")]
        trials = spec["search"]["num_samples"]
        assert len(dirs) == len(result.trials) == trials, (len(dirs), len(result.trials))
        laps = {k.removeprefix("end/"): v for k, v in end.items() if k.startswith("end/")}
        return {"wall": wall, "fit": result.wall_time_s, "compute": compute_s(dirs), "end": laps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=1280, help="reviews per trial: about a second of compute")
    parser.add_argument("--model", default="tiny", help="tiny, or a model source (builtin:minilm)")
    parser.add_argument("--ray", default=",".join(WAYS), help="embedded (the sweep starts Ray), running, or both")
    args = parser.parse_args()
    ways = args.ray.split(",")
    if not set(ways) <= set(WAYS):
        parser.error(f"--ray {args.ray!r}: each of {', '.join(WAYS)}")

    for way in ways:
        spec = short_trials(args.trials, args.epochs, args.train_size, reuse_actors=True)
        spec["mlflow"]["reports"] = True  # as a user's sweep: the figures on the parent run (plain Tune has none)
        # each way in a new process, as a user's sweep runs: neither finds the other's imports done
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            m = pool.submit(measure, spec, args.model, way).result()
        ideal = m["compute"] / SLOTS
        figures = {
            "bench": "ideal",
            "model": args.model,
            "ray": way,
            "trials": args.trials,
            "epochs": args.epochs,
            "slots": SLOTS,
            "wall_s": round(m["wall"], 1),
            "trial_compute_s": round(m["compute"], 1),
            "mean_trial_s": round(m["compute"] / args.trials, 2),
            "ideal_s": round(ideal, 1),
            "wall_in_fit_s": round(m["fit"], 1),
            "service_over_ideal": round(m["wall"] / ideal, 3),
            "fit_over_ideal": round(m["fit"] / ideal, 3),
            "end_s": round(sum(m["end"].values()), 1),
            "end_steps_s": m["end"],
        }
        print(json.dumps(figures), flush=True)
        print(
            f"Ray {way}: {args.trials} trials of {figures['mean_trial_s']} s on {SLOTS} slots: wall {m['wall']:.0f} s, "
            f"ideal {ideal:.0f} s, x{figures['service_over_ideal']} (Tune's fit alone x{figures['fit_over_ideal']}); "
            f"the sweep's end (summary, reports, registry) {figures['end_s']} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
