"""The cluster's nodes as the studio sees them: each node's capability probe, nodes grouped into types.

Two nodes are of one type when their probes match (CPU model and instruction sets, GPUs and their compute
capability, runtimes): a recipe is scheduled only on the nodes of a type that can run it (Ray's node-id
labels), and its speed-up is against the FP32 reference timed on a node of the same type.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from studio.core.capability import Availability, assess
from studio.core.hardware import HardwareInfo
from studio.core.model import ModelInfo
from studio.core.recipe import Recipe


@dataclass(frozen=True)
class NodeProbe:
    node_id: str
    host: str
    cpus: float  # the node's Ray CPU resource
    gpus: float
    hardware: HardwareInfo


@dataclass(frozen=True)
class NodeType:
    name: str
    signature: str
    hardware: HardwareInfo
    node_ids: tuple[str, ...]
    hosts: tuple[str, ...]
    cpus: int  # the fewest CPUs among its nodes: the most one task may ask for
    gpus: float

    @property
    def has_gpu(self) -> bool:
        return bool(self.hardware.gpus)

    def can_run(self, recipe: Recipe, model: ModelInfo) -> Availability:
        availability = assess(recipe, self.hardware, model)
        if availability.available and recipe.device == "cuda" and self.gpus < 1:
            return Availability(recipe.name, False, "its nodes advertise no GPU resource to Ray")
        return availability


def signature(hardware: HardwareInfo) -> str:
    """What makes two nodes interchangeable for a recipe and its timing."""
    parts = {
        "cpu": hardware.cpu.model,
        "cores": hardware.cpu.logical_cores,
        "flags": sorted(hardware.cpu.flags),
        "gpus": [(g.name, list(g.compute_capability), g.memory_total_bytes) for g in hardware.gpus],
        "runtimes": hardware.runtimes,
        "providers": hardware.ort_providers,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _short(text: str, width: int = 28) -> str:
    text = " ".join(text.replace("(R)", "").replace("(TM)", "").replace("CPU", "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def group(probes: list[NodeProbe]) -> list[NodeType]:
    """Node types, GPU-less first (CPU recipes go there and leave the GPUs free), then by size."""
    by_signature: dict[str, list[NodeProbe]] = {}
    for probe in probes:
        if probe.cpus < 1:  # a head node started with --num-cpus 0 runs no task
            continue
        by_signature.setdefault(signature(probe.hardware), []).append(probe)
    types = []
    for sig, members in by_signature.items():
        hardware = members[0].hardware
        what = f"{len(hardware.gpus)}x {_short(hardware.gpus[0].name)}" if hardware.gpus else "CPU"
        types.append(
            NodeType(
                name=f"{what} · {_short(hardware.cpu.model)} · {sig[:6]}",
                signature=sig,
                hardware=hardware,
                node_ids=tuple(p.node_id for p in members),
                hosts=tuple(sorted({p.host for p in members})),
                cpus=int(min(p.cpus for p in members)),
                gpus=min(p.gpus for p in members),
            )
        )
    return sorted(types, key=lambda t: (t.has_gpu, -len(t.node_ids) * t.cpus, t.name))


def place(recipe: Recipe, model: ModelInfo, types: list[NodeType]) -> tuple[NodeType | None, str]:
    """The node type that runs `recipe` (the first that can), or None and why no type can."""
    reasons = []
    for node_type in types:
        availability = node_type.can_run(recipe, model)
        if availability.available:
            return node_type, ""
        reasons.append(f"{node_type.name}: {availability.reason}")
    if not types:
        return None, "the cluster has no node with a CPU to run tasks"
    return None, "no node of the cluster can run it (" + "; ".join(reasons) + ")"
