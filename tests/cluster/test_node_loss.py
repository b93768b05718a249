"""A worker node lost mid-sweep: its trial resumes on another node from its checkpoint, and the sweep completes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from tune_service import run_sweep


def test_a_trial_on_a_lost_node_resumes_on_another_from_its_checkpoint(make_spec, mlflow_server, tmp_path, trial_pids):
    # the head runs no trial (0 CPUs): trials go to the two workers, one each, and one worker is lost
    server = mlflow_server()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        spec = make_spec(
            **{
                "hyperparameters.epochs": 3,
                "hyperparameters.batch_size": 2,  # epochs slow enough for the node to go in the middle of one
                "search": {"strategy": "random", "num_samples": 2, "max_concurrent_trials": 2, "max_failures": 2},
                "mlflow": {"experiment": "node-loss", "reports": False},
            }
        )
        storage = tmp_path / "ray"
        where = {"tracking_uri": server.uri, "storage_path": str(storage), "verbose": 0}
        outcome: dict = {}
        sweep = threading.Thread(
            target=lambda: outcome.update(result=run_sweep(spec, address=cluster.address, **where))
        )
        sweep.start()
        lost = None
        deadline = time.time() + 300
        while lost is None and time.time() < deadline and sweep.is_alive():
            # both trials have a checkpoint: take away the node of the first one, mid-epoch
            if len([p for p in storage.glob("*/*/result.json") if p.stat().st_size]) == 2:
                lost = next(w for w in workers if trial_pids(w))
                cluster.remove_node(lost, allow_graceful=False)  # its raylet and workers killed
            time.sleep(0.1)
        sweep.join(timeout=400)
        assert lost is not None, "the sweep ended before a node could be lost"
        result = outcome["result"]
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()

    assert len(result.trials) == 2
    assert all(t.status == "TERMINATED" and t.epochs == 3 for t in result.trials), result.trials
    client = MlflowClient(result.tracking_uri)
    retried = []
    for trial in result.trials:
        run = client.get_run(trial.mlflow_run_id)
        assert run.info.status == "FINISHED"
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy"))
        assert steps == [1, 2, 3], (trial.trial_id, steps)  # every epoch, once: resumed, not restarted
        if "tune_service.failed_attempts" in run.data.tags:
            retried.append(run)
    # the trial of the lost node, its failed attempt on its run (written by the driver node's writer: the
    # trial's own went with the node)
    (run,) = retried
    assert run.data.tags["tune_service.failed_attempts"] == "1"
    error = Path(client.download_artifacts(run.info.run_id, "errors/attempt-1.txt")).read_text()
    assert "unavailable" in error.lower() or "died" in error.lower(), error[-2000:]
