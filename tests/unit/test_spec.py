"""Spec validation: valid specs load; each bad one is refused naming field, value and what is accepted."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from search_spaces import Distribution, iter_hyperparameters
from tune_service import SpecError, load_spec, smoke_spec
from tune_service.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "name": "s",
    "task": {"type": "text_classification"},
    "hyperparameters": {"groups": {"encoder": {"lr": 1e-5}, "head": {"lr": 1e-3}}},
}


def with_(dotted: str, value):
    spec = copy.deepcopy(BASE)
    node = spec
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return spec


_DELETE = object()


def with_all(changes: dict):
    spec = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return spec


LR = {"loguniform": [1e-5, 1e-3]}

# (description, spec, expected field path, fragments the message must contain)
BAD_SPECS = [
    ("missing name", with_("name", _DELETE), "name", ["required"]),
    ("bad name", with_("name", "has space"), "name", ["has space"]),
    ("unknown task type", with_("task.type", "image"), "task.type", ["text_classification", "'image'"]),
    ("unknown top-level key", with_("serach", {}), "serach", ["did you mean 'search'"]),
    (
        "unknown group key",
        with_("hyperparameters.groups.encoder.lrate", 1e-3),
        "hyperparameters.groups.encoder.lrate",
        ["did you mean 'lr'"],
    ),
    ("unknown hyperparameter", with_("hyperparameters.epoch", 3), "hyperparameters.epoch", ["did you mean 'epochs'"]),
    (
        "missing lr",
        with_("hyperparameters.groups.head", {"optimizer": "sgd"}),
        "hyperparameters.groups.head.lr",
        ["required"],
    ),
    ("zero lr", with_("hyperparameters.groups.head.lr", 0), "hyperparameters.groups.head.lr", ["got 0", "> 0"]),
    ("negative lr", with_("hyperparameters.groups.head.lr", -1e-3), "hyperparameters.groups.head.lr", ["-0.001"]),
    ("string lr", with_("hyperparameters.groups.head.lr", "fast"), "hyperparameters.groups.head.lr", ["'fast'"]),
    (
        "loguniform from zero",
        with_("hyperparameters.groups.head.lr", {"loguniform": [0, 1e-3]}),
        "hyperparameters.groups.head.lr",
        ["low > 0", "log"],
    ),
    (
        "loguniform reversed",
        with_("hyperparameters.groups.head.lr", {"loguniform": [1e-2, 1e-4]}),
        "hyperparameters.groups.head.lr",
        ["low < high"],
    ),
    (
        "unknown distribution",
        with_("hyperparameters.groups.head.lr", {"logunifrom": [1e-4, 1e-2]}),
        "hyperparameters.groups.head.lr",
        ["did you mean 'loguniform'"],
    ),
    (
        "distribution wrong arity",
        with_("hyperparameters.groups.head.lr", {"uniform": [0.1]}),
        "hyperparameters.groups.head.lr",
        ["[low, high]"],
    ),
    (
        "two-key distribution",
        with_("hyperparameters.groups.head.lr", {"uniform": [0, 1], "choice": [1]}),
        "hyperparameters.groups.head.lr",
        ["exactly one key"],
    ),
    (
        "empty choice",
        with_("hyperparameters.batch_size", {"choice": []}),
        "hyperparameters.batch_size",
        ["at least one"],
    ),
    (
        "unknown optimizer",
        with_("hyperparameters.groups.head.optimizer", "adagrad"),
        "hyperparameters.groups.head.optimizer",
        ["'adagrad'", "sgd, adam, adamw, rmsprop"],
    ),
    (
        "unknown optimizer in choice",
        with_("hyperparameters.groups.head.optimizer", {"choice": ["sgd", "lion"]}),
        "hyperparameters.groups.head.optimizer",
        ["'lion'"],
    ),
    (
        "uniform over optimizers",
        with_("hyperparameters.groups.head.optimizer", {"uniform": [0, 1]}),
        "hyperparameters.groups.head.optimizer",
        ["choice or grid"],
    ),
    ("dropout one", with_("hyperparameters.dropout", 1.0), "hyperparameters.dropout", ["< 1"]),
    (
        "dropout range past one",
        with_("hyperparameters.dropout", {"uniform": [0.1, 1.5]}),
        "hyperparameters.dropout",
        ["1.5"],
    ),
    (
        "negative weight decay",
        with_("hyperparameters.groups.head.weight_decay", -0.1),
        "hyperparameters.groups.head.weight_decay",
        [">= 0"],
    ),
    ("float epochs", with_("hyperparameters.epochs", 2.5), "hyperparameters.epochs", ["integer"]),
    ("zero batch size", with_("hyperparameters.batch_size", 0), "hyperparameters.batch_size", [">= 1"]),
    (
        "uniform batch size",
        with_("hyperparameters.batch_size", {"uniform": [8, 64]}),
        "hyperparameters.batch_size",
        ["randint"],
    ),
    (
        "unknown scheduler",
        with_("hyperparameters.groups.encoder.scheduler", "onecycle"),
        "hyperparameters.groups.encoder.scheduler",
        ["cosine"],
    ),
    (
        "warmup ratio one",
        with_("hyperparameters.groups.encoder.warmup_ratio", 1.0),
        "hyperparameters.groups.encoder.warmup_ratio",
        ["< 1"],
    ),
    (
        "unfreeze without frozen",
        with_("hyperparameters.groups.encoder.unfreeze_epoch", 2),
        "hyperparameters.groups.encoder.unfreeze_epoch",
        ["frozen: true"],
    ),
    (
        "frozen not bool",
        with_("hyperparameters.groups.encoder.frozen", "yes please"),
        "hyperparameters.groups.encoder.frozen",
        ["true or false"],
    ),
    (
        "missing group hyperparameters",
        with_("hyperparameters.groups", {"encoder": {"lr": 1e-5}}),
        "hyperparameters.groups",
        ["missing ['head']"],
    ),
    (
        "extra group hyperparameters",
        with_("hyperparameters.groups.decoder", {"lr": 1e-5}),
        "hyperparameters.groups",
        ["unknown ['decoder']"],
    ),
    ("no groups", with_("hyperparameters.groups", {}), "hyperparameters.groups", ["at least one"]),
    (
        "group selector empty",
        with_("task.groups", {"encoder": {}, "head": {"prefix": ["classifier."]}}),
        "task.groups.encoder",
        ["prefix", "regex"],
    ),
    (
        "group regex broken",
        with_("task.groups", {"encoder": {"regex": "bert.("}, "head": {"prefix": ["c"]}}),
        "task.groups.encoder",
        ["does not compile"],
    ),
    (
        "metric never reported",
        with_("search.metric", "val_acc"),
        "search.metric",
        ["did you mean 'val_accuracy'", "val_f1"],
    ),
    ("bad mode", with_("search.mode", "maximize"), "search.mode", ["'max' or 'min'"]),
    ("unknown strategy", with_("search.strategy", "bayes"), "search.strategy", ["'grid'", "'random'"]),
    (
        "grid over a continuous distribution",
        with_("search", {"strategy": "grid"})
        | {"hyperparameters": {"groups": {"encoder": {"lr": {"loguniform": [1e-5, 1e-3]}}, "head": {"lr": 1e-3}}}},
        "hyperparameters.groups.encoder.lr",
        ["grid", "loguniform"],
    ),
    ("zero samples", with_("search.num_samples", 0), "search.num_samples", ["greater than or equal to 1"]),
    ("negative time budget", with_("search.time_budget_s", -5), "search.time_budget_s", ["greater than 0"]),
    ("zero cpus", with_("resources.cpu", 0), "resources.cpu", ["greater than 0"]),
    ("validation fraction one", with_("task.dataset.validation_split", 1.0), "task.dataset.validation_split", ["< 1"]),
    ("max_length too short", with_("task.max_length", 2), "task.max_length", ["greater than or equal to 8"]),
    ("section not a mapping", with_("search", [1, 2]), "search", ["dictionary"]),
    ("unknown preset", with_("search.strategy", "bayesian+ashaa"), "search", ["not a preset", "asha, hyperband"]),
    (
        "preset against scheduler",
        with_all({"search.strategy": "bayesian+asha", "search.scheduler": "median"}),
        "search",
        ["sets scheduler 'asha'", "'median'"],
    ),
    ("sampler without bayesian", with_("search.sampler", "gp"), "search.sampler", ["only strategy 'bayesian'"]),
    ("unknown sampler", with_("search.sampler", "nsga"), "search.sampler", ["'tpe'", "'qmc'"]),
    (
        "start-up trials without bayesian",
        with_("search.startup_trials", 4),
        "search.startup_trials",
        ["got 4", "only strategy 'bayesian'"],
    ),
    (
        "start-up trials with qmc",
        with_all({"search.strategy": "bayesian", "search.sampler": "qmc", "search.startup_trials": 4}),
        "search.startup_trials",
        ["got 4", "qmc follows its sequence", "tpe, gp or cmaes"],
    ),
    ("no start-up trials", with_("search.startup_trials", 0), "search.startup_trials", ["greater than or equal to 1"]),
    (
        "grid with pbt",
        with_all({"search.strategy": "grid", "search.scheduler": "pbt", "hyperparameters.epochs": 3}),
        "search.scheduler",
        ["strategy 'random' only", "a grid enumerates fixed points"],
    ),
    (
        "pbt with nothing to perturb",
        with_all({"search.strategy": "pbt", "hyperparameters.epochs": 3}),
        "search.scheduler",
        ["perturbs searched continuous", "none is searched"],
    ),
    (
        "pbt never perturbs",
        with_all({"search.strategy": "pbt", "hyperparameters.groups.encoder.lr": LR}),
        "search.perturbation_interval",
        ["got 1", "train 1 epochs"],
    ),
    (
        "hyperband brackets over the concurrency",
        with_all(
            {
                "search.strategy": "random+hyperband",
                "search.max_concurrent_trials": 2,
                "hyperparameters.epochs": 9,
                "search.reduction_factor": 3,
            }
        ),
        "search.max_concurrent_trials",
        ["got 2", "largest holds 9 trials", "asha"],
    ),
    (
        "bohb with asha",
        with_all({"search.strategy": "bohb", "search.scheduler": "asha"}),
        "search.scheduler",
        ["got 'asha'", "hyperband"],
    ),
    (
        "objective never reported",
        with_("search.objectives", [{"metric": "latency", "mode": "min"}]),
        "search.objectives[0].metric",
        ["'latency'", "val_latency_ms"],
    ),
    (
        "metric and mode lists differ",
        with_all({"search.metric": ["val_accuracy", "trainable_params"], "search.mode": ["max"]}),
        "search",
        ["2 objectives", "mode lists 1"],
    ),
    (
        "bohb with two objectives",
        with_all({"search.strategy": "bohb", "search.objectives": [{"metric": "trainable_params", "mode": "min"}]}),
        "search.objectives",
        ["one objective"],
    ),
    (
        "cmaes with two objectives",
        with_all(
            {
                "search.strategy": "bayesian",
                "search.sampler": "cmaes",
                "search.metric": ["val_accuracy", "val_latency_ms"],
                "search.mode": ["max", "min"],
            }
        ),
        "search.sampler",
        ["one objective"],
    ),
    (
        "momentum searched for adamw only",
        with_("hyperparameters.groups.head.momentum", {"uniform": [0.8, 0.99]}),
        "hyperparameters.groups.head.momentum",
        ["applies only when optimizer", "['sgd', 'rmsprop']", "['adamw']"],
    ),
    (
        "derived from an unknown group",
        with_("hyperparameters.groups.head.lr", {"relative_to": "encodr", "ratio": 10}),
        "hyperparameters.groups.head.lr.relative_to",
        ["'encodr'", "['encoder']"],
    ),
    (
        "derived from a derived value",
        with_all(
            {
                "hyperparameters.groups.head.lr": {"relative_to": "encoder", "ratio": 10},
                "hyperparameters.groups.encoder.lr": {"relative_to": "head", "ratio": 0.1},
            }
        ),
        "hyperparameters.groups.head.lr.relative_to",
        ["has a derived lr too"],
    ),
    (
        "derived ratio not positive",
        with_("hyperparameters.groups.head.lr", {"relative_to": "encoder", "ratio": {"uniform": [-1, 10]}}),
        "hyperparameters.groups.head.lr",
        ["ratio", "> 0"],
    ),
    (
        "point outside the space",
        with_all({"hyperparameters.groups.encoder.lr": LR, "search.points_to_evaluate": [{"groups.encoder.lr": 0.5}]}),
        "search.points_to_evaluate[0].groups.encoder.lr",
        ["got 0.5", "[1e-05, 0.001]"],
    ),
    (
        "point names an unsearched setting",
        with_all(
            {"hyperparameters.groups.encoder.lr": LR, "search.points_to_evaluate": [{"groups": {"head": {"lr": 1}}}]}
        ),
        "search.points_to_evaluate[0].groups.head.lr",
        ["not a searched hyperparameter", "groups.encoder.lr"],
    ),
    (
        "warm start for random search",
        with_("search.warm_start", {"experiment": "earlier"}),
        "search.warm_start",
        ["does not learn from earlier results", "bayesian"],
    ),
    (
        "warm start from two places",
        with_all({"search.strategy": "bayesian", "search.warm_start": {"experiment": "a", "parent_run_id": "b"}}),
        "search.warm_start",
        ["exactly one of experiment"],
    ),
    (
        "zero epoch budget",
        with_("search.max_total_epochs", 0),
        "search.max_total_epochs",
        ["greater than or equal to 1"],
    ),
]


@pytest.mark.parametrize("desc,spec,path,fragments", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_is_refused_with_path_and_reason(desc, spec, path, fragments):
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    problems = dict(info.value.problems)
    assert path in problems, f"{desc}: expected a problem at {path}, got {problems}"
    for fragment in fragments:
        assert fragment in problems[path], f"{desc}: {fragment!r} not in {problems[path]!r}"
    assert path in str(info.value)


def test_several_problems_are_reported_together():
    spec = with_("hyperparameters.groups.head.lr", 0)
    spec["search"] = {"mode": "up"}
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    paths = [p for p, _ in info.value.problems]
    assert "hyperparameters.groups.head.lr" in paths and "search.mode" in paths


@pytest.mark.parametrize(
    "content,fragment",
    [
        (b"name: [unclosed\n", "YAML syntax error at line"),
        (b"", "empty"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"- just\n- a list\n", "mapping"),
    ],
)
def test_bad_files_are_refused(tmp_path, content, fragment):
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")


def test_examples_are_valid():
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        spec = load_spec(path)
        assert spec.name


def test_defaults_and_distributions_parse():
    spec = load_spec(
        with_("hyperparameters.groups.encoder.lr", {"loguniform": [1e-5, 1e-3]})
        | {"search": {"strategy": "random", "num_samples": 3}}
    )
    lr = spec.hyperparameters.groups["encoder"].lr
    assert lr == Distribution("loguniform", (1e-5, 1e-3))
    assert spec.hyperparameters.groups["head"].optimizer == "adamw"
    assert spec.task.group_names == ("encoder", "head")
    paths = dict(iter_hyperparameters(spec.hyperparameters))
    assert paths[("groups", "encoder", "lr")] is lr
    assert paths[("batch_size",)] == 16


def test_spec_round_trips_through_yaml_and_dict(tmp_path):
    spec = load_spec(with_("hyperparameters.batch_size", {"choice": [8, 16]}))
    again = load_spec(spec.to_dict())
    assert again == spec
    path = tmp_path / "s.yaml"
    path.write_text(spec.to_yaml())
    assert load_spec(path) == spec
    assert spec.to_dict()["hyperparameters"]["batch_size"] == {"choice": [8, 16]}


def test_python_objects_are_validated_like_yaml():
    spec = SweepSpec.model_validate(BASE)
    assert load_spec(spec) == spec


def test_smoke_spec_shrinks_but_keeps_the_space():
    base = load_spec(ROOT / "examples" / "quickstart.yaml")
    smoke = smoke_spec(base)
    assert smoke.hyperparameters.epochs == 1
    assert smoke.search.num_samples == 2
    assert smoke.task.dataset.train_size <= 64 and smoke.task.dataset.validation_size <= 64
    assert smoke.hyperparameters.groups["encoder"].lr == base.hyperparameters.groups["encoder"].lr
    assert smoke.task.model == base.task.model


def test_smoke_spec_keeps_two_grid_points():
    spec = copy.deepcopy(BASE)
    spec["search"] = {"strategy": "grid", "num_samples": 3}
    spec["hyperparameters"]["batch_size"] = {"grid": [8, 16, 32]}
    spec["hyperparameters"]["groups"]["head"]["optimizer"] = {"choice": ["sgd", "adam", "adamw"]}
    smoke = smoke_spec(load_spec(spec))
    hp = smoke.hyperparameters
    sizes = [len(hp.groups["head"].optimizer.values), len(hp.batch_size.values)]
    assert sorted(sizes) == [1, 2]
    assert smoke.search.num_samples == 1


def test_schema_is_json_and_names_fields():
    schema = SweepSpec.model_json_schema()
    json.dumps(schema)
    assert {"name", "task", "hyperparameters", "search"} <= set(schema["properties"])
    assert "loguniform" in json.dumps(schema)


def test_grid_runs_each_point_once_by_default():
    assert load_spec(with_("search", {"strategy": "grid"})).search.num_samples == 1
    assert load_spec(with_("search", {"strategy": "grid", "num_samples": 3})).search.num_samples == 3
    assert load_spec(with_("search", {"strategy": "random"})).search.num_samples == 8
