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
