"""Full fine-tuning against adapters on the quickstart task, four ways, side by side.

Each way searches the pretrained MiniLM on the quickstart's data (Rotten Tomatoes, 640
reviews to train on, 400 to validate) with the same strategy (random search from the
middle of its space), the same seed, 2 trials at a time and the same wall-clock budget,
one way after another in this process:

- ``full``: every weight trained, the encoder and the head each at their own searched rate
  (the quickstart as it is);
- ``layer_decay``: the same, with the encoder's layer-wise rate decay searched too
  (the embeddings learn at the lowest rate rather than staying frozen);
- ``lora``: a LoRA adapter on the attention (rank 8), one searched rate for every trained
  parameter (the A and B matrices and the head);
- ``lora_plus``: the same adapter, B at a searched multiple of A's rate (LoRA+), the head
  at a rate of its own.

    python bench/adapters.py [--budget 300] [--target 0.70] [--ways full,layer_decay,lora,lora_plus] \
        [--train-size 640] [--validation-size 400]

Prints one row per way: trials, epochs, best validation accuracy within the budget,
seconds from the sweep's start to the first epoch at or above the target (- if never),
trainable parameters, the size of a checkpoint's model folder (what ``load_best`` fetches)
and of the whole checkpoint (with the optimizer state), and training samples per second
(the median over every epoch of the way).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import local_store
from mlflow.tracking import MlflowClient

from tune_service import load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
CPUS = 2
WAYS = ("full", "layer_decay", "lora", "lora_plus")
SCHEDULE = {"scheduler": "linear", "warmup_ratio": 0.1}
ADAPTER = {"type": "lora", "target_modules": "attention"}
GROUPS = {
    "lora": {
        "lora_A": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}, **SCHEDULE},
        "lora_B": {"lr": {"relative_to": "lora_A", "ratio": 1.0}, **SCHEDULE},
        "head": {"lr": {"relative_to": "lora_A", "ratio": 1.0}, **SCHEDULE},
    },
    "lora_plus": {
        "lora_A": {"lr": {"loguniform": [1.0e-4, 3.0e-3]}, **SCHEDULE},
        "lora_B": {"lr": {"relative_to": "lora_A", "ratio": {"loguniform": [1, 64]}}, **SCHEDULE},
        "head": {"lr": {"loguniform": [1.0e-3, 3.0e-2]}},
    },
}


def spec_for(way: str, args) -> dict:
    """The quickstart spec, changed for ``way``."""
    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["name"] = f"bench-{way.replace('_', '-')}"
    if args.train_size:
        data["task"]["dataset"].update(train_size=args.train_size, validation_size=args.validation_size)
    hp = data["hyperparameters"]
    if way == "layer_decay":
        hp["groups"]["encoder"]["layer_decay"] = {"uniform": [0.5, 1.0]}
        hp["frozen_layers"] = 0
    elif way in GROUPS:
        data["task"]["adapter"] = dict(ADAPTER)
        hp["adapter"] = {"r": 8, "alpha": 16, "dropout": 0.05}
        hp["groups"] = copy.deepcopy(GROUPS[way])
        hp["frozen_layers"] = 0
    data["search"].update(seed=args.seed, time_budget_s=args.budget, num_samples=64, max_concurrent_trials=CPUS)
    return data


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def checkpoint_sizes(storage: Path) -> tuple[float | None, float | None]:
    """MB of a checkpoint's model folder and of the whole checkpoint (the largest kept, of any trial)."""
    checkpoints = [c for c in storage.rglob("checkpoint_*") if (c / "model").is_dir()]
    if not checkpoints:
        return None, None
    return max(folder_mb(c / "model") for c in checkpoints), max(folder_mb(c) for c in checkpoints)


def measure(way: str, args, where: Path) -> dict:
    started = time.time()
    with local_store(where) as uri:
        result = run_sweep(
            spec_for(way, args), tracking_uri=uri, storage_path=str(where / "ray"), verbose=0, num_cpus=CPUS
        )
    client = MlflowClient(uri)
    t0 = client.get_run(result.parent_run_id).info.start_time / 1000
    runs = [t.mlflow_run_id for t in result.trials if t.mlflow_run_id]

    def history(metric: str) -> list:
        return [m for run in runs for m in client.get_metric_history(run, metric)]

    epochs = [(m.timestamp / 1000 - t0, m.value) for m in history("val_accuracy")]
    model_mb, checkpoint_mb = checkpoint_sizes(where / "ray")
    return {
        "way": way,
        "trials": len(result.trials),
        "epochs": len(epochs),
        "best": max((acc for _, acc in epochs), default=None),
        "to_target": min((at for at, acc in epochs if acc >= args.target), default=None),
        "trainable_params": max((m.value for m in history("trainable_params")), default=None),
        "model_mb": model_mb,
        "checkpoint_mb": checkpoint_mb,
        "samples_per_s": statistics.median([m.value for m in history("train_samples_per_s")] or [0]),
        "wall": time.time() - started,
    }


def cell(value, form: str, width: int) -> str:
    return f"{(format(value, form) if value is not None else '-'):>{width}s}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300, help="seconds per way")
    parser.add_argument("--target", type=float, default=0.70, help="validation accuracy to reach")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--train-size", type=int, default=None, help="default: the quickstart's (640)")
    parser.add_argument("--validation-size", type=int, default=None, help="default: the quickstart's (400)")
    args = parser.parse_args()
    rows = []
    for way in args.ways.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            rows.append(measure(way, args, Path(tmp)))
        print(f"done {way}: {rows[-1]}", flush=True)
    print(f"\nquickstart task, MiniLM, {args.budget:.0f}s a way, random search, seed {args.seed}, 2 trials at a time")
    target = f"to {args.target} (s)"
    header = ("way", "trials", "epochs", "best acc", target, "trained", "model MB", "ckpt MB", "samples/s")
    print(f"{header[0]:12s} " + " ".join(f"{h:>10s}" for h in header[1:]))
    for r in rows:
        cells = [
            cell(r["trials"], "d", 10), cell(r["epochs"], "d", 10), cell(r["best"], ".3f", 10),
            cell(r["to_target"], ".0f", 10), cell(r["trainable_params"], ",.0f", 10), cell(r["model_mb"], ".1f", 10),
            cell(r["checkpoint_mb"], ".1f", 10), cell(r["samples_per_s"], ".0f", 10),
        ]  # fmt: skip
        print(f"{r['way']:12s} " + " ".join(cells))
    figures = {
        "bench": "adapters",
        "budget_s": args.budget,
        "target": args.target,
        "seed": args.seed,
        **({"train_size": args.train_size} if args.train_size else {}),
        "rows": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
