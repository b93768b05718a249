"""Real sweeps of a tiny BERT through Ray Tune (in-process), tracked in a real MLflow store."""

from __future__ import annotations

import json
import os

import pytest
import ray
from mlflow.tracking import MlflowClient

from tune_service import run_sweep


def children(client: MlflowClient, result) -> list:
    return client.search_runs(
        [result.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )


def test_grid_sweep_lands_in_mlflow_with_parent_children_metrics_and_checkpoints(make_spec, where):
    spec = make_spec(
        **{
            "search": {"strategy": "grid", "max_concurrent_trials": 2},
            "hyperparameters.groups.head.lr": {"grid": [0.01, 0.03]},
            "hyperparameters.groups.encoder.lr": 3e-3,
            "mlflow": {"experiment": "integration-grid"},
        }
    )
    result = run_sweep(spec, **where)

    # the result: every trial, the best one consistent with them, JSON all the way
    assert len(result.trials) == 2 and {t.status for t in result.trials} == {"TERMINATED"}
    assert sorted(t.config["groups"]["head"]["lr"] for t in result.trials) == [0.01, 0.03]
    best = max(result.trials, key=lambda t: t.metrics["val_accuracy"])
    assert result.best_trial_id == best.trial_id and result.best_value == best.metrics["val_accuracy"]
    assert result.best_value > 0.6  # the generated task is learnable: clearly above chance
    assert os.path.isfile(os.path.join(result.best_checkpoint, "model", "model.safetensors"))
    assert json.loads(result.to_json())["best_trial_id"] == result.best_trial_id
    assert ray.is_initialized()  # a Ray it did not start is left running

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tune_service.strategy"] == "grid"
    assert parent.data.tags["tune_service.sweep_id"] == result.sweep_id
    assert parent.data.tags["tune_service.best_run_id"] == result.best_run_id
    assert parent.data.metrics["best_val_accuracy"] == result.best_value
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.yaml", "search_space.json", "best_config.json", "trials.txt"} <= parent_files
    space = json.loads(open(client.download_artifacts(parent.info.run_id, "search_space.json")).read())
    assert space["groups"]["head"]["lr"] == {"grid": [0.01, 0.03]}

    runs = children(client, result)
    assert len(runs) == 2
    by_id = {r.info.run_id: r for r in runs}
    assert set(by_id) == {t.mlflow_run_id for t in result.trials}
    for trial in result.trials:
        run = by_id[trial.mlflow_run_id]
        assert run.info.status == "FINISHED"
        assert float(run.data.params["groups.head.lr"]) == trial.config["groups"]["head"]["lr"]
        assert run.data.params["groups.head.optimizer"] == "sgd"
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [1, 2]
        assert {"val_loss", "val_f1", "train_loss", "lr/encoder", "lr/head"} <= set(run.data.metrics)
        # the top checkpoint (keep_checkpoints 1) by val_accuracy, uploaded from the trial's node
        best_epoch = max(history, key=lambda m: (m.value, m.step)).step
        kept = run.data.tags["tune_service.best_checkpoint"]
        assert kept == f"checkpoints/epoch-{best_epoch:03d}"
        assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == [kept]
        files = {a.path for a in client.list_artifacts(run.info.run_id, kept)}
        assert {f"{kept}/model.safetensors", f"{kept}/config.json"} <= files
    assert by_id[result.best_run_id].data.tags.get("tune_service.best") == "true"
    others = [r for r in runs if r.info.run_id != result.best_run_id]
    assert all("tune_service.best" not in r.data.tags for r in others)


def sampled(result) -> list[tuple]:
    trials = sorted(result.trials, key=lambda t: t.trial_id[-5:])
    return [(t.config["groups"]["encoder"]["lr"], t.config["batch_size"]) for t in trials]


def test_random_sweep_is_reproducible_and_respects_concurrency(make_spec, where, tmp_path):
    overrides = {
        "search": {"strategy": "random", "num_samples": 2, "max_concurrent_trials": 1, "seed": 11},
        "hyperparameters.groups.encoder.lr": {"loguniform": [1e-4, 1e-2]},
        "hyperparameters.batch_size": {"choice": [8, 16, 32]},
        "hyperparameters.epochs": 1,
        "task.dataset.train_size": 48,
    }
    first = run_sweep(make_spec(**overrides), **where)
    again = run_sweep(make_spec(**overrides), **where)
    other = dict(overrides, search={**overrides["search"], "seed": 12})
    different = run_sweep(make_spec(**other), **where)

    assert sampled(first) == sampled(again)
    assert sampled(first) != sampled(different)
    assert len({lr for lr, _ in sampled(first)}) == 2
    # the first trial runs the middle of the space (center_first), the second a draw
    assert sampled(first)[0] == (pytest.approx(1e-3), 16) == sampled(different)[0]

    # one trial at a time: the MLflow runs' lifetimes do not overlap
    client = MlflowClient(first.tracking_uri)
    spans = sorted((r.info.start_time, r.info.end_time) for r in children(client, first))
    assert len(spans) == 2
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
