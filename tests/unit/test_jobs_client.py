"""Ray Jobs client side, without a cluster: ids, the result line, and what happens when nothing answers."""

from __future__ import annotations

import socket

import pytest

from tune_service import ClusterUnreachable, SpecError, SweepJob, submit_sweep
from tune_service.cli import main
from tune_service.jobs import RESULT_PREFIX, parse_result, sweep_id_for
from tune_service.result import SweepResult, TrialResult


@pytest.fixture
def dead_address():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_sweep_ids_are_named_and_unique():
    ids = {sweep_id_for("bert-sst2") for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("bert-sst2-") for i in ids)


def test_the_result_line_round_trips():
    trial = TrialResult("t1", "TERMINATED", {"lr": 0.1}, {"val_accuracy": 0.9}, 3, "/ckpt", "run1")
    result = SweepResult(
        "s", "s-1", "random", "val_accuracy", "max", "t1", {"lr": 0.1}, {"val_accuracy": 0.9}, "/ckpt",
        "http://mlflow", "1", "p", "run1", "/storage/s-1", 12.5, [trial], model_version="3",
    )  # fmt: skip
    logs = f"noise\n{RESULT_PREFIX}{result.to_json()}\n(TrialWriter pid=1) more noise\n"
    back = parse_result(logs)
    assert back == result
    assert back.best_value == 0.9 and back.trials[0].checkpoint == "/ckpt"
    assert parse_result("no result here\n") is None


def test_an_unreachable_cluster_is_a_clear_error(dead_address):
    with pytest.raises(ClusterUnreachable, match=r"cannot reach the Ray job API at http://127\.0\.0\.1"):
        SweepJob("some-sweep", dead_address).status()


def test_a_bad_spec_is_refused_before_the_cluster_is_contacted(make_spec, dead_address):
    with pytest.raises(SpecError, match="search.metric"):
        submit_sweep(make_spec(search={"metric": "val_acc"}), dead_address)


def test_cli_exit_code_2_for_an_unreachable_cluster(dead_address, capsys):
    assert main(["status", "some-sweep", "--address", dead_address]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the Ray job API") and err.count("\n") <= 2
