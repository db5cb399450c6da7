"""A Ray cluster on this machine for the sweep tests: a head that runs no task, two CPU nodes of one type,
and a node that advertises a GPU to Ray and a fake H100 to the studio's probe."""

from __future__ import annotations

import os
from typing import Any

from tests.fakes.nvml import FakeNvml

GPU_ENV = "QSTUDIO_TEST_NODE_GPU"


def node_nvml() -> Any:
    """The NVML a node's probe reads: a fake card where the node was started with GPU_ENV set."""
    card = os.environ.get(GPU_ENV)
    return FakeNvml.with_cards(card) if card else FakeNvml.missing()


def start_cluster() -> Any:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.cpu_nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.gpu_node = cluster.add_node(num_cpus=1, num_gpus=1, env_vars={GPU_ENV: "h100"})
    cluster.wait_for_nodes()
    return cluster
