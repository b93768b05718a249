"""Integration tier: one in-process Ray for the tier, a fresh MLflow store and Tune storage per test."""

from __future__ import annotations

import pytest
import ray


@pytest.fixture(scope="session", autouse=True)
def ray_session():
    # one Ray for every integration module: each sweep starts and ends its own writers, and
    # run_sweep leaves a Ray it did not start running
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def where(tmp_path, monkeypatch):
    # MLflow keeps a SQLite store's artifacts in ./mlruns: the test's own folder, not the checkout
    monkeypatch.chdir(tmp_path)
    return {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "storage_path": str(tmp_path / "ray"), "verbose": 0}
