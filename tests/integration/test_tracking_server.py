"""Sweeps against a real ``mlflow server`` (the project's recipe), trials streaming through it."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import ray
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from tune_service import load_best, run_sweep
from tune_service.tracking.writers import NAMESPACE


def children(client: MlflowClient, result) -> list:
    return client.search_runs(
        [result.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )


def assert_every_epoch_once(client: MlflowClient, run, epochs: int) -> None:
    """Each metric has one point per epoch, epochs 1..N, none twice."""
    for key in ("epoch", "val_accuracy", "val_loss", "train_loss", "lr/encoder"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == list(range(1, epochs + 1)), (run.info.run_name, key, steps)


def test_sweep_streams_through_the_server_with_top_k_checkpoints_registry_reports_and_load_best(
    make_spec, mlflow_server, model_server, tmp_path, monkeypatch
):
    server = mlflow_server()
    # MLflow's convention: the environment overrides the spec's tracking URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    spec = make_spec(
        **{
            "name": "tiny-server",
            "search": {"strategy": "random", "num_samples": 2, "max_concurrent_trials": 2, "seed": 3},
            "hyperparameters.groups.encoder.lr": {"loguniform": [1e-3, 3e-3]},
            "hyperparameters.groups.head": {"lr": 1e-2, "optimizer": "adamw"},  # learns the reviews in 3 epochs
            "hyperparameters.epochs": 3,
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'not-used.db'}", "keep_checkpoints": 2},
        }
    )
    result = run_sweep(spec, storage_path=str(tmp_path / "ray"), verbose=0)
    assert result.tracking_uri == server.uri and not (tmp_path / "not-used.db").exists()

    client = MlflowClient(server.uri)
    parent = client.get_run(result.parent_run_id)
    tags = parent.data.tags
    assert tags["tune_service.strategy"] == "random" and tags["tune_service.sweep_id"] == result.sweep_id
    assert tags["tune_service.ray_job_id"] == ray.get_runtime_context().get_job_id()
    assert tags["tune_service.version"] and len(tags.get("mlflow.source.git.commit", "x" * 40)) == 40
    assert tags["tune_service.model_version"] == f"tiny-server/{result.model_version}"
    reports = {a.path for a in client.list_artifacts(parent.info.run_id, "reports")}
    expected = {"optimization_history", "parallel_coordinates", "param_importances", "learning_curves"}
    assert reports == {f"reports/{name}.png" for name in expected}
    for path in reports:
        assert Path(client.download_artifacts(parent.info.run_id, path, str(tmp_path))).read_bytes()[:4] == b"\x89PNG"

    runs = children(client, result)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    artifacts_root = server.data_dir / "artifacts"
    digests = []
    for run in runs:
        trial_id = run.data.tags["tune_service.trial_id"]
        trial = next(t for t in result.trials if t.trial_id == trial_id)
        # readable name: trial id and the searched values; where it ran; which code
        assert run.info.run_name.startswith(f"{trial_id} encoder.lr=")
        assert run.data.tags["tune_service.node_id"] and run.data.tags["tune_service.node"]
        assert run.data.tags["tune_service.version"] == tags["tune_service.version"]
        assert_every_epoch_once(client, run, 3)
        # the top 2 epochs by val_accuracy (the later first on ties, as Tune ranks), uploaded through the server
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        top = sorted(history, key=lambda m: (-m.value, -m.step))[:2]
        kept = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert kept == {f"checkpoints/epoch-{m.step:03d}" for m in top}
        assert run.data.tags["tune_service.best_checkpoint"] == f"checkpoints/epoch-{top[0].step:03d}"
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        stored = list(artifacts_root.rglob(f"{run.info.run_id}/artifacts/checkpoints/*/model.safetensors"))
        assert len(stored) == 2
        assert trial.mlflow_run_id == run.info.run_id
        # the rows it learned from and was validated on, as dataset inputs: the runs table's Dataset column
        inputs = {i.tags[0].value: i.dataset for i in client.get_run(run.info.run_id).inputs.dataset_inputs}
        assert set(inputs) == {"training", "validation"}
        assert {d.name for d in inputs.values()} == {spec["task"]["dataset"]["source"]}
        assert json.loads(inputs["training"].profile)["num_rows"] == 180  # 240 reviews less a quarter validating
        assert json.loads(inputs["validation"].profile)["num_rows"] == 60
        digests.append((inputs["training"].digest, inputs["validation"].digest))
    assert len(set(digests)) == 1 and len(set(digests[0])) == 2  # every trial the same rows; two parts differ

    # the best checkpoint is registered under the sweep's name with the winning config
    version = client.get_model_version("tiny-server", result.model_version)
    assert version.run_id == result.best_run_id
    lr = result.best_config["groups"]["encoder"]["lr"]
    assert float(version.tags["groups.encoder.lr"]) == pytest.approx(lr)
    assert float(version.tags["val_accuracy"]) == pytest.approx(result.best_value)

    # load_best: a ready model, the same weights as the best trial's best checkpoint in Tune's storage
    model, tokenizer = load_best(result, dst=str(tmp_path / "best"))
    assert not model.training
    best_run = client.get_run(result.best_run_id)
    epoch = int(best_run.data.tags["tune_service.best_checkpoint"].rsplit("-", 1)[1])
    tune_checkpoint = Path(result.best_checkpoint).parent / f"checkpoint_{epoch - 1:06d}"
    expected_weights = load_file(str(tune_checkpoint / "model" / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        if name in expected_weights:
            assert torch.equal(tensor, expected_weights[name]), name
    batch = tokenizer(["a great and lovely film", "a dull and boring film"], return_tensors="pt", padding=True)
    assert model(**batch).logits.shape == (2, 2)
    again, _ = load_best("tiny-server", tracking_uri=server.uri, dst=str(tmp_path / "by-name"))
    by_parent, _ = load_best(result.parent_run_id, tracking_uri=server.uri, dst=str(tmp_path / "by-run"))
    for other in (again, by_parent):
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))

    # the node writers are gone with the sweep
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]

    check_the_winner_ships(client, result, model, tokenizer, model_server, tmp_path)
    a_worse_sweep_leaves_the_champion(spec, client, result, tmp_path)


REVIEWS = ["a great and lovely film", "a dull and boring film", "lovely great film", "boring dull plot"]


def check_the_winner_ships(client: MlflowClient, result, model, tokenizer, model_server, tmp_path) -> None:
    """The winner is its run's logged MLflow Model; the champion loads with pyfunc in a new process and
    serves with ``mlflow models serve``, both predicting the labels ``load_best``'s model does."""
    import json
    import subprocess
    import sys

    logged = client.get_logged_model(result.model_id)
    assert logged.source_run_id == result.best_run_id and str(logged.status) == "READY"
    files = {f.path for f in client.list_logged_model_artifacts(result.model_id)}
    assert {"MLmodel", "input_example.json", "requirements.txt", "code", "artifacts"} <= files
    assert [o.model_id for o in client.get_run(result.best_run_id).outputs.model_outputs] == [result.model_id]
    version = client.get_model_version("tiny-server", result.model_version)
    assert version.source == logged.artifact_location
    assert set(version.aliases) == {"challenger", "champion"}
    assert version.tags["tune_service.score_name"] == "val_accuracy"
    assert float(version.tags["tune_service.score"]) == pytest.approx(result.best_value)
    parent = client.get_run(result.parent_run_id).data.tags
    assert parent["tune_service.promotion"] == f"version {result.model_version} is champion: there was no champion"

    batch = tokenizer(REVIEWS, return_tensors="pt", padding=True, truncation=True, max_length=16)
    with torch.no_grad():
        expected = [model.config.id2label[i] for i in model(**batch).logits.argmax(-1).tolist()]
    assert len(set(expected)) == 2  # the model tells the reviews apart: equal labels below mean something
    load = (
        "import json, sys, mlflow.pyfunc, pandas as pd\n"
        "uri = 'models:/tiny-server@champion'\n"
        "model = mlflow.pyfunc.load_model(uri)\n"
        "out = model.predict(pd.DataFrame({'review': json.loads(sys.argv[1])})).to_dict('list')\n"
        "out['inputs'] = model.metadata.get_input_schema().input_names()\n"
        "out['outputs'] = model.metadata.get_output_schema().input_names()\n"
        "out['requirements'] = open(mlflow.pyfunc.get_model_dependencies(uri)).read().split()\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", load, json.dumps(REVIEWS)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = json.loads(done.stdout.strip().splitlines()[-1])
    assert predicted["label"] == expected
    # its signature (the dataset's text column in; label, score and each class's probability out), an
    # input example from the validation rows, and pinned requirements
    assert predicted["inputs"] == ["review"]
    assert predicted["outputs"] == ["label", "score", "prob_neg", "prob_pos"]
    assert {r.split("==")[0] for r in predicted["requirements"]} >= {"mlflow", "torch", "transformers", "pandas"}
    assert all(abs(p + q - 1) < 1e-5 for p, q in zip(predicted["prob_neg"], predicted["prob_pos"]))

    served = model_server("models:/tiny-server@champion", result.tracking_uri)
    answers = served.predict(["review"], [[text] for text in REVIEWS])
    assert [a["label"] for a in answers] == expected
    assert [a["score"] for a in answers] == pytest.approx(predicted["score"], abs=1e-6)


def a_worse_sweep_leaves_the_champion(spec: dict, client: MlflowClient, result, tmp_path) -> None:
    """A second sweep of the same name that learns nothing: its version is the challenger, the champion stays."""
    import copy

    worse = copy.deepcopy(spec)
    worse["hyperparameters"]["groups"] = {"encoder": {"lr": 1e-9}, "head": {"lr": 1e-9}}
    worse["hyperparameters"]["epochs"] = 1
    worse["search"] |= {"num_samples": 1}
    second = run_sweep(worse, storage_path=str(tmp_path / "ray"), verbose=0)
    assert second.best_value < result.best_value
    assert int(second.model_version) == int(result.model_version) + 1
    assert client.get_model_version_by_alias("tiny-server", "champion").version == result.model_version
    assert client.get_model_version_by_alias("tiny-server", "challenger").version == second.model_version
    assert second.promotion == (
        f"version {second.model_version} is challenger: val_accuracy {second.best_value:.4g} does not beat "
        f"champion version {result.model_version}'s {result.best_value:.4g}"
    )


def test_tracking_server_outage_mid_sweep_loses_nothing(make_spec, mlflow_server, tmp_path):
    server = mlflow_server()
    epochs = 14
    spec = make_spec(
        **{
            "name": "tiny-outage",
            "search": {"strategy": "random", "num_samples": 2, "max_concurrent_trials": 2, "seed": 5},
            "hyperparameters.groups.encoder.lr": {"loguniform": [1e-4, 3e-3]},
            "hyperparameters.epochs": epochs,
            "mlflow": {"keep_checkpoints": 2},
        }
    )
    outcome: dict = {}

    def sweep():
        try:
            outcome["result"] = run_sweep(spec, tracking_uri=server.uri, storage_path=str(tmp_path / "ray"), verbose=0)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=sweep)
    thread.start()
    client = MlflowClient(server.uri)
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the trials are streaming
        exp = client.get_experiment_by_name("tiny-outage")
        runs = client.search_runs([exp.experiment_id], "tags.`tune_service.trial_id` != ''") if exp else []
        if len(runs) == 2 and all(r.data.metrics.get("epoch", 0) >= 2 for r in runs):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the trials never streamed their first epochs")
    server.stop()
    down_at = time.time() * 1000
    time.sleep(12)  # an outage of several epochs
    up_at = time.time() * 1000
    server.start()
    thread.join(timeout=600)
    assert not thread.is_alive(), "the sweep did not end after the server came back"
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]

    assert len(result.trials) == 2 and all(t.status == "TERMINATED" and t.epochs == epochs for t in result.trials)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["tracking/retries"] > 0  # the writers did meet the outage
    for run in children(client, result):
        assert run.info.status == "FINISHED"
        assert_every_epoch_once(client, run, epochs)
        # the trials trained on while the server was away: epochs were reported in that window
        stamps = [m.timestamp for m in client.get_metric_history(run.info.run_id, "epoch")]
        assert any(down_at < t < up_at for t in stamps), "no epoch finished during the outage"
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        top = sorted(history, key=lambda m: (-m.value, -m.step))[:2]
        kept = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert kept == {f"checkpoints/epoch-{m.step:03d}" for m in top}
        for path in kept:
            files = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run.info.run_id, path)}
            assert {"model.safetensors", "config.json", "tokenizer.json"} <= files


