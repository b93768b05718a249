"""A catalogue of malformed input, each refused the same way through the CLI and the Python API.

CLI: exit 2 and one ``error:`` message naming the problem. API: a typed exception
(SpecError, TrackingError, ClusterUnreachable). Either way: no Ray started, no MLflow
store or run created, nothing written to Tune's storage. The CLI runs in this process
(``tune_service.cli.main``, the console script's entry point) to keep 45 cases fast.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import ray
import yaml

from tune_service import SpecError, run_sweep
from tune_service.cli import main
from tune_service.jobs import ClusterUnreachable
from tune_service.tracking import TrackingError

G = "hyperparameters.groups"
WIDE_GRID = {"grid": list(range(1, 23))}
# the tiny spec as a causal-LM sweep: a small Llama from a config on the generated reviews
CAUSAL = {
    "task.type": "causal_lm",
    "task.model": {"model_type": "llama", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 32},
    "task.tokenizer": "{tiny_bert}",
    "task.dataset.text_column": None,
    "task.dataset.label_column": None,
    "task.dataset.prompt_column": "review",
    "task.dataset.response_column": "sentiment",
    G: {"embeddings": {"lr": 1e-3}, "layers": {"lr": 1e-3}, "lm_head": {"lr": 1e-3}},
}  # fmt: skip
LORA = {
    "task.adapter": {"type": "lora"},
    G: {"lora_A": {"lr": 1e-3}, "lora_B": {"lr": {"relative_to": "lora_A", "ratio": 16}}, "head": {"lr": 1e-2}},
}


def raw(text: bytes):
    return ("raw", text)


# (id, the spec: overrides of the tiny spec or raw file bytes, extra CLI arguments, message fragments)
CASES = [
    # the file itself
    ("empty-file", raw(b""), [], ["the spec file is empty"]),
    ("whitespace-file", raw(b"  \n\n"), [], ["the spec file is empty"]),
    ("not-utf8", raw(b"name: caf\xe9\n"), [], ["not UTF-8", "0xe9"]),
    ("yaml-syntax", raw(b"name: x\ntask: {type: text_classification\n"), [], ["YAML syntax error at line"]),
    ("yaml-tabs", raw(b"name: x\n\ttask: 1\n"), [], ["YAML syntax error"]),
    ("top-level-list", raw(b"- name: x\n"), [], ["a spec is a mapping of sections", "got list"]),
    ("top-level-scalar", raw(b"just words\n"), [], ["a spec is a mapping", "got str"]),
    # types and ranges
    ("missing-name", {"name": None}, [], ["name"]),
    ("name-with-space", {"name": "my sweep"}, [], ["name", "my sweep"]),
    ("unknown-section", {"serach": {}}, [], ["serach", "did you mean 'search'"]),
    ("unknown-group-key", {f"{G}.encoder.lrate": 1e-3}, [], ["lrate", "did you mean 'lr'"]),
    ("lr-string", {f"{G}.encoder.lr": "fast"}, [], [f"{G}.encoder.lr", "'fast'"]),
    ("lr-zero", {f"{G}.encoder.lr": 0}, [], [f"{G}.encoder.lr", "got 0"]),
    ("lr-negative", {f"{G}.head.lr": -0.01}, [], [f"{G}.head.lr", "-0.01"]),
    ("loguniform-from-zero", {f"{G}.encoder.lr": {"loguniform": [0, 1e-3]}}, [], ["loguniform needs low > 0"]),
    ("loguniform-reversed", {f"{G}.encoder.lr": {"loguniform": [1e-2, 1e-4]}}, [], ["low < high"]),
    ("unknown-distribution", {f"{G}.encoder.lr": {"logunifrom": [1e-5, 1e-3]}}, [], ["did you mean 'loguniform'"]),
    ("dropout-one", {"hyperparameters.dropout": 1.0}, [], ["hyperparameters.dropout", "1.0"]),
    ("dropout-negative", {"hyperparameters.dropout": -0.1}, [], ["hyperparameters.dropout", "-0.1"]),
    ("dropout-range", {"hyperparameters.dropout": {"uniform": [0.1, 1.5]}}, [], ["hyperparameters.dropout"]),
    ("batch-size-zero", {"hyperparameters.batch_size": 0}, [], ["hyperparameters.batch_size", "got 0"]),
    ("epochs-string", {"hyperparameters.epochs": "three"}, [], ["hyperparameters.epochs", "'three'"]),
    ("unknown-optimizer", {f"{G}.head.optimizer": "adagrad"}, [], ["'adagrad'", "sgd, adam, adamw, rmsprop"]),
    ("unknown-lr-schedule", {f"{G}.head.scheduler": "onecycle"}, [], ["'onecycle'", "cosine"]),
    ("unknown-strategy", {"search.strategy": "evolution"}, [], ["search.strategy", "'evolution'"]),
    # a mapping where a name goes: its type named before any rule looks at it (no TypeError)
    ("strategy-mapping", {"search.strategy": {"zz": 1}}, [], ["search.strategy", "{'zz': 1}", "'random'"]),
    ("task-type-mapping", {"task.type": {"zz": 1}}, [], ["task.type", "{'zz': 1}", "'text_classification'"]),
    ("key-twice", raw(b"name: x\nname: y\n"), [], ["key 'name' is written twice", "lines 1 and 2"]),
    (
        "lr-twice-in-a-group",
        raw(b"name: x\nhyperparameters:\n  groups:\n    encoder:\n      lr: 1.0e-5\n      lr: 2.0e-5\n"),
        [],
        ["key 'lr' is written twice", "lines 5 and 6"],
    ),
    ("mode-word", {"search.mode": "maximize"}, [], ["search.mode", "'maximize'"]),
    (
        "metric-unknown-and-mode-list",  # both at once: the schema's problem and the task's
        {"search.metric": "val_acc", "search.mode": ["max", "min"]},
        [],
        ["search.mode", "search.metric: got 'val_acc' (did you mean 'val_accuracy'?)"],
    ),
    ("num-samples-zero", {"search.num_samples": 0}, [], ["search.num_samples"]),
    ("concurrency-zero", {"search.max_concurrent_trials": 0}, [], ["search.max_concurrent_trials"]),
    ("negative-retries", {"search.max_failures": -1}, [], ["search.max_failures"]),
    # the parts against each other
    ("metric-never-reported", {"search.metric": "val_acc"}, [], ["search.metric", "did you mean 'val_accuracy'"]),
    ("group-missing", {f"{G}.head": None}, [], ["hyperparameters.groups", "missing ['head']"]),
    ("group-unknown", {f"{G}.decoder": {"lr": 1e-3}}, [], ["unknown ['decoder']"]),
    (
        "grid-with-sampling",
        {"search.strategy": "grid", f"{G}.head.lr": {"loguniform": [1e-4, 1e-2]}},
        [],
        ["strategy 'grid' enumerates finite values"],
    ),
    (
        "bayesian-with-grid",
        {"search.strategy": "bayesian", f"{G}.head.lr": {"grid": [1e-3, 1e-2]}},
        [],
        ["cannot enumerate a grid"],
    ),
    ("momentum-for-adamw", {f"{G}.encoder.momentum": {"uniform": [0.8, 0.99]}}, [], ["momentum applies only when"]),
    ("relative-to-nothing", {f"{G}.head.lr": {"relative_to": "decoder", "ratio": 10}}, [], ["'decoder'"]),
    ("unfreeze-not-frozen", {f"{G}.encoder.unfreeze_epoch": 2}, [], ["the group is not frozen"]),
    (
        "grid-explosion",
        {
            "search.strategy": "grid",
            **{f"{G}.{g}.{f}": WIDE_GRID for g in ("encoder", "head") for f in ("step_epochs",)},
            "hyperparameters.epochs": WIDE_GRID,
        },
        [],
        ["the grid makes 10,648 trials", "at most 10,000"],
    ),  # fmt: skip
    ("warm-start-random", {"search.warm_start": {"experiment": "earlier"}}, [], ["does not learn from earlier"]),
    ("fractional-gpus", {"resources.gpu": 1.5}, [], ["resources.gpu", "whole number"]),
    ("memory-word", {"resources.memory": "lots"}, [], ["resources.memory", "'lots'"]),
    ("pbt-multi-worker", {"search.strategy": "pbt", "resources.workers": 2}, [], ["resources.workers", "pbt"]),
    # the data and the model (checked before Ray starts)
    ("missing-column", {"task.dataset.text_column": "body"}, [], ["text_column='body' not in the train data"]),
    ("missing-data-file", {"task.dataset.source": "{tmp}/nowhere.csv"}, [], ["nowhere.csv", "does not exist"]),
    ("empty-dataset", {"task.dataset.source": "{empty_csv}"}, [], ["task.dataset", "empty.csv' has no rows"]),
    ("negative-labels", {"task.dataset.source": "{negative_csv}"}, [], ["negative label -1"]),
    ("one-class", {"task.dataset.source": "{one_class_csv}"}, [], ["has 1 class"]),
    ("no-model", {"task.model": "{tmp}/no-model"}, [], ["task.model", "no-model"]),
    (
        "folder-neither-saved-nor-images",
        {"task.dataset.source": "{notes_dir}"},
        [],
        ["task.dataset", "neither a folder written by datasets' save_to_disk", "it holds notes.txt"],
    ),
    (
        "groups-match-nothing",
        {"task.groups": {"encoder": {"prefix": ["bert."]}, "head": {"prefix": ["decoder."]}}},
        [],
        ["task.groups", "groups matching no parameter: head"],
    ),
    (
        "groups-overlap",
        {"task.groups": {"encoder": {"prefix": ["bert."]}, "head": {"regex": "."}}},
        [],
        ["task.groups", "in several groups"],
    ),
    ("too-many-frozen-layers", {"hyperparameters.frozen_layers": 9}, [], ["frozen_layers=9"]),
    # adapters
    ("lora-rank-zero", {**LORA, "hyperparameters.adapter": {"r": 0}}, [], ["hyperparameters.adapter.r", "got 0"]),
    ("lora-rank-fraction", {**LORA, "hyperparameters.adapter": {"r": 2.5}}, [], ["adapter.r", "got 2.5"]),
    ("adapter-type", {**LORA, "task.adapter": {"type": "ia3"}}, [], ["task.adapter.type", "'ia3'", "'lora'"]),
    (
        "lora-unknown-target",
        {**LORA, "task.adapter": {"type": "lora", "target_modules": ["qkv"]}},
        [],
        ["task.adapter.target_modules", "['qkv'] match no linear layer", "query"],
    ),
    ("lora-groups-without-adapter", {G: LORA[G]}, [], ["hyperparameters.groups", "missing ['encoder']"]),
    # trusting the winner
    ("test-split-is-train", {"task.dataset.test_split": "train"}, [], ["test_split='train' is also the train"]),
    (
        "confirm-more-than-the-grid",
        {"search.strategy": "grid", f"{G}.head.lr": {"grid": [0.01, 0.03]}, "search.confirm": {"top_k": 3}},
        [],
        ["search.confirm.top_k", "got 3, but the grid has 2 trials"],
    ),
    ("confirm-more-than-sampled", {"search.confirm": {"top_k": 2}}, [], ["got 2, but num_samples is 1"]),
    (
        "confirm-with-pbt",
        {
            "search.strategy": "pbt",
            "search.num_samples": 4,
            "search.confirm": {"top_k": 2},
            f"{G}.head.lr": {"loguniform": [1e-3, 1e-1]},
            "hyperparameters.epochs": 3,
        },
        [],
        ["search.confirm", "pbt changes a trial's hyperparameters"],
    ),  # fmt: skip
    (
        "confirm-searched-seed",
        {"search.num_samples": 4, "search.confirm": {"top_k": 2}, "hyperparameters.seed": {"choice": [0, 1]}},
        [],
        ["do not search hyperparameters.seed"],
    ),
    ("folds-below-two", {"search.cross_validation": {"folds": 1}}, [], ["search.cross_validation.folds", "got 1"]),
    (
        "folds-above-the-rarest-class",
        {"task.dataset.source": "{rare_class_csv}", "search.cross_validation": {"folds": 4}},
        [],
        ["search.cross_validation.folds", "folds=4, but class 'neg' has 3 rows", "at most 3 folds"],
    ),
    (
        "folds-stratified-without-labels",
        {**CAUSAL, "search.cross_validation": {"folds": 2, "stratified": True}},
        [],
        ["search.cross_validation.stratified", "no label_column"],
    ),
    (
        "folds-with-validation-size",
        {"search.cross_validation": {"folds": 2}, "task.dataset.validation_size": 50},
        [],
        ["task.dataset.validation_size", "got 50 with cross-validation", "drop validation_size"],
    ),
    (
        "folds-data-parallel",
        {"search.cross_validation": {"folds": 2}, "resources.workers": 2},
        [],
        ["search.cross_validation", "one after another in one process"],
    ),
    # the base model as a choice
    (
        "model-choice-groups",  # BERT's encoder by its prefix: DistilBERT's is distilbert.
        {
            "task.model": {"choice": ["{tiny_bert}", "{tiny_distilbert}"]},
            "task.groups": {"encoder": {"prefix": ["bert."]}, "head": {"prefix": ["classifier.", "pre_classifier."]}},
        },
        [],
        ["with task.model='", "tiny-distilbert", "groups matching no parameter: encoder"],
    ),  # fmt: skip
    (
        "model-choice-pbt",
        {
            "task.model": {"choice": ["{tiny_bert}", "{tiny_distilbert}"]},
            "search.strategy": "pbt",
            "search.num_samples": 4,
            f"{G}.head.lr": {"loguniform": [1e-3, 1e-1]},
            "hyperparameters.epochs": 3,
        },
        [],
        ["task.model", "pbt", "a different base model cannot load"],
    ),  # fmt: skip
    (
        "model-choice-numbers",
        {"task.model": {"uniform": [0, 1]}},
        [],
        ["task.model", "uniform is for numbers", "use choice or grid"],
    ),
    # the registry
    ("promote-value", {"mlflow.promote": "sometimes"}, [], ["mlflow.promote", "'sometimes'", "'auto'", "'never'"]),
    # causal language models
    ("lm-missing-column", {**CAUSAL, "task.dataset.prompt_column": "body"}, [], ["prompt_column='body' not in"]),
    (
        "lm-not-causal",
        {**CAUSAL, "task.model": "{tiny_bert}", "task.tokenizer": None},
        [],
        ["task.model", "a 'bert' model, not a causal language model"],
    ),
    (
        "lm-4bit-without-gpu",
        {
            **CAUSAL,
            "task.model": "{tiny_bert}",
            "task.adapter": {"type": "lora", "quantization": "4bit"},
            G: {"lora_A": {"lr": 1e-3}, "lora_B": {"lr": 1e-3}},
        },
        [],
        ["task.adapter.quantization", "runs on a CUDA GPU"],
    ),  # fmt: skip
    (
        "lm-max-length",  # a prompt of 6 words and the template's 4
        {**CAUSAL, "task.max_length": 8, "task.dataset.prompt_template": "{{prompt}} the film was very"},
        [],
        ["task.max_length", "max_length=8 leaves no room for a response after a prompt of 10 tokens"],
    ),
    # a model given as a transformers config: its settings checked by the model's own config class
    (
        "lm-config-wrong-type",
        {**CAUSAL, "task.model.hidden_size": "banana"},
        [],
        ["task.model.hidden_size: expected an integer, got 'banana'"],
    ),
    (
        "lm-config-null-where-integer",
        {**CAUSAL, "task.model.pad_token_id": "banana"},
        [],
        ["task.model.pad_token_id: expected an integer or null, got 'banana'"],
    ),
    (
        "lm-config-settings-disagree",  # 15 is no multiple of 2 heads
        {**CAUSAL, "task.model.hidden_size": 15},
        [],
        ["task.model: ", "do not fit together", "hidden size (15)"],
    ),
    (
        "lm-config-negative-size",
        {**CAUSAL, "task.model.intermediate_size": -1},
        [],
        ["task.model: no model can be built from the config of task.model"],
    ),
    # where it would run
    ("impossible-cpu", {"resources.cpu": 64}, [], ["resources.cpu", "got 64"]),
    ("impossible-workers", {"resources.workers": 9}, [], ["resources.workers"]),
    ("unreachable-tracking", {}, ["--tracking-uri", "http://127.0.0.1:9"], ["cannot reach the MLflow tracking server"]),
    ("unreachable-cluster", {}, ["--address", "127.0.0.1:9"], ["no Ray cluster answers at 127.0.0.1:9"]),
]


@pytest.fixture(scope="module")
def data_files(tmp_path_factory, tiny_bert, tiny_distilbert):
    d = tmp_path_factory.mktemp("bad-data")
    (d / "empty.csv").write_text("review,sentiment\n")
    (d / "negative.csv").write_text(
        "review,sentiment\n" + "".join(f"good film {i},{-1 if i % 2 else 1}\n" for i in range(20))
    )
    (d / "one_class.csv").write_text("review,sentiment\n" + "".join(f"good film {i},pos\n" for i in range(20)))
    (d / "notes").mkdir()
    (d / "notes" / "notes.txt").write_text("not a dataset")
    (d / "rare_class.csv").write_text(  # 3 of 23 rows are 'neg'
        "review,sentiment\n" + "".join(f"film {i},{'neg' if i < 3 else 'pos'}\n" for i in range(23))
    )
    return {"empty_csv": str(d / "empty.csv"), "negative_csv": str(d / "negative.csv"),
            "one_class_csv": str(d / "one_class.csv"), "rare_class_csv": str(d / "rare_class.csv"),
            "notes_dir": str(d / "notes"), "tiny_bert": tiny_bert, "tiny_distilbert": tiny_distilbert}  # fmt: skip


def filled(value, **names):
    """``value`` with ``{name}`` in its strings (nested in lists and mappings too) replaced."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [filled(v, **names) for v in value]
    if isinstance(value, dict):
        return {k: filled(v, **names) for k, v in value.items()}
    return value


