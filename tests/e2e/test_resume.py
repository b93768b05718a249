"""The driver killed with SIGKILL mid-sweep; `tune-service resume` finishes the sweep, losing and repeating nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import yaml
from mlflow.tracking import MlflowClient
from test_cli import CLI, cli


def test_resume_finishes_a_sweep_whose_driver_was_killed(make_spec, tmp_path):
    spec = make_spec(
        **{
            "name": "killed",
            "hyperparameters.epochs": 2,
            "hyperparameters.batch_size": 4,
            "hyperparameters.groups.head.lr": {"loguniform": [1e-3, 1e-1]},
            "search": {"strategy": "bayesian", "num_samples": 3, "max_concurrent_trials": 2, "seed": 0},
            "mlflow": {"reports": False},
        }
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    storage, db = tmp_path / "ray", f"sqlite:///{tmp_path / 'mlflow.db'}"
    where = ["--storage-path", str(storage), "--tracking-uri", db, "--num-cpus", "2"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            [*CLI, "run", str(path), "--sweep-id", "killed-1", *where],
            cwd=tmp_path, env=env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    # kill the driver, and the in-process Ray with it (its process group), once some epochs are checkpointed
    deadline = time.time() + 300
    while len(list(storage.glob("killed-1/*/checkpoint_*"))) < 2 and time.time() < deadline and first.poll() is None:
        time.sleep(0.1)
    assert first.poll() is None, "the sweep ended before the driver could be killed"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL

    client = MlflowClient(db)
    (parent,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`tune_service.sweep_id` = 'killed-1'"
        " and tags.`tune_service.strategy` = 'bayesian'",
    )  # fmt: skip
    assert parent.info.status == "RUNNING"  # nobody closed it: the driver died

    out = tmp_path / "result.json"
    proc = cli("resume", "killed-1", *where, "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "sweep killed-1 resumed" in proc.stdout
    result = json.loads(out.read_text())
    assert result["parent_run_id"] == parent.info.run_id  # the same sweep, not a new one
    assert len(result["trials"]) == 3
    assert all(t["status"] == "TERMINATED" and t["epochs"] == 2 for t in result["trials"]), result["trials"]

    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["tune_service.resumed"] == "1"
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags["tune_service.trial_id"] for r in runs) == sorted(t["trial_id"] for t in result["trials"])
    for run in runs:  # one run per trial, closed, each epoch logged once
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert sorted(steps) == [1, 2], (run.data.tags["tune_service.trial_id"], steps)
