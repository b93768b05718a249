"""Where a trial's MLflow writer should run: on the trial's node (as now) or on the driver's node.

A trial hands each epoch's checkpoint to an MLflow writer and trains on. With a writer on
its own node (the design in ``tune_service/tracking/writers.py``) the hand-off is a folder
of hard links on the same disk, and each node uploads to the tracking server itself. With one
writer on the driver's node, the checkpoint's bytes must reach the driver's node first:
through Ray's object store (a copy in, a transfer, a copy out to a folder the writer uploads
from). This bench times both hand-offs on one machine, with a real checkpoint (the
quickstart's MiniLM, about 90 MB), through a real Ray actor:

- ``link``: stage the folder by hard links, hand its path to an actor on this node;
- ``object_store``: read the files into Ray's object store, an actor gets them and writes
  them to its own folder (on one machine no network is crossed: a lower bound for a
  driver-side writer on another node).

    python bench/writer_placement.py [--repeats 5]

Prints each hand-off's median milliseconds per checkpoint, a JSON line and a summary. The
metrics of an epoch (a few hundred bytes) take the same RPC either way and are not timed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import ray


@ray.remote(num_cpus=0)
class Writer:
    """Stands for the MLflow writer: takes a hand-off and has the files on its disk when it returns."""

    def take_path(self, staged: str) -> int:
        return sum(f.stat().st_size for f in Path(staged).rglob("*") if f.is_file())

    def take_bytes(self, files: dict[str, bytes], dest: str) -> int:
        for name, data in files.items():
            path = Path(dest, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return sum(len(d) for d in files.values())


def checkpoint(where: Path) -> Path:
    """The quickstart's model saved as a trial saves it (safetensors, config, tokenizer)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trainables.text_classification import resolve_model

    source = resolve_model("builtin:minilm")
    folder = where / "model"
    AutoModelForSequenceClassification.from_pretrained(source, num_labels=2).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def by_links(writer, folder: Path, staging: Path) -> float:
    from tune_service.tracking.writers import _stage

    started = time.perf_counter()
    _stage(str(folder), staging)
    ray.get(writer.take_path.remote(str(staging)))
    elapsed = time.perf_counter() - started
    shutil.rmtree(staging)
    return elapsed


def by_object_store(writer, folder: Path, dest: Path) -> float:
    started = time.perf_counter()
    files = {str(f.relative_to(folder)): f.read_bytes() for f in folder.rglob("*") if f.is_file()}
    ray.get(writer.take_bytes.remote(ray.put(files), str(dest)))
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = checkpoint(Path(tmp))
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            writer = Writer.remote()
            ray.get(writer.take_path.remote(str(folder)))  # the actor is up before the clock
            times: dict[str, list[float]] = {"link": [], "object_store": []}
            for i in range(args.repeats):  # alternating, so drift hits both alike
                times["link"].append(by_links(writer, folder, Path(tmp, f"staged-{i}")))
                times["object_store"].append(by_object_store(writer, folder, Path(tmp, f"copied-{i}")))
    finally:
        ray.shutdown()
    ms = {k: round(1000 * statistics.median(v), 1) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:13s} median {ms[k]:8.1f} ms per checkpoint ({', '.join(f'{1000 * t:.0f}' for t in v)})")
    line = {
        "bench": "writer_placement",
        "checkpoint_mb": round(size / 2**20, 1),
        "repeats": args.repeats,
        "link_ms": ms["link"],
        "object_store_ms": ms["object_store"],
        "ratio": round(ms["object_store"] / ms["link"], 1),
    }
    print(json.dumps(line))
    print(
        f"summary: handing a {line['checkpoint_mb']} MB checkpoint to a writer on the trial's node takes "
        f"{ms['link']} ms; through the object store, as a driver-side writer needs, {ms['object_store']} ms "
        f"(x{line['ratio']}), before any network"
    )


if __name__ == "__main__":
    main()
