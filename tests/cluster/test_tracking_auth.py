"""Trials on two Ray nodes stream to a tracking server that requires MLflow's basic auth, and train on the
data the driver prepared once (Ray's object store carries it to the node that did not prepare it)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tune_service import run_sweep
from tune_service.tracking import TrackingError


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


def test_credentials_reach_every_node_and_never_appear_in_runs_artifacts_or_logs(
    cluster, make_spec, mlflow_server, data_gone_after_the_checks, monkeypatch, tmp_path, capfd
):
    password = secrets.token_hex(16)
    server = mlflow_server({"MLFLOW_AUTH": "1", "MLFLOW_AUTH_ADMIN_PASSWORD": password})
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MlflowException, match="401|nauthorized|credentials"):
        MlflowClient(server.uri).search_experiments()  # the server does refuse anonymous clients

    # only the driver's environment holds the credentials: the nodes were started before they were set
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    data = data_gone_after_the_checks  # no trial, on either node, can read it once the checks prepared it
    spec = make_spec(
        **{
            "name": "tiny-auth",
            # one trial per node: the second must not wait for the first's process to be reused on its node
            "search": {"strategy": "grid", "max_concurrent_trials": 2, "reuse_actors": False},
            "hyperparameters.groups.head.lr": {"grid": [0.01, 0.03]},
            "task.dataset.source": str(data),
        }
    )
    storage = tmp_path / "ray"
    result = run_sweep(spec, address=cluster.address, tracking_uri=server.uri, storage_path=str(storage), verbose=1)
    assert not data.exists() and result.model_id  # trained, analysed and packaged from the prepared data

    client = MlflowClient(server.uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    # one trial on each node, each streaming its epochs and its checkpoint
    assert len({r.data.tags["tune_service.node_id"] for r in runs}) == 2
    for run in runs:
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")) == [1, 2]
        assert client.list_artifacts(run.info.run_id, "checkpoints")

    # the password is nowhere: params, tags, artifacts, console, Tune's files, Ray's logs
    parent = client.get_run(result.parent_run_id)
    for run in [parent, *runs]:
        text = " ".join([*run.data.params.values(), *run.data.tags.values(), *run.data.params, *run.data.tags])
        assert password not in text
        local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "artifacts" / run.info.run_id)))
        assert files_containing(local, password.encode()) == []
    out, err = capfd.readouterr()
    assert password not in out and password not in err
    assert files_containing(storage, password.encode()) == []
    session = Path(cluster.head_node.get_session_dir_path())
    assert files_containing(session / "logs", password.encode()) == []


def test_a_store_on_the_drivers_disk_is_refused_for_a_multi_node_cluster(cluster, make_spec, tmp_path):
    db = tmp_path / "mlflow.db"
    with pytest.raises(TrackingError, match="2 nodes.*tracking server"):
        run_sweep(make_spec(), address=cluster.address, tracking_uri=f"sqlite:///{db}", verbose=0)
    assert not db.exists()  # refused before anything was written
