"""What a trial asks Ray for, and whether the cluster can ever give it.

A trial with ``workers: 1`` is one Ray actor holding ``cpu``, ``gpu`` and
``memory``. With ``workers: N > 1`` the trial's own process only coordinates
(it holds no CPU) and Ray Train starts N workers, each holding that much.
Ray would wait forever for resources no node has; :func:`check_fits` says so
before the first trial instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from .spec import Resources, SpecError

#: set on a cluster whose autoscaler adds nodes on demand: trials are not checked against today's nodes
AUTOSCALING_ENV = "TUNE_SERVICE_AUTOSCALING"


def worker_bundle(res: Resources) -> dict[str, float]:
    """Ray resources of one trial (``workers: 1``) or of one of its training workers."""
    bundle = {"CPU": float(res.cpu), "GPU": float(res.gpu)}
    if res.memory is not None:
        bundle["memory"] = float(res.memory)
    return bundle


def trial_resources(res: Resources) -> dict[str, float]:
    """What ``tune.with_resources`` reserves for the trial's own process."""
    if res.workers > 1:
        # it waits on Ray Train's workers, which hold the resources; Tune needs something to reserve,
        # and a byte of memory keeps no worker off any node (a fraction of a CPU would)
        return {"cpu": 0, "memory": 1}
    out = {"cpu": res.cpu, "gpu": res.gpu}
    if res.memory is not None:
        out["memory"] = res.memory
    return out


def _fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}B"


_FIELD = {"CPU": "cpu", "GPU": "gpu", "memory": "memory"}


def check_fits(res: Resources, nodes: list[Mapping[str, float]]) -> None:
    """Raise :class:`SpecError` when no node can hold a trial (or the cluster cannot hold its workers).

    ``nodes`` are the alive nodes' total resources (``ray.nodes()[i]["Resources"]``).
    """
    need = worker_bundle(res)
    fits = [n for n in nodes if all(n.get(k, 0.0) + 1e-9 >= v for k, v in need.items() if v)]
    problems = []
    if not fits:
        for key, value in need.items():
            if not value:
                continue
            largest = max((n.get(key, 0.0) for n in nodes), default=0.0)
            if largest + 1e-9 < value:
                shown = _fmt_bytes(value) if key == "memory" else f"{value:g}"
                have = _fmt_bytes(largest) if key == "memory" else f"{largest:g}"
                problems.append(
                    (
                        f"resources.{_FIELD[key]}",
                        f"got {shown} per {'worker' if res.workers > 1 else 'trial'}, but the largest of the "
                        f"cluster's {len(nodes)} nodes has {have}: no trial could ever start",
                    )
                )
        if not problems:  # each alone fits somewhere, but not together on one node
            problems.append(
                ("resources", f"{need} do not fit together on any of the cluster's {len(nodes)} nodes: {nodes}")
            )
    elif res.workers > 1:
        slots = sum(min(int(n.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v) for n in fits)
        if slots < res.workers:
            problems.append(
                (
                    "resources.workers",
                    f"got {res.workers} workers of {need}, but the cluster holds at most {slots} at once",
                )
            )
    if problems:
        raise SpecError(problems)


def cluster_nodes() -> list[dict[str, float]]:
    """The alive nodes' total resources, from the connected Ray cluster."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def local_node(num_cpus: int | None) -> dict[str, float]:
    """The node an in-process Ray would start here, for a check before starting it.

    Memory is left open (Ray sets its share when it starts; that is checked once it runs).
    """
    import os

    import torch

    return {
        "CPU": float(num_cpus or os.cpu_count() or 1),
        "GPU": float(torch.cuda.device_count()),
        "memory": float("inf"),
    }