def test_load_200_trials_stream_every_run_and_every_step_to_the_server(make_spec, mlflow_server, tmp_path):
    server = mlflow_server()
    spec = make_spec(
        **{
            "hyperparameters.epochs": 2,
            "hyperparameters.groups.head.lr": {"loguniform": [1e-3, 1e-1]},
            "search": {"strategy": "random", "num_samples": 200, "seed": 0},
            # checkpoints to MLflow are the other tests' concern: here, runs and metric steps at volume
            "mlflow": {"experiment": "load", "reports": False, "log_checkpoints": False},
        }
    )
    result = run_sweep(spec, tracking_uri=server.uri, storage_path=str(tmp_path / "ray"), verbose=0)

    assert len(result.trials) == 200 and all(t.status == "TERMINATED" for t in result.trials)
    client = MlflowClient(server.uri)
    runs = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'", max_results=1000
    )
    assert sorted(r.data.tags["tune_service.trial_id"] for r in runs) == sorted(t.trial_id for t in result.trials)
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:  # every epoch of every trial, once
        for metric in ("val_accuracy", "train_loss", "lr/head"):
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, metric))
            assert steps == [1, 2], (run.data.tags["tune_service.trial_id"], metric, steps)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["tracking/failed"] == 0 and parent.data.metrics["tracking/metric_batches"] >= 400
