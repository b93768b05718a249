"""Faults survived: a trial whose process is killed mid-sweep is retried from its last checkpoint."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from tune_service import run_sweep


def trial_processes() -> list[int]:
    """PIDs of this Ray's workers running a trial: children of its raylet titled ``ray::ImplicitFunc.train``."""
    from ray._private import ray_constants, worker

    raylet = worker._global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if cmdline.startswith(b"ray::ImplicitFunc.train") and parent == raylet:
                pids.append(int(entry.name))
    return pids


def test_a_killed_trial_process_is_retried_from_its_last_checkpoint(make_spec, where):
    spec = make_spec(
        **{
            "hyperparameters.epochs": 3,
            "hyperparameters.batch_size": 2,  # epochs slow enough to be killed in the middle of one
            "search": {"strategy": "random", "num_samples": 1, "max_failures": 1},
            "mlflow": {"experiment": "integration-failures"},
        }
    )
    storage = Path(where["storage_path"])
    outcome: dict = {}
    sweep = threading.Thread(target=lambda: outcome.update(result=run_sweep(spec, **where)))
    sweep.start()
    killed = None
    deadline = time.time() + 240
    while killed is None and time.time() < deadline and sweep.is_alive():
        # the first epoch's checkpoint is in Tune's storage: kill the trial while it trains the next
        if any(storage.glob("*/*/checkpoint_000000")) and trial_processes():
            killed = trial_processes()[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    sweep.join(timeout=300)
    assert killed is not None, "the trial ended before it could be killed"
    result = outcome["result"]

    (trial,) = result.trials
    assert trial.status == "TERMINATED" and trial.epochs == 3  # the sweep completed the trial
    client = MlflowClient(result.tracking_uri)
    run = client.get_run(trial.mlflow_run_id)
    assert run.info.status == "FINISHED"
    # the failed attempt is on the run: a tag, a metric step and the error Tune recorded
    assert run.data.tags["tune_service.failed_attempts"] == "1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "failed_attempts")] == [1]
    error = Path(client.download_artifacts(run.info.run_id, "errors/attempt-1.txt")).read_text()
    assert "died" in error.lower() or "actor" in error.lower(), error[-2000:]
    # retried from the checkpoint, not from scratch: every epoch once in the run
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3]
