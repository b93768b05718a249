"""The driver SIGKILLed mid-sweep; `tune-service resume` finishes it: each trial in its own run, no epoch twice."""

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
    # and Tune has saved its state after them (a kill while Tune writes it leaves it empty: see the end)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        if len(list(storage.glob("killed-1/*/checkpoint_*"))) >= 2 and _readable_state(storage / "killed-1"):
            break
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
    by_trial = {r.data.tags["tune_service.trial_id"]: r for r in runs}
    assert len(by_trial) == len(runs)  # one run per trial id
    trial_ids = {t["trial_id"] for t in result["trials"]}
    assert trial_ids <= set(by_trial)
    # a trial Tune had started after its last snapshot, when the driver died, is not restored: its run
    # ends KILLED and the search ran another trial in its place
    assert {by_trial[t].info.status for t in set(by_trial) - trial_ids} <= {"KILLED"}
    for run in (by_trial[t] for t in trial_ids):  # every trial's run closed, each epoch logged once
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert sorted(steps) == [1, 2], (run.data.tags["tune_service.trial_id"], steps)

    # a driver killed while Tune writes its state leaves the file empty: resume refuses it, saying what to do
    newest = sorted((storage / "killed-1").glob("experiment_state-*.json"))[-1]
    newest.write_text("")
    refused = cli("resume", "killed-1", *where, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert str(newest) in refused.stderr and "search.warm_start" in refused.stderr, refused.stderr[-3000:]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"  # nothing touched


def _readable_state(sweep_dir) -> bool:
    """Whether Tune's newest experiment state file in storage is whole (it is written in place)."""
    states = sorted(sweep_dir.glob("experiment_state-*.json"))
    try:
        return bool(states) and bool(json.loads(states[-1].read_text())["trial_data"])
    except (OSError, ValueError, KeyError):
        return False


def test_ctrl_c_stops_the_sweep_cleanly_and_it_resumes(make_spec, tmp_path):
    spec = make_spec(
        **{
            "name": "interrupted",
            "hyperparameters.epochs": 3,
            "hyperparameters.batch_size": 4,
            "search": {"strategy": "random", "num_samples": 2, "max_concurrent_trials": 2, "seed": 0},
            "mlflow": {"reports": False},
        }
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    storage, db = tmp_path / "ray", f"sqlite:///{tmp_path / 'mlflow.db'}"
    where = ["--storage-path", str(storage), "--tracking-uri", db, "--num-cpus", "2"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    first = subprocess.Popen(
        [*CLI, "run", str(path), "--sweep-id", "ctrl-c", *where],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 300
    while not any(storage.glob("ctrl-c/*/checkpoint_*")) and time.time() < deadline and first.poll() is None:
        time.sleep(0.1)
    assert first.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground process group
    out, _ = first.communicate(timeout=180)
    assert first.returncode == 130, out[-3000:]
    assert "interrupted: sweep ctrl-c interrupted; finish it with: tune-service resume ctrl-c" in out, out[-3000:]

    client = MlflowClient(db)
    (parent,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`tune_service.sweep_id` = 'ctrl-c'"
        " and tags.`tune_service.strategy` = 'random'",
    )  # fmt: skip
    assert parent.info.status == "KILLED"
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert children and {r.info.status for r in children} == {"KILLED"}  # stopped mid-training, none left RUNNING

    proc = cli("resume", "ctrl-c", *where, "--json", str(tmp_path / "result.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["parent_run_id"] == parent.info.run_id
    assert len(result["trials"]) == 2
    assert all(t["status"] == "TERMINATED" and t["epochs"] == 3 for t in result["trials"]), result["trials"]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(runs) == 2
    for run in runs:  # the KILLED runs reopened and finished, each epoch logged once
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert sorted(steps) == [1, 2, 3], steps
