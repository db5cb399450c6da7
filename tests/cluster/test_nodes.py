"""Node types from the nodes' probes, and where a recipe goes (no Ray needed)."""

from __future__ import annotations

from studio.cluster.nodes import NodeProbe, group, place
from studio.core.hardware import probe
from studio.core.model import open_model
from studio.core.recipe import resolve_recipe
from tests.fakes.nvml import FakeNvml


def test_cpu_recipes_go_to_cpu_nodes_gpu_recipes_to_gpu_nodes_and_a_cpu_cluster_greys_them(tiny_classifier):
    model = open_model(tiny_classifier).info
    cpu, h100 = probe(FakeNvml.missing()), probe(FakeNvml.with_cards("h100"))
    probes = [
        NodeProbe("gpu-node", "lab-2", 8, 1, h100),
        NodeProbe("cpu-a", "lab-1", 4, 0, cpu),
        NodeProbe("cpu-b", "lab-3", 2, 0, cpu),
        NodeProbe("head", "lab-0", 0, 0, cpu),  # started with --num-cpus 0: runs no task
    ]
    types = group(probes)
    assert [t.node_ids for t in types] == [("cpu-a", "cpu-b"), ("gpu-node",)]
    assert types[0].cpus == 2 and types[0].name.startswith("CPU") and types[1].name.startswith("1x NVIDIA H100")
    int8, fp16 = resolve_recipe("ort-int8-dynamic"), resolve_recipe("torch-cuda-fp16")
    assert place(int8, model, types)[0] is types[0]  # the GPU stays free for what needs it
    assert place(fp16, model, types)[0] is types[1]
    node_type, reason = place(fp16, model, types[:1])
    assert node_type is None and "needs an NVIDIA GPU" in reason and types[0].name in reason
    # A node whose probe sees a GPU that it does not advertise to Ray cannot be given a CUDA task.
    hidden = group([NodeProbe("gpu-hidden", "lab-4", 8, 0, h100)])
    node_type, reason = place(fp16, model, hidden)
    assert node_type is None and "advertise no GPU" in reason
