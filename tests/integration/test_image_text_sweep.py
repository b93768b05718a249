"""An image+text sweep through Ray Tune: vision and text learning rates searched apart, tracked in MLflow."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from tune_service import load_best, run_sweep


def test_bayesian_asha_sweep_over_vision_and_text_rates(make_image_spec, where):
    spec = make_image_spec(
        **{
            "hyperparameters.groups.vision.lr": {"loguniform": [1e-3, 1e-2]},
            "hyperparameters.groups.text.lr": {"loguniform": [1e-5, 1e-3]},
            "hyperparameters.groups.text.frozen": True,  # the text tower joins in epoch 2
            "hyperparameters.groups.text.unfreeze_epoch": 2,
            "search": {
                "strategy": "bayesian",
                "scheduler": "asha",
                "grace_period": 1,
                "num_samples": 3,
                "max_concurrent_trials": 2,
                "seed": 0,
            },
            "mlflow": {"experiment": "integration-image-text", "keep_checkpoints": 1},
        }
    )
    result = run_sweep(spec, **where)

    assert len(result.trials) == 3 and {t.status for t in result.trials} == {"TERMINATED"}
    assert result.metric == "val_zero_shot_accuracy"  # the task's default metric
    rates = {(t.config["groups"]["vision"]["lr"], t.config["groups"]["text"]["lr"]) for t in result.trials}
    assert len(rates) == 3 and all(1e-3 <= v <= 1e-2 and 1e-5 <= x <= 1e-3 for v, x in rates)

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["tune_service.task"] == "image_text" and parent.info.status == "FINISHED"
    for trial in result.trials:
        run = client.get_run(trial.mlflow_run_id)
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(trial.mlflow_run_id, "val_zero_shot_accuracy")
        assert [m.step for m in history] == list(range(1, trial.epochs + 1))  # each epoch once
        assert (
            client.get_metric_history(trial.mlflow_run_id, "lr/vision")[0].value
            == trial.config["groups"]["vision"]["lr"]
        )
        text_params = client.get_metric_history(trial.mlflow_run_id, "trainable_params/text")
        assert text_params[0].value == 0 and all(m.value > 0 for m in text_params[1:])  # frozen, then training

    # the registered best model, as a user loads it: zero-shot classification of an image
    model, processor = load_best(result)
    from PIL import Image

    image = Image.new("L", (8, 8))
    classes = ["the bad", "the film", "the good", "the plot"]
    inputs = processor(text=classes, images=[image], return_tensors="pt", padding=True)
    with torch.no_grad():
        probs = model(**inputs).logits_per_image.softmax(-1)
    assert probs.shape == (1, 4) and torch.isclose(probs.sum(), torch.tensor(1.0))

    # the winner's zero-shot errors: the class captions it confuses, counted as its score says
    import json

    run = result.best_run_id
    analysis = json.load(open(client.download_artifacts(run, "error_analysis/confusion_matrix.json")))
    assert analysis["classes"] == classes  # the class captions
    matrix = analysis["matrix"]
    right = sum(matrix[i][i] for i in range(len(matrix)))
    assert right / sum(map(sum, matrix)) == pytest.approx(result.best_value)
    errors = json.load(open(client.download_artifacts(run, "error_analysis/errors.json")))
    assert len(errors["data"]) == sum(map(sum, matrix)) - right
