"""Integration tier: one in-process Ray for the tier, a fresh MLflow store and Tune storage per test."""

from __future__ import annotations

import pytest
import ray


@pytest.fixture(scope="session", autouse=True)
def ray_session():
    # one Ray for every integration module: each sweep starts and ends its own writers, and
    # run_sweep leaves a Ray it did not start running. Ray keeps idle workers up to its soft limit
    # (the CPU count by default, which a sweep's trial actors fill, so the idle ones are ended): at 6,
    # the workers of one sweep's end (scoring, error analysis, packaging the winner) wait warm, torch
    # and transformers imported, for the next sweep's; a sweep's end goes from about 9 s to 1 s.
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
        _system_config={"num_workers_soft_limit": 6},
    )  # fmt: skip
    yield
    ray.shutdown()


@pytest.fixture
def where(tmp_path, monkeypatch):
    # MLflow keeps a SQLite store's artifacts in ./mlruns: the test's own folder, not the checkout
    monkeypatch.chdir(tmp_path)
    return {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "storage_path": str(tmp_path / "ray"), "verbose": 0}