def build(case, make_spec, data_files, tmp: Path) -> Path:
    body = case[1]
    path = tmp / "spec.yaml"
    if isinstance(body, tuple):
        path.write_bytes(body[1])
        return path
    spec = make_spec()
    for dotted, value in body.items():
        value = filled(value, tmp=tmp, **data_files)
        node = spec
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    path.write_text(yaml.safe_dump(spec))
    return path


def nothing_left(where: Path, before: set) -> None:
    assert not ray.is_initialized()
    assert set(Path("/tmp/ray").glob("session_2*")) == before, "a Ray session was started"
    left = sorted(p.name for p in where.iterdir() if p.name != "spec.yaml")
    assert left == [], f"files left behind: {left}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_anything_runs(case, make_spec, data_files, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # the default tracking store would be ./mlflow.db
    _, _, args, fragments = case
    spec = build(case, make_spec, data_files, tmp_path)
    sessions = set(Path("/tmp/ray").glob("session_2*"))

    # the CLI: exit 2, one message
    code = main(["run", str(spec), "--storage-path", str(tmp_path / "ray"), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("error: ") == 1 and "Traceback" not in err, err
    assert all(f in err for f in fragments), err
    nothing_left(tmp_path, sessions)

    # the API: a typed exception with the same message
    kwargs = {"storage_path": str(tmp_path / "ray"), "verbose": 0}
    if "--tracking-uri" in args:
        kwargs["tracking_uri"] = args[args.index("--tracking-uri") + 1]
    if "--address" in args:
        kwargs["address"] = args[args.index("--address") + 1]
    with pytest.raises((SpecError, TrackingError, ClusterUnreachable)) as exc:
        run_sweep(str(spec), **kwargs)
    assert all(f in str(exc.value) for f in fragments), str(exc.value)
    nothing_left(tmp_path, sessions)
