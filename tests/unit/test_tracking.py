"""The trial-side MLflow writer and the reports, against a real (SQLite) MLflow store, without Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.tracking import MlflowClient

from tune_service import load_spec
from tune_service.end.figures import figures
from tune_service.result import TrialHistory
from tune_service.tracking import is_local_store
from tune_service.tracking.writers import Secret, TrialTracking, TrialWriter, _transient


@pytest.fixture
def store(tmp_path, monkeypatch):
    # the writer sets MLflow's retry variables in its own process; keep them out of this one's
    for var in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(var, os.environ.get(var, ""))
        monkeypatch.delenv(var)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("writer")
    parent = client.create_run(experiment).info.run_id
    return uri, client, experiment, parent


def tracking(store, keep=2, mode="max") -> TrialTracking:
    uri, _, experiment, parent = store
    return TrialTracking(uri, experiment, parent, "sweep-1", "val_accuracy", mode, ("groups.encoder.lr",), keep)


def staged(tmp_path, name: str) -> str:
    folder = tmp_path / "staging" / name
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(name.encode())
    return str(folder)


CONFIG = {"groups": {"encoder": {"lr": 1e-4, "optimizer": "adamw"}}, "epochs": 4}


def test_writer_keeps_the_top_k_checkpoints_and_logs_each_epoch_once_across_a_resume(store, tmp_path):
    _, client, _, parent = store
    writer = TrialWriter(tracking(store))
    run_id = writer.open_trial("t1", CONFIG, "host (1.2.3.4)", "node-a", "t1 encoder.lr=0.0001")
    scores = {1: 0.6, 2: 0.8, 3: 0.7}
    for epoch, score in scores.items():
        assert writer.log_epoch("t1", epoch, {"epoch": epoch, "val_accuracy": score, "note": "text"}, 1000 + epoch)
        writer.log_checkpoint("t1", epoch, score, staged(tmp_path, f"e{epoch}"))
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.data.tags["tune_service.trial_id"] == "t1"
    assert run.data.tags["tune_service.node_id"] == "node-a" and run.info.run_name == "t1 encoder.lr=0.0001"
    assert run.data.params["groups.encoder.lr"] == "0.0001"
    kept = sorted(a.path for a in client.list_artifacts(run_id, "checkpoints"))
    assert kept == ["checkpoints/epoch-002", "checkpoints/epoch-003"]  # the top 2; epoch 1 deleted
    assert run.data.tags["tune_service.best_checkpoint"] == "checkpoints/epoch-002"
    assert not (tmp_path / "staging" / "e1").exists()  # staged copies are removed once handled

    # the trial resumes (another process, another writer) from epoch 2's checkpoint: epoch 3 is replayed
    again = TrialWriter(tracking(store))
    assert again.open_trial("t1", CONFIG, "host (1.2.3.4)", "node-b", "t1") == run_id
    assert not again.log_epoch("t1", 3, {"epoch": 3, "val_accuracy": 0.7}, 2003)
    assert again.log_checkpoint("t1", 3, 0.7, staged(tmp_path, "e3-again")) is None
    assert again.log_epoch("t1", 4, {"epoch": 4, "val_accuracy": 0.9}, 2004)
    assert again.log_checkpoint("t1", 4, 0.9, staged(tmp_path, "e4")) == "checkpoints/epoch-004"
    assert [m.step for m in client.get_metric_history(run_id, "val_accuracy")] == [1, 2, 3, 4]
    kept = sorted(a.path for a in client.list_artifacts(run_id, "checkpoints"))
    assert kept == ["checkpoints/epoch-002", "checkpoints/epoch-004"]
    assert client.get_run(run_id).data.tags["tune_service.node_id"] == "node-b"
    assert again.stats["skipped_steps"] == 1

    again.finish_trial("t1", "FINISHED", 5000)
    assert client.get_run(run_id).info.status == RunStatus.to_string(RunStatus.FINISHED)


def test_a_run_created_without_its_params_gets_them_when_the_trial_opens_it_again(store):
    uri, client, experiment, parent = store
    tags = {"mlflow.parentRunId": parent, "tune_service.trial_id": "t4"}
    run_id = client.create_run(experiment, tags=tags).info.run_id  # then the server went away
    assert TrialWriter(tracking(store)).open_trial("t4", CONFIG, "h", "n", "t4") == run_id
    assert client.get_run(run_id).data.params["groups.encoder.lr"] == "0.0001"


def test_ties_rank_the_later_epoch_first_and_min_mode_keeps_the_lowest(store, tmp_path):
    _, client, _, _ = store
    writer = TrialWriter(tracking(store, keep=1, mode="min"))
    run_id = writer.open_trial("t2", CONFIG, "h", "n", "t2")
    for epoch, loss in {1: 0.5, 2: 0.4, 3: 0.4, 4: 0.45}.items():
        writer.log_epoch("t2", epoch, {"epoch": epoch, "val_accuracy": loss}, epoch)
        writer.log_checkpoint("t2", epoch, loss, staged(tmp_path, f"m{epoch}"))
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/epoch-003"]


def test_a_changed_config_is_logged_as_hp_metrics_from_the_next_epoch(store):
    _, client, _, _ = store
    writer = TrialWriter(tracking(store))
    run_id = writer.open_trial("t3", CONFIG, "h", "n", "t3")
    writer.log_epoch("t3", 1, {"epoch": 1}, 1)
    perturbed = {**CONFIG, "groups": {"encoder": {"lr": 2e-4, "optimizer": "adamw"}}}
    writer.open_trial("t3", perturbed, "h", "n", "t3")  # PBT: the trial continues under a new config
    writer.log_epoch("t3", 2, {"epoch": 2}, 2)
    history = client.get_metric_history(run_id, "hp/groups.encoder.lr")
    assert [(m.step, m.value) for m in history] == [(2, 2e-4)]
    assert client.get_run(run_id).data.params["groups.encoder.lr"] == "0.0001"  # params keep the start value


def test_epochs_trained_again_under_new_hyperparameters_are_new_results(store, tmp_path):
    _, client, _, _ = store
    writer = TrialWriter(tracking(store, keep=1))
    run_id = writer.open_trial("t5", CONFIG, "h", "n", "t5")
    for epoch, score in {1: 0.5, 2: 0.55}.items():
        writer.log_epoch("t5", epoch, {"epoch": epoch, "val_accuracy": score}, epoch)
        writer.log_checkpoint("t5", epoch, score, staged(tmp_path, f"b{epoch}"))
    # PBT continues the trial from another's epoch-1 checkpoint, perturbed: epoch 2 is trained again
    perturbed = {**CONFIG, "groups": {"encoder": {"lr": 2e-4, "optimizer": "adamw"}}}
    writer.open_trial("t5", perturbed, "h", "n", "t5")
    assert writer.log_epoch("t5", 2, {"epoch": 2, "val_accuracy": 0.9}, 10)
    assert writer.log_checkpoint("t5", 2, 0.9, staged(tmp_path, "b2-new")) == "checkpoints/epoch-002"
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "val_accuracy")]
    assert sorted(history) == [(1, 0.5), (2, 0.55), (2, 0.9)]
    # the kept folder of epoch 2 now holds the new branch's model
    kept = Path(client.download_artifacts(run_id, "checkpoints/epoch-002", str(tmp_path / "down")))
    assert (kept / "model.safetensors").read_bytes() == b"b2-new"
    # a replay on the same branch (a retry from its own checkpoint) is still logged once
    writer.open_trial("t5", perturbed, "h", "n", "t5")
    assert not writer.log_epoch("t5", 2, {"epoch": 2, "val_accuracy": 0.9}, 11)
    # a new branch whose epoch does not rank drops the old folder of that step, another model's
    writer.open_trial("t5", CONFIG, "h", "n", "t5")
    writer.log_epoch("t5", 1, {"epoch": 1, "val_accuracy": 0.4}, 12)
    assert writer.log_checkpoint("t5", 1, 0.4, staged(tmp_path, "b1-new")) is None
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/epoch-002"]


def test_which_failures_are_retried_and_what_secrets_print():
    assert _transient(MlflowException("API request failed: connection refused"))
    assert _transient(ConnectionError("refused"))
    assert _transient(RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}))
    assert not _transient(RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}))
    assert not _transient(MlflowException("no such run", error_code=RESOURCE_DOES_NOT_EXIST))
    secret = Secret({"MLFLOW_TRACKING_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(secret) + str(secret) and secret.reveal()["MLFLOW_TRACKING_PASSWORD"] == "hunter2"
    assert is_local_store("sqlite:////tmp/m.db") and is_local_store("file:///tmp/mlruns")
    assert not is_local_store("http://mlflow:5000") and not is_local_store("postgresql://u@db/mlflow")


def _histories(spec, n: int) -> list:
    """``n`` trials' histories of configs as the sweep's searchers make them, the later ones scoring higher."""
    import optuna

    from search_spaces._space import DefineByRun

    objectives = spec.search.all_objectives
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    histories = []
    for i in range(n):
        t = study.ask()
        DefineByRun(spec.hyperparameters)(t)
        config: dict = {}
        for name, value in t.params.items():
            node = config
            *parents, last = name.split("/")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        values = [0.5 + 0.05 * i + 0.01 * j for j in range(len(objectives))]
        histories.append(TrialHistory(f"t{i}", config, values, {1: values[0] - 0.1, 2: values[0]}))
        study.tell(t, 0.0)
    return histories


def _example(name: str):
    from pathlib import Path

    return load_spec(Path(__file__).resolve().parents[2] / "examples" / f"{name}.yaml")


@pytest.mark.parametrize("example", ["grid_conditional", "multi_objective", "quickstart"])
def test_reports_draw_for_every_space_shape(example):
    spec = _example(example)
    objectives = spec.search.all_objectives
    drawn = figures(spec, _histories(spec, 6))
    assert "every trial" in drawn["learning_curves"].axes[0].get_title()
    expected = {"optimization_history", "parallel_coordinates", "param_importances", "learning_curves"}
    if len(objectives) > 1:
        expected.add("pareto_front")
    assert set(drawn) == expected
    for fig in drawn.values():
        assert fig.axes and fig.get_size_inches()[0] == 10


def test_reports_of_many_trials_draw_the_best_lines_and_say_so():
    from tune_service.end.figures import TOP

    spec = _example("quickstart")  # val_accuracy, maximised
    histories = _histories(spec, TOP + 12)
    drawn = figures(spec, histories)
    curves = drawn["learning_curves"].axes[0]
    assert curves.get_title().endswith(f"the best {TOP} of {TOP + 12} trials)")
    assert sorted(line.get_label() for line in curves.get_lines()) == sorted(t.trial_id for t in histories[12:])
    assert f"the best {TOP} of {TOP + 12} trials" in drawn["parallel_coordinates"].axes[0].get_title()
    history = drawn["optimization_history"].axes[0]  # the history still shows every trial
    assert max(len(line.get_xdata()) for line in history.get_lines()) == TOP + 12
