"""Memory: the driver's peak RSS as a sweep grows from 50 to 500 trials, and one trial's.

Each sweep runs in a fresh driver process (``run_sweep`` with Ray in-process on 2 CPUs, a
local SQLite MLflow store, the defaults otherwise), so each size has its own peak. A thread
samples, every 0.2 s, the driver's RSS and that of every trial process (Ray workers titled
``ray::ImplicitFunc``, children of this driver's raylet). Trials are short so that 500 fit
in minutes: a 2-layer BERT (hidden 32) with random weights and MiniLM's tokenizer, 32 Rotten
Tomatoes reviews, one epoch. ``--model builtin:minilm`` gives a real trial's footprint.

    python bench/memory.py [--trials 50,100,200,500] [--model tiny|builtin:minilm] [--owners]

Prints a row per size (driver peak, driver RSS at the end, trial peak), then a JSON line with
the driver's growth per 100 trials (least squares over the sizes) and a one-line summary.

``--owners``: where the driver's memory goes. The driver traces its Python allocations
(``tracemalloc``, the allocating frame alone: deeper tracebacks make it too slow to finish) and,
at the end of the sweep (its result still held), counts each live block against the package of
the file that allocated it: ours (``tune_service``, ``trainables``, ``search_spaces``), Ray Tune,
the rest of Ray, MLflow, Optuna, ``datasets``, transformers, torch; ``other`` is mostly the
standard library (``json``, ``copy``, ...) on behalf of any of them. The
JSON line then holds each owner's MB per size and per 100 trials; what tracing does not see
(RSS less the traced total) is native memory: Ray's core worker, torch, the allocator's slack.
Tracing slows the driver, so its wall times are not comparable with an untraced run's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def tiny_model(where: Path) -> str:
    """A small BERT with MiniLM's tokenizer: real transformers code, a fraction of a second per trial."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from trainables.text_classification import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("builtin:minilm"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(where)
    tokenizer.save_pretrained(where)
    return str(where)


def sweep_spec(trials: int, model: str) -> dict:
    from tune_service import load_spec

    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["name"] = f"bench-memory-{trials}"
    data["task"]["model"] = model
    data["task"]["dataset"].update(train_size=32, validation_size=32)
    data["hyperparameters"]["epochs"] = 1
    data["hyperparameters"]["frozen_layers"] = 0
    data["search"].update(num_samples=trials)
    data["search"].pop("time_budget_s", None)
    data["mlflow"]["reports"] = False  # plots at the end: a fixed cost, not one that grows
    return data


# (package prefix, owner), first match wins; the module paths are site-packages' or this checkout's
OWNERS = (
    ("tune_service/", "ours"), ("trainables/", "ours"), ("search_spaces/", "ours"), ("ray/tune/", "Ray Tune"),
    ("ray/", "Ray (core)"), ("mlflow/", "MLflow"), ("optuna/", "Optuna"), ("datasets/", "datasets"),
    ("transformers/", "transformers"), ("torch/", "torch"),
)  # fmt: skip


def owner(filename: str) -> str:
    """The package in :data:`OWNERS` that ``filename`` belongs to (installed, or this checkout's); else other."""
    if "site-packages/" in filename:
        name = filename.split("site-packages/")[-1]
    else:
        name = filename.removeprefix(f"{ROOT}/") if filename.startswith(f"{ROOT}/") else ""
    return next((who for prefix, who in OWNERS if name.startswith(prefix)), "other")


def owners_mb(snapshot) -> dict[str, float]:
    out: dict[str, float] = {}
    for stat in snapshot.statistics("filename"):
        who = owner(stat.traceback[0].filename)
        out[who] = out.get(who, 0.0) + stat.size / MB
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def one(trials: int, model: str, trace: bool = False) -> dict:
    """Runs in the child: one sweep, sampled."""
    import psutil
    from _common import local_store

    from tune_service import run_sweep

    me = psutil.Process()
    peaks = {"driver": 0, "trial": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peaks["driver"] = max(peaks["driver"], me.memory_info().rss)
            for child in me.children(recursive=True):
                try:
                    if child.cmdline()[:1] and child.cmdline()[0].startswith("ray::ImplicitFunc"):
                        peaks["trial"] = max(peaks["trial"], child.memory_info().rss)
                except psutil.Error:
                    continue

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        where = Path(tmp)
        if model == "tiny":
            model = tiny_model(where / "model")
        if trace:
            import tracemalloc

            tracemalloc.start(1)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.time()
        with local_store(where) as uri:
            result = run_sweep(
                sweep_spec(trials, model), tracking_uri=uri, storage_path=str(where / "ray"), verbose=0, num_cpus=2
            )
        wall = time.time() - started
        stop.set()
        sampler.join()
        traced = owners_mb(tracemalloc.take_snapshot()) if trace else None
    assert len(result.trials) == trials, len(result.trials)
    return ({"owners_mb": traced} if trace else {}) | {
        "trials": trials,
        "wall_s": round(wall, 1),
        "driver_peak_mb": round(max(peaks["driver"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / MB),
        "driver_end_mb": round(me.memory_info().rss / MB),
        "trial_peak_mb": round(peaks["trial"] / MB),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="50,100,200,500")
    parser.add_argument("--model", default="tiny", help="tiny, or a model source (builtin:minilm)")
    parser.add_argument("--owners", action="store_true", help="trace the driver's Python allocations by owner")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("ROW " + json.dumps(one(args.one, args.model, args.owners)), flush=True)
        return

    rows = []
    for n in [int(x) for x in args.trials.split(",")]:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--model", args.model, *(["--owners"] if args.owners else [])],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        line = next((x for x in out.stdout.splitlines() if x.startswith("ROW ")), None)
        if line is None:
            sys.exit(f"the {n}-trial sweep failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(line[4:]))
        r = rows[-1]
        print(
            f"{n:4d} trials: driver peak {r['driver_peak_mb']} MB, at the end {r['driver_end_mb']} MB; "
            f"trial peak {r['trial_peak_mb']} MB; {r['wall_s']} s",
            flush=True,
        )

    def growth(of) -> float:
        """MB per 100 trials: the least-squares slope of ``of(row)`` over the sweep sizes."""
        xs, ys = [r["trials"] for r in rows], [of(r) for r in rows]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        return round(100 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var, 1) if var else 0.0

    figures = {
        "bench": "memory_owners" if args.owners else "memory",  # a traced driver's sizes are not comparable
        "model": args.model,
        "rows": rows,
        "driver_growth_mb_per_100_trials": growth(lambda r: r["driver_peak_mb"]),
        "driver_end_growth_mb_per_100_trials": growth(lambda r: r["driver_end_mb"]),
        "trial_peak_mb": max(r["trial_peak_mb"] for r in rows),
    }
    if args.owners:
        figures["owners_mb_per_100_trials"] = {
            who: growth(lambda r, who=who: r["owners_mb"].get(who, 0.0))
            for who in sorted({w for r in rows for w in r["owners_mb"]})
        }
        figures["traced_mb_per_100_trials"] = growth(lambda r: sum(r["owners_mb"].values()))
    print(json.dumps(figures))
    print(
        f"driver peak {rows[0]['driver_peak_mb']} MB at {rows[0]['trials']} trials, {rows[-1]['driver_peak_mb']} MB "
        f"at {rows[-1]['trials']}: {figures['driver_growth_mb_per_100_trials']} MB per 100 trials "
        f"({figures['driver_end_growth_mb_per_100_trials']} at the end of the sweep); "
        f"one trial's peak {figures['trial_peak_mb']} MB"
    )


if __name__ == "__main__":
    main()
