"""Integration tier: one in-process Ray per module, a fresh MLflow store and Tune storage per test."""

from __future__ import annotations

import pytest
import ray


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def where(tmp_path):
    return {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "storage_path": str(tmp_path / "ray"), "verbose": 0}
