"""The CLI as a user types it: the quickstart example in smoke mode (real MiniLM), bad input, schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tune_service import load_spec, smoke_spec

ROOT = Path(__file__).resolve().parents[2]
CLI = [str(Path(sys.executable).parent / "tune-service")]  # the installed console script
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
# Through the CLI, in a fresh process with its own Ray: the quickstart as a user first types it. The other
# examples: tests/integration/test_examples.py
AS_TYPED = [QUICKSTART]


def cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def run_example(example: Path, where: Path) -> dict:
    """Run ``example`` in smoke mode through the CLI in ``where``; check its output, runs and result."""
    proc = cli(
        "run", str(example), "--smoke-test", "--num-cpus", "2",
        "--storage-path", str(where / "ray"), "--json", "result.json",
        cwd=where,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    epochs = smoke_spec(load_spec(example)).hyperparameters.epochs
    assert "Best trial" in out and f"epoch {epochs}/{epochs}" in out
    name = smoke_spec(load_spec(example)).name
    assert f"Registered {name} version 1: version 1 is champion: there was no champion" in out
    assert f"mlflow models serve -m 'models:/{name}@champion'" in out
    # the default tracking store is a SQLite file in the working directory
    db = where / "mlflow.db"
    assert f"mlflow ui --backend-store-uri sqlite:///{db}" in out
    result = json.loads((where / "result.json").read_text())
    assert len(result["trials"]) == 2
    assert all(t["status"] == "TERMINATED" for t in result["trials"])
    assert result["best_trial_id"] in {t["trial_id"] for t in result["trials"]}

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs(
        [result["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{result['parent_run_id']}'"
    )
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert client.get_run(result["parent_run_id"]).info.status == "FINISHED"
    return result


@pytest.mark.parametrize("example", AS_TYPED, ids=[p.stem for p in AS_TYPED])
def test_example_runs_as_typed(example, tmp_path):
    run_example(example, tmp_path)


# the console script as typed; the whole catalogue of bad input runs in tests/e2e/test_bad_input.py
BAD_INPUT = [
    (
        "bad-lr",
        "task: {type: text_classification}\n"
        "hyperparameters:\n  groups:\n    encoder: {lr: {loguniform: [0, 1.0e-3]}}\n    head: {lr: 1.0e-3}\n",
        "hyperparameters.groups.encoder.lr: loguniform needs low > 0",
    ),
]


@pytest.mark.parametrize("name,body,message", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_exits_2_before_ray_or_mlflow(tmp_path, name, body, message):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\n{body}")
    proc = cli("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_validate_accepts_examples_and_refuses_typos(tmp_path):
    ok = cli("validate", str(QUICKSTART), cwd=tmp_path)
    assert ok.returncode == 0 and "valid sweep spec" in ok.stdout
    typo = tmp_path / "typo.yaml"
    typo.write_text(QUICKSTART.read_text().replace("num_samples:", "num_sample:"))
    bad = cli("validate", str(typo), "--spec-only", cwd=tmp_path)
    assert bad.returncode == 2
    assert "search.num_sample: unknown key 'num_sample' (did you mean 'num_samples'?)" in bad.stderr


def test_schema_prints_json_schema(tmp_path):
    proc = cli("schema", cwd=tmp_path)
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema["title"] == "SweepSpec" and "hyperparameters" in schema["properties"]


def test_trainable_runs_without_ray(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trainables.text_classification", "--smoke-test"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"val_accuracy", "val_f1", "val_loss", "train_loss"}
    assert 0 <= metrics["val_accuracy"] <= 1
