"""Sweeps on a real multi-node Ray cluster started by cluster/local-cluster.sh, submitted as Ray Jobs.

The cluster: a head and a worker (1 CPU each; the worker has one logical GPU),
Ray token authentication on, an MLflow server, and Tune's storage in one folder
both nodes share. The client side is this package's CLI and Python API.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tune_service import SweepJob, list_sweeps

pytestmark = pytest.mark.slow


def cli(cluster, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tune_service.cli", *args],
        env={**cluster.client_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_spec(make_spec, path: Path, name: str, **overrides) -> str:
    spec = make_spec(
        name=name,
        **{"search.num_samples": 2, "hyperparameters.groups.encoder.lr": {"loguniform": [1e-4, 1e-2]}},
        **overrides,
    )
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture
def api(local_cluster, monkeypatch):
    """This process set up as the README says: the env `local-cluster.sh up` prints."""
    for key, value in local_cluster.env.items():
        monkeypatch.setenv(key, value)
    return local_cluster


def test_two_sweeps_submitted_at_once_complete_apart_spread_over_nodes(api, make_spec, tmp_path):
    specs = [
        write_spec(make_spec, tmp_path / f"{n}.yaml", n, **{"hyperparameters.epochs": 1}) for n in ("alpha", "beta")
    ]
    ids = []
    for spec in specs:
        done = cli(api, "submit", spec)
        assert done.returncode == 0, done.stderr
        ids.append(done.stdout.strip().splitlines()[-1])
    assert ids[0].startswith("alpha-") and ids[1].startswith("beta-")

    listed = cli(api, "list")
    assert all(i in listed.stdout for i in ids)
    ray_list = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "job", "list"], env=api.client_env, capture_output=True, text=True
    )
    assert all(f"submission_id='{i}'" in ray_list.stdout for i in ids), ray_list.stderr  # a job like any other

    # an orchestration job re-attaches by id only (a new handle, as after its own restart)
    results = [SweepJob(i).result(timeout=600) for i in ids]
    for job_id, result in zip(ids, results):
        assert SweepJob(job_id).status() == "SUCCEEDED"
        assert result.sweep_id == job_id and len(result.trials) == 2
        assert result.tracking_uri == api.env["MLFLOW_TRACKING_URI"]
        # Tune's storage is the folder both nodes share; each sweep has its own
        assert result.storage_path == f"{api.env['TUNE_SERVICE_STORAGE_PATH']}/{job_id}"
        for trial in result.trials:
            assert trial.status == "TERMINATED" and Path(trial.checkpoint).is_dir()
            assert Path(trial.checkpoint).is_relative_to(result.storage_path)

    mlflow = MlflowClient(api.env["MLFLOW_TRACKING_URI"])
    nodes = set()
    for job_id, result in zip(ids, results):
        parent = mlflow.get_run(result.parent_run_id)
        assert parent.data.tags["tune_service.ray_submission_id"] == job_id
        assert parent.info.status == "FINISHED"
        children = mlflow.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
        assert sorted(r.data.tags["tune_service.trial_id"] for r in children) == sorted(
            t.trial_id for t in result.trials
        )
        nodes |= {r.data.tags["tune_service.node_id"] for r in children}
    assert len(nodes) == 2, "the four trials ran on one node only"

    best = cli(api, "best", ids[0])
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["best_config"] == results[0].best_config
    assert "Sweep alpha" in SweepJob(ids[0]).logs()
    assert [s["job_id"] for s in list_sweeps() if s["job_id"] in ids] == ids  # oldest first


def test_stopping_a_sweep_ends_its_mlflow_runs_killed(api, make_spec, tmp_path):
    spec = write_spec(make_spec, tmp_path / "long.yaml", "long", **{"hyperparameters.epochs": 50})
    job = SweepJob(cli(api, "submit", spec).stdout.strip().splitlines()[-1])
    seen = ""
    for chunk in job.follow():  # `tune-service logs --follow`: the driver's output as it comes
        seen += chunk
        if "epoch 2/50" in seen:
            break
    assert "epoch 2/50" in seen, seen[-3000:]
    assert job.status() == "RUNNING"
    stopped = cli(api, "stop", job.job_id)
    assert stopped.returncode == 0 and "stopping" in stopped.stdout
    assert job.wait(timeout=120) == "STOPPED"
    done = cli(api, "wait", job.job_id)
    assert done.returncode == 1 and "STOPPED" in done.stdout

    mlflow = MlflowClient(api.env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs([mlflow.get_experiment_by_name("long").experiment_id], "tags.tune_service.sweep_id != ''")
    assert runs, "the stopped sweep left no runs"
    statuses = {r.info.run_name: r.info.status for r in runs}
    assert "RUNNING" not in statuses.values(), statuses
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "KILLED"


def test_run_address_fractional_gpus_share_the_gpu_node_and_impossible_trials_are_refused(api, make_spec, tmp_path):
    address = api.env["RAY_ADDRESS"]
    spec = write_spec(make_spec, tmp_path / "shared.yaml", "shared-gpu", resources={"cpu": 0.5, "gpu": 0.5})
    out = tmp_path / "result.json"
    done = cli(api, "run", spec, "--address", address, "--json", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    mlflow = MlflowClient(api.env["MLFLOW_TRACKING_URI"])
    runs = [mlflow.get_run(t["mlflow_run_id"]) for t in result["trials"]]
    # only the worker has a GPU: both half-GPU trials ran there, at the same time
    assert len({r.data.tags["tune_service.node_id"] for r in runs}) == 1
    (a_start, a_end), (b_start, b_end) = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert b_start < a_end, "the two half-GPU trials did not share the GPU"

    for resources, field, words in [
        ({"gpu": 2}, "resources.gpu", "got 2 per trial, but the largest of the cluster's 2 nodes has 1"),
        ({"cpu": 1, "workers": 3}, "resources.workers", "got 3 workers"),
    ]:
        bad = write_spec(make_spec, tmp_path / f"{field}.yaml", f"never-{field.split('.')[1]}", resources=resources)
        refused = cli(api, "run", bad, "--address", address)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert field in refused.stderr and words in refused.stderr
        assert mlflow.get_experiment_by_name(f"never-{field.split('.')[1]}") is None  # nothing written


def test_token_auth_refuses_a_client_without_the_token_and_the_token_is_never_logged(api, make_spec, tmp_path):
    wrong = cli(api, "list", env={"RAY_AUTH_TOKEN_PATH": "", "RAY_AUTH_TOKEN": "0" * 64})
    assert wrong.returncode == 2
    assert "error:" in wrong.stderr and "token" in wrong.stderr.lower()
    assert "Traceback" not in wrong.stderr

    token = api.token
    assert len(token) == 64
    seen = [wrong.stdout, wrong.stderr]
    for job in list_sweeps():
        seen.append(SweepJob(job["job_id"]).logs())
        seen.append(json.dumps(job, default=str))
    # every node's Ray logs (each node has its own temp dir under the script's root) and the script's logs
    roots = [api.dir / "logs", Path(f"/tmp/ray-local-{api.ports['RAY_PORT']}")]
    files = [p for d in roots for p in d.rglob("*") if p.is_file() and "logs" in p.parts]
    assert len(files) > 10
    for text in seen + [p.read_text(errors="replace") for p in files]:
        assert token not in text
