"""Every example spec runs as it is, in smoke mode (real MiniLM, real data), through the Python API.

The quickstart runs through the CLI as typed (tests/e2e/test_cli.py); the rest share this tier's
Ray instead of each starting its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tune_service import load_spec, run_sweep, smoke_spec

ROOT = Path(__file__).resolve().parents[2]
# the warm-start example reads the bayesian-asha sweep back: both run in one test
WARM = ("bayesian_asha", "warm_start")
AS_TYPED = ("quickstart",)  # through the CLI, in tests/e2e/test_cli.py
# the shared-rate baseline is the dual-rate example but for its rates: checked for that below, not run again
TWIN = "image_text_shared_lr"
LORA = "lora_plus"  # run once, then its best adapter loaded back from the registry
SFT = "sft"  # run once, then its best model loaded back and asked to generate
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.stem not in WARM + AS_TYPED + (TWIN, LORA, SFT))


def run_example(example: Path, where: Path):
    """Run ``example`` in smoke mode; check its trials, its runs and its result."""
    result = run_sweep(
        example,
        smoke_test=True,
        tracking_uri=f"sqlite:///{where / 'mlflow.db'}",
        storage_path=str(where / "ray"),
        verbose=0,
    )
    smoke = smoke_spec(load_spec(example))
    cv = smoke.search.cross_validation
    # confirm: the best config again; a refit: the winner once more on every training row
    trials = 2 + (1 if smoke.search.confirm else 0) + (1 if cv is not None and cv.refit else 0)
    epochs = smoke.hyperparameters.epochs
    seen = [(t.trial_id, t.status, t.epochs, t.error) for t in result.trials]
    assert len(result.trials) == trials and all(t.status == "TERMINATED" for t in result.trials), seen
    assert max(t.epochs for t in result.trials) == epochs, seen  # one trial at least trained to the end
    assert result.best_trial_id in {t.trial_id for t in result.trials}

    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs(
        [result.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * trials, [
        (r.info.run_name, r.info.status) for r in runs
    ]
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    for run in runs:  # the rows each trial learned from (and, but for a cross-validated one, was validated on)
        uses = {i.tags[0].value for i in client.get_run(run.info.run_id).inputs.dataset_inputs}
        assert uses == ({"training"} if cv is not None else {"training", "validation"}), run.info.run_name
    # the winner, logged as an MLflow Model of its run and registered from it
    assert result.model_id and client.get_logged_model(result.model_id).source_run_id == result.best_run_id
    return result


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_in_smoke_mode(example, tmp_path):
    run_example(example, tmp_path)


def test_warm_start_example_reads_the_earlier_sweep_back_from_mlflow(tmp_path):
    earlier = run_example(ROOT / "examples" / "bayesian_asha.yaml", tmp_path)
    result = run_example(ROOT / "examples" / "warm_start.yaml", tmp_path)
    client = MlflowClient(result.tracking_uri)
    assert client.get_run(result.parent_run_id).data.params["warm_start_trials"] == str(len(earlier.trials))
    # points_to_evaluate: the given point is tried
    tried = [t.config["groups"] for t in result.trials]
    assert (1e-4, 1e-2, "sgd") in [(g["encoder"]["lr"], g["head"]["lr"], g["head"]["optimizer"]) for g in tried]


def test_shared_rate_example_differs_from_the_dual_rate_one_only_in_its_rates():
    """The README compares the two side by side: same data, model, budget and seed, one rate against two."""
    dual = load_spec(ROOT / "examples" / "image_text_dual_lr.yaml").to_dict()
    shared = load_spec(ROOT / "examples" / f"{TWIN}.yaml").to_dict()
    for spec in (dual, shared):
        spec.pop("name"), spec.pop("description")
        for group in spec["hyperparameters"]["groups"].values():
            group.pop("lr")
    assert dual == shared
    rates = {
        g: load_spec(ROOT / "examples" / f"{TWIN}.yaml").hyperparameters.groups[g].lr
        for g in ("vision", "text", "head")
    }
    assert rates["text"].relative_to == rates["head"].relative_to == "vision" and rates["text"].ratio == 1.0
    dual_rates = load_spec(ROOT / "examples" / "image_text_dual_lr.yaml").hyperparameters.groups
    assert dual_rates["vision"].lr.args == dual_rates["text"].lr.args == rates["vision"].args  # the same range


def test_lora_example_runs_and_its_best_adapter_loads_back_from_the_registry(tmp_path):
    """The registered version is the adapter and the head alone; load_best puts them on the base model,
    which then predicts what the trial's own checkpoint does."""
    import torch

    from trainables.text_classification import load_pretrained
    from tune_service import load_best

    result = run_example(ROOT / "examples" / f"{LORA}.yaml", tmp_path)
    assert result.model_version is not None
    version = MlflowClient(result.tracking_uri).get_model_version(result.name, result.model_version)
    assert version.tags["tune_service.adapter"] == "lora"
    assert version.tags["tune_service.base_model"] == "builtin:minilm"
    model, tokenizer = load_best(result)
    assert type(model).__name__ == "PeftModelForSequenceClassification"
    trial_model, _ = load_pretrained(str(Path(result.best_checkpoint) / "model"))
    reviews = ["a gripping, funny film", "dull and far too long"]
    batch = tokenizer(reviews, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
        assert torch.allclose(logits, trial_model(**batch).logits)

    # the logged MLflow Model: the adapter, put on the base model its version names when pyfunc loads it
    import mlflow.artifacts
    import mlflow.pyfunc
    import pandas as pd

    champion = MlflowClient(result.tracking_uri).get_model_version_by_alias(result.name, "champion")
    assert champion.version == result.model_version
    folder = mlflow.artifacts.download_artifacts(champion.source, dst_path=str(tmp_path / "champion"),
                                                 tracking_uri=result.tracking_uri)  # fmt: skip
    packaged = mlflow.pyfunc.load_model(folder)
    table = packaged.predict(pd.DataFrame({"text": reviews}))
    names = model.config.id2label
    assert table["label"].tolist() == [names[i] for i in logits.argmax(-1).tolist()]
    assert table["score"].tolist() == pytest.approx(logits.softmax(-1).max(-1).values.tolist(), abs=1e-5)


def test_sft_example_runs_and_its_best_model_generates_after_loading_back(tmp_path):
    result = run_example(ROOT / "examples" / f"{SFT}.yaml", tmp_path)
    assert {"val_exact_match", "val_loss", "val_perplexity"} <= set(result.best_metrics)
    from tune_service import load_best

    model, tokenizer = load_best(result)
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    prompt = tokenizer(["Review: a gripping, funny film\nVerdict:"], add_special_tokens=False, return_tensors="pt")
    out = model.generate(
        input_ids=prompt["input_ids"], attention_mask=prompt["attention_mask"], max_new_tokens=2, do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    assert out.shape[0] == 1 and prompt["input_ids"].shape[1] < out.shape[1] <= prompt["input_ids"].shape[1] + 2
