"""Reading an artifact's interface (names, dtypes, dynamic axes, opset) for the deployment contract."""

from __future__ import annotations

from pathlib import Path

from studio.deploy.evidence import TensorSpec

BATCH, SEQUENCE = "batch", "sequence"


def onnx_interface(path: Path) -> tuple[list[TensorSpec], list[TensorSpec], dict[str, int]]:
    """Inputs and outputs as the graph declares them, and the opset of each domain its nodes use."""
    import onnx
    from onnx import helper

    proto = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in proto.graph.initializer}

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        shape: list[str | int] = [
            d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor.shape.dim
        ]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        return TensorSpec(name=value.name, dtype=dtype, shape=shape)

    inputs = [spec(v) for v in proto.graph.input if v.name not in initializers]
    outputs = [spec(v) for v in proto.graph.output]
    # Only the domains the graph's nodes use: quantizers declare many they never need.
    used = {node.domain or "ai.onnx" for node in proto.graph.node} | {"ai.onnx"}
    opset = {
        (entry.domain or "ai.onnx"): int(entry.version)
        for entry in proto.opset_import
        if (entry.domain or "ai.onnx") in used
    }
    return inputs, outputs, opset


def dynamic_axes(specs: list[TensorSpec]) -> dict[str, dict[str, str]]:
    return {
        spec.name: {str(i): str(dim) for i, dim in enumerate(spec.shape) if isinstance(dim, str)}
        for spec in specs
        if any(isinstance(dim, str) for dim in spec.shape)
    }


def token_inputs(names: list[str]) -> list[TensorSpec]:
    """The int64 [batch, sequence] inputs a torch program takes."""
    return [TensorSpec(name=name, dtype="int64", shape=[BATCH, SEQUENCE]) for name in names]
