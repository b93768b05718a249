"""Cluster tier: several Ray nodes on this machine (``ray.cluster_utils.Cluster``), one cluster per test."""

from __future__ import annotations

import pytest
import ray
from ray.cluster_utils import Cluster


@pytest.fixture
def cluster():
    """A head and a worker node, one CPU each; the test's driver connects through ``address``."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """cluster/local-cluster.sh as a user runs it: a head, workers and an MLflow server on 127.0.0.1."""

    def __init__(self, root, workers: int, **env):
        import os
        import sys
        from pathlib import Path

        self.script = Path(__file__).resolve().parents[2] / "cluster" / "local-cluster.sh"
        self.dir = root / "cluster"
        self.workers = workers
        self.ports = {"RAY_PORT": _free_port(), "DASHBOARD_PORT": _free_port(), "MLFLOW_PORT": _free_port()}
        self.base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))},
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "CLUSTER_DIR": str(self.dir),
            **{k: str(v) for k, v in self.ports.items()},
            **env,
        }
        self.env: dict[str, str] = {}

    def _script(self, *args: str, timeout: float = 300):
        import subprocess

        return subprocess.run(
            [str(self.script), *args], env=self.base_env, capture_output=True, text=True, timeout=timeout, check=True
        )

    def up(self) -> LocalCluster:
        out = self._script("up", str(self.workers)).stdout
        for line in out.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value
        return self

    def down(self) -> None:
        self._script("down", timeout=120)

    @property
    def client_env(self) -> dict[str, str]:
        """This process's environment with the cluster's (the lines `up` prints) on top."""
        return {**self.base_env, **self.env}

    @property
    def token(self) -> str:
        return (self.dir / "auth_token").read_text()


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    """A head (1 CPU) and one worker (1 CPU, 1 logical GPU) with token auth, and an MLflow server."""
    c = LocalCluster(tmp_path_factory.mktemp("local"), workers=1, HEAD_CPUS="1", CPUS_PER_NODE="1", GPUS_PER_NODE="1")
    try:
        yield c.up()
    finally:
        c.down()
