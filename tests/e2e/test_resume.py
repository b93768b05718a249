"""A sweep stopped by Ctrl-C, then its resume's driver SIGKILLed; `tune-service resume` finishes it: each trial
in its own run, no epoch twice. One sweep for both ways a driver ends early (each costs a fresh process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import yaml
from mlflow.tracking import MlflowClient
from test_cli import CLI, cli


def test_a_sweep_stopped_by_ctrl_c_then_killed_mid_resume_finishes_on_resume(make_spec, tmp_path):
    spec = make_spec(
        **{
            "name": "stopped",
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
    client = MlflowClient(db)

    # Ctrl-C once an epoch is checkpointed: the runs end KILLED and the console says how to go on
    first = _driver(["run", str(path), "--sweep-id", "stopped"], where, tmp_path, "first.log")
    _wait_until(first, lambda: any(storage.glob("stopped/*/checkpoint_*")))
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground process group
    first.wait(timeout=180)
    out = (tmp_path / "first.log").read_text()
    assert first.returncode == 130, out[-3000:]
    assert "interrupted: sweep stopped interrupted; finish it with: tune-service resume stopped" in out, out[-3000:]
    (parent,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`tune_service.sweep_id` = 'stopped'"
        " and tags.`tune_service.strategy` = 'bayesian'",
    )  # fmt: skip
    assert parent.info.status == "KILLED"
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert children and {r.info.status for r in children} == {"KILLED"}  # stopped mid-training, none left RUNNING

    # the resume's driver SIGKILLed (and its in-process Ray, its process group) once it has checkpointed more
    # epochs and Tune has saved its state after them (a kill while Tune writes it leaves it empty: see the end)
    checkpoints, resumed_at = len(list(storage.glob("stopped/*/checkpoint_*"))), time.time()
    second = _driver(["resume", "stopped"], where, tmp_path, "second.log")
    _wait_until(
        second,
        lambda: (
            len(list(storage.glob("stopped/*/checkpoint_*"))) > checkpoints
            and _readable_state(storage / "stopped", newer_than=resumed_at)
        ),
    )
    os.killpg(second.pid, signal.SIGKILL)
    second.wait(timeout=60)
    assert second.returncode == -signal.SIGKILL
    assert client.get_run(parent.info.run_id).info.status == "RUNNING"  # reopened, and nobody closed it

    out = tmp_path / "result.json"
    proc = cli("resume", "stopped", *where, "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "sweep stopped resumed" in proc.stdout
    result = json.loads(out.read_text())
    assert result["parent_run_id"] == parent.info.run_id  # the same sweep, not a new one
    assert len(result["trials"]) == 3
    assert all(t["status"] == "TERMINATED" and t["epochs"] == 2 for t in result["trials"]), result["trials"]

    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["tune_service.resumed"] == "2"
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_trial = {r.data.tags["tune_service.trial_id"]: r for r in runs}
    assert len(by_trial) == len(runs)  # one run per trial id
    trial_ids = {t["trial_id"] for t in result["trials"]}
    assert trial_ids <= set(by_trial)
    # a trial Tune had started after its last snapshot, when the driver died, is not restored: its run
    # ends KILLED and the search ran another trial in its place
    assert {by_trial[t].info.status for t in set(by_trial) - trial_ids} <= {"KILLED"}
    for run in (by_trial[t] for t in trial_ids):  # every trial's run reopened and closed, each epoch logged once
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert sorted(steps) == [1, 2], (run.data.tags["tune_service.trial_id"], steps)

    # a driver killed while Tune writes its state leaves the file empty: resume refuses it, saying what to do
    newest = sorted((storage / "stopped").glob("experiment_state-*.json"))[-1]
    newest.write_text("")
    refused = cli("resume", "stopped", *where, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert str(newest) in refused.stderr and "search.warm_start" in refused.stderr, refused.stderr[-3000:]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"  # nothing touched


def _driver(args: list[str], where: list[str], cwd, log_name: str) -> subprocess.Popen:
    """The CLI in a process group of its own (its in-process Ray with it), output to ``cwd/log_name``."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(cwd / log_name, "w") as log:
        return subprocess.Popen([*CLI, *args, *where], cwd=cwd, env=env, stdout=log, stderr=log,
                                start_new_session=True)  # fmt: skip


def _wait_until(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep ended before its driver could be stopped"


def _readable_state(sweep_dir, newer_than: float = 0.0) -> bool:
    """Whether Tune's newest experiment state file in storage is whole (it is written in place), and written
    after ``newer_than``."""
    states = sorted(sweep_dir.glob("experiment_state-*.json"))
    try:
        return (bool(states) and states[-1].stat().st_mtime > newer_than
                and bool(json.loads(states[-1].read_text())["trial_data"]))  # fmt: skip
    except (OSError, ValueError, KeyError):
        return False
