"""A multi-worker trial: the loop (an optimizer per parameter group) under Ray Train's TorchTrainer
(2 gloo workers), inside a Tune sweep."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from tune_service import run_sweep


def test_a_two_worker_trial_trains_ddp_and_rank_0_reports_to_tune_and_mlflow(
    make_spec, where, data_gone_after_the_checks
):
    """Each worker trains on the sweep's prepared data: the file is gone once the checks have read it."""
    spec = make_spec(
        resources={"cpu": 1, "workers": 2},
        **{"mlflow.keep_checkpoints": 2, "task.dataset.source": str(data_gone_after_the_checks)},
    )
    result = run_sweep(spec, **where)

    (trial,) = result.trials
    assert trial.status == "TERMINATED" and trial.epochs == 2
    assert trial.metrics["workers"] == 2  # the loop ran under a 2-rank process group
    # Tune got rank 0's metrics; the checkpoint is Ray Train's, in the sweep's storage
    assert Path(trial.checkpoint).is_relative_to(result.storage_path)
    assert (Path(trial.checkpoint) / "model" / "config.json").is_file()
    assert result.best_checkpoint == trial.checkpoint

    client = MlflowClient(result.tracking_uri)
    run = client.get_run(trial.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2]  # rank 0 alone streamed, each epoch once
    assert {m.value for m in client.get_metric_history(run.info.run_id, "workers")} == {2.0}
    kept = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert kept == {"checkpoints/epoch-001", "checkpoints/epoch-002"}
    assert result.model_version is not None  # the registry takes a multi-worker trial's best too
