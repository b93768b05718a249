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


def test_grid_sweep_lands_in_mlflow_with_parent_children_metrics_and_checkpoints(make_spec, where, sentiment_csv_of):
    # 300 rows, a fifth of them held out as the test split: the trials train on as many as on the usual 240
    source = sentiment_csv_of(300)
    spec = make_spec(
        **{
            "search": {"strategy": "grid", "max_concurrent_trials": 2},
            "hyperparameters.groups.head.lr": {"grid": [0.01, 0.03]},
            "hyperparameters.groups.encoder.lr": 3e-3,
            "mlflow": {"experiment": "integration-grid"},
            # a fifth of the rows held out before anything else; both trials scored on them at the end
            "task.dataset.source": source,
            "task.dataset.test_split": 0.2,
            "search.test_top_k": 2,
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
    ends = {k: v for k, v in parent.data.metrics.items() if k.startswith("end/")}  # how long the end's steps took
    steps = ("summary", "best_trials", "reports", "registry", "error_analysis")
    assert {f"end/{step}_s" for step in steps} <= set(ends)
    assert min(ends.values()) >= 0 and ends["end/registry_s"] > 0.1  # the best model was packaged and registered
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
    check_test_scores(result, spec, client)
    check_error_analysis(result, client)


def check_test_scores(result, spec, client) -> None:
    """The finalists' test scores: from their best checkpoints, on rows no trial saw, everywhere they belong."""
    from trainables.loop import checkpoint_model
    from trainables.text_classification import TextClassification
    from tune_service import load_spec
    from tune_service.console import summary

    for trial in result.trials:
        assert 0.0 <= trial.test_metrics["test_accuracy"] <= 1.0
        assert {"test_loss", "test_f1"} <= set(trial.test_metrics)
        logged = client.get_run(trial.mlflow_run_id).data.metrics  # after the search, at its last epoch
        assert logged["test_accuracy"] == pytest.approx(trial.test_metrics["test_accuracy"])
    assert result.test_metrics == next(t.test_metrics for t in result.trials if t.trial_id == result.best_trial_id)
    assert client.get_run(result.parent_run_id).data.metrics["test_accuracy"] == pytest.approx(
        result.test_metrics["test_accuracy"]
    )
    # the same score again, here, from the best checkpoint on the held-out rows
    task = load_spec(spec).task.model_dump(mode="json")
    task["dataset"] = {**task["dataset"], "part": "test", "validation_size": None}
    best = next(t for t in result.trials if t.trial_id == result.best_trial_id)
    scorer = TextClassification(task)
    again = scorer.evaluate(checkpoint_model(scorer, best.config, os.path.join(best.checkpoint, "model"), RUN))
    assert again["val_accuracy"] == pytest.approx(result.test_metrics["test_accuracy"])
    if result.model_version:
        version = client.get_model_version(result.name, result.model_version)
        assert float(version.tags["test_accuracy"]) == pytest.approx(result.test_metrics["test_accuracy"])
    assert "On the test split, which no trial saw (val_accuracy against test_accuracy)" in summary(result, [])


RUN = {"metric": "val_accuracy", "mode": "max", "num_threads": 1}


def check_error_analysis(result, client) -> None:
    """The winner's confusion matrix, per-class table and wrong examples agree with each other and its score."""
    import pandas as pd

    run = result.best_run_id
    files = {a.path for a in client.list_artifacts(run, "error_analysis")}
    assert {f"error_analysis/{f}" for f in ("confusion_matrix.png", "confusion_matrix.json", "per_class.json",
                                            "errors.json")} <= files  # fmt: skip
    matrix = json.load(open(client.download_artifacts(run, "error_analysis/confusion_matrix.json")))["matrix"]
    total, right = sum(map(sum, matrix)), sum(matrix[i][i] for i in range(len(matrix)))
    assert right / total == pytest.approx(result.best_value)  # the best checkpoint is the best epoch's model

    def table(name: str) -> pd.DataFrame:
        data = json.load(open(client.download_artifacts(run, f"error_analysis/{name}")))
        return pd.DataFrame(data["data"], columns=data["columns"])

    per_class = table("per_class.json")
    assert per_class["support"].tolist() == [sum(row) for row in matrix]
    assert per_class["recall"].tolist() == pytest.approx([matrix[i][i] / sum(matrix[i]) for i in range(len(matrix))])
    errors = table("errors.json")
    assert len(errors) == total - right and (errors["true"] != errors["predicted"]).all()


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


def test_cross_validated_sweep_reports_the_folds_mean_and_refits_the_winner(
    make_spec, where, sentiment_csv, data_gone_after_the_checks
):
    """And every fold, the refit and the test split's scoring train and score on the data prepared once."""
    from trainables.data import load_text_data
    from tune_service import load_spec
    from tune_service.console import summary

    spec = make_spec(
        **{
            "task.dataset.source": str(data_gone_after_the_checks),
            "search": {
                "strategy": "random",
                "num_samples": 2,
                "seed": 3,
                "cross_validation": {"folds": 3, "refit": True},
            },  # fmt: skip
            "hyperparameters.groups.head.lr": {"loguniform": [3e-3, 3e-2]},
            "task.dataset.test_split": 0.2,
        }
    )
    result = run_sweep(spec, **where)
    searched = [t for t in result.trials if "refits" not in t.config]
    assert len(searched) == 2 and {t.status for t in result.trials} == {"TERMINATED"}
    client = MlflowClient(result.tracking_uri)
    for trial in searched:
        assert trial.metrics["folds"] == 3 and 0 <= trial.metrics["best_fold"] < 3
        assert trial.metrics["val_accuracy_std"] >= 0.0
        run = client.get_run(trial.mlflow_run_id)
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy_std")) == [1, 2]
        # each trial's checkpoint holds every fold; MLflow gets the best fold's model alone
        assert sorted(os.listdir(os.path.join(trial.checkpoint, "folds"))) == ["0", "1", "2"]
        kept = run.data.tags["tune_service.best_checkpoint"]
        assert not any("folds" in a.path for a in client.list_artifacts(run.info.run_id, kept))
    winner = max(searched, key=lambda t: t.metrics["val_accuracy"])
    assert result.best_value == winner.metrics["val_accuracy"]  # the folds' mean stays the estimate

    # the refit: the winner's config on every training row for its best epoch's count, and the sweep's model
    refitted = next(t for t in result.trials if "refits" in t.config)
    assert result.refit == {"trial_id": refitted.trial_id, "winner": winner.trial_id, "epochs": refitted.epochs}
    assert refitted.config["epochs"] == refitted.epochs == winner.metrics["epoch"]
    assert refitted.config["groups"] == winner.config["groups"] and "folds" not in refitted.metrics
    assert client.get_run(refitted.mlflow_run_id).data.tags["tune_service.refits"] == winner.trial_id
    assert result.best_trial_id == refitted.trial_id and result.best_run_id == refitted.mlflow_run_id
    assert result.best_checkpoint == refitted.checkpoint and not os.path.exists(
        os.path.join(refitted.checkpoint, "folds")
    )
    assert result.test_metrics and result.test_metrics == refitted.test_metrics  # the refit model is scored
    if result.model_version:
        assert client.get_model_version(result.name, result.model_version).run_id == refitted.mlflow_run_id
    text = summary(result, [])
    assert "(mean of 3 folds; the checkpoint is fold" in text and f"Refit: trial {refitted.trial_id}" in text

    # the winner's error analysis is on its best fold's validation part: every row of it, the fold's own score
    matrix = json.load(open(client.download_artifacts(winner.mlflow_run_id, "error_analysis/confusion_matrix.json")))
    task = load_spec(spec).trial_task()
    rows = {**task["dataset"], "source": sentiment_csv, "fold": winner.metrics["best_fold"]}  # the gone file's copy
    part = load_text_data(rows, seed=task["dataset"]["seed"])
    assert sum(map(sum, matrix["matrix"])) == len(part.validation)
    right = sum(matrix["matrix"][i][i] for i in range(len(matrix["matrix"])))
    assert right / len(part.validation) >= result.best_value - 1e-9  # the best fold scores at least the mean


def test_a_sweep_over_two_base_models_records_each_trials_model_and_ships_the_winners(
    make_spec, where, tiny_bert, tiny_distilbert, data_gone_after_the_checks
):
    """``task.model: {grid: [...]}``: two architectures, each trial's groups resolved for its own model,
    its run naming the model, the trade-off of accuracy and latency as a Pareto front, the winner's own
    architecture logged and loaded.

    And the data prepared once: the checks before the sweep load and tokenize it (for each model's
    tokenizer); the trials, the error analysis and the packaging of the winner take it from Ray's object
    store, so the data file can be gone once the checks are done."""
    from tune_service import load_best

    data = data_gone_after_the_checks
    spec = make_spec(
        **{
            "name": "two-models",
            "task.model": {"grid": [tiny_bert, tiny_distilbert]},
            "task.dataset.source": str(data),
            "search": {"strategy": "grid", "max_concurrent_trials": 2, "metric": ["val_accuracy", "val_latency_ms"],
                       "mode": ["max", "min"], "reuse_actors": False},
        }
    )  # fmt: skip
    result = run_sweep(spec, **where)
    assert not data.exists()
    assert [(t.status, t.epochs) for t in result.trials] == [("TERMINATED", 2)] * 2, [t.error for t in result.trials]

    client = MlflowClient(result.tracking_uri)
    runs = {t.trial_id: client.get_run(t.mlflow_run_id) for t in result.trials}
    assert sorted(r.data.params["model"] for r in runs.values()) == sorted([tiny_bert, tiny_distilbert])
    for trial in result.trials:  # each trained its own architecture: its encoder group found in it
        run = runs[trial.trial_id]
        assert run.data.params["model"] == trial.config["model"]
        assert client.get_metric_history(run.info.run_id, "trainable_params/encoder")[-1].value > 0
    sizes = {t.config["model"]: t.metrics["trainable_params"] for t in result.trials}
    assert sizes[tiny_bert] != sizes[tiny_distilbert]
    assert set(result.pareto_front) <= {t.trial_id for t in result.trials} and result.pareto_front

    winner = result.best_config["model"]
    assert client.get_model_version("two-models", result.model_version).tags["model"] == winner
    model, _ = load_best(result)
    expected = "BertForSequenceClassification" if winner == tiny_bert else "DistilBertForSequenceClassification"
    assert type(model).__name__ == expected
    best_run = client.get_run(result.best_run_id)
    assert {i.tags[0].value for i in best_run.inputs.dataset_inputs} == {"training", "validation"}
    assert "error_analysis/confusion_matrix.json" in {
        a.path for a in client.list_artifacts(result.best_run_id, "error_analysis")
    }
