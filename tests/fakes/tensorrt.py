"""A faithful stand-in for the `tensorrt` Python API (10.x), for testing the TensorRT backend on a CPU.

It keeps TensorRT's contract where the studio could get it wrong: networks come from the ONNX parser
(which refuses ops it does not know), every input needs an optimization profile, shapes outside the
profile are refused, INT8 pulls calibration batches through raw pointers, an engine is opaque bytes,
and a context reads inputs from and writes outputs to raw addresses set per tensor name. The engine lists
an extra output before the real one, so binding by position instead of by name gives garbage. Execution
runs the same ONNX graph with ONNX Runtime on the CPU (outputs rounded through FP16 when FP16 is on).
"""

from __future__ import annotations

import ctypes
import enum
import json
from typing import Any

import numpy as np

__version__ = "10.99.0+fake"


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    INT64 = 5
    FP8 = 6


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class BuilderFlag(enum.Enum):
    FP16 = 0
    INT8 = 1
    FP8 = 2


NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32, DataType.INT64: np.int64}
EXTRA_OUTPUT = "debug_scores"
KNOWN_DOMAINS = ("", "ai.onnx")
log: list[str] = []  # what the fake saw, for assertions


def nptype(dtype: DataType) -> Any:
    return NUMPY[dtype]


class Logger:
    WARNING = 2
    INFO = 3

    def __init__(self, severity: int = 2) -> None:
        self.severity = severity


class _Tensor:
    def __init__(self, name: str, dtype: DataType, dims: list[int]) -> None:
        self.name, self.dtype, self.shape = name, dtype, dims


class INetworkDefinition:
    def __init__(self) -> None:
        self.inputs: list[_Tensor] = []
        self.outputs: list[_Tensor] = []
        self.onnx_path = ""

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> _Tensor:
        return self.inputs[index]


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        self.network = network
        self.errors: list[str] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> str:
        return self.errors[index]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        model = onnx.load(path)
        unknown = sorted({f"{n.domain}:{n.op_type}" for n in model.graph.node if n.domain not in KNOWN_DOMAINS})
        if unknown:
            self.errors = [f"No importer registered for op: {op}" for op in unknown]
            return False
        initializers = {i.name for i in model.graph.initializer}
        for value in model.graph.input:
            if value.name not in initializers:
                self.network.inputs.append(_Tensor(value.name, DataType.INT64, [-1, -1]))
        for value in model.graph.output:
            dims = [d.dim_value or -1 for d in value.type.tensor_type.shape.dim]
            self.network.outputs.append(_Tensor(value.name, DataType.FLOAT, dims))
        self.network.onnx_path = path
        return True


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}

    def set_shape(self, name: str, low: tuple[int, ...], opt: tuple[int, ...], high: tuple[int, ...]) -> None:
        if not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
            raise ValueError(f"profile for {name}: need min <= opt <= max, got {low} {opt} {high}")
        self.shapes[name] = (tuple(low), tuple(opt), tuple(high))


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags: set[BuilderFlag] = set()
        self.profiles: list[IOptimizationProfile] = []
        self.int8_calibrator: Any = None
        self.calibration_profile: IOptimizationProfile | None = None

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return flag in self.flags

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: IOptimizationProfile) -> None:
        self.calibration_profile = profile


class IInt8Calibrator:
    def __init__(self) -> None:
        pass


class IInt8MinMaxCalibrator(IInt8Calibrator):
    algorithm = "minmax"


class IInt8EntropyCalibrator2(IInt8Calibrator):
    algorithm = "entropy"


def _read(pointer: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    count = int(np.prod(shape))
    buffer = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(pointer)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape).copy()


def _write(pointer: int, array: np.ndarray) -> None:
    data = np.ascontiguousarray(array)
    ctypes.memmove(pointer, data.ctypes.data, data.nbytes)


class Builder:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition()

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
        if not config.profiles:
            log.append("error: dynamic inputs need an optimization profile")
            return None
        profile = config.profiles[0]
        missing = [t.name for t in network.inputs if t.name not in profile.shapes]
        if missing:
            log.append(f"error: no profile for {missing}")
            return None
        calibrated = 0
        if BuilderFlag.INT8 in config.flags:
            calibrator = config.int8_calibrator
            if calibrator is None or config.calibration_profile is None:
                log.append("error: INT8 without calibrator or calibration profile")
                return None
            names = [t.name for t in network.inputs]
            opt = config.calibration_profile.shapes[names[0]][1]
            while (pointers := calibrator.get_batch(names)) is not None:
                batch = {name: _read(p, (calibrator.get_batch_size(), opt[1]), np.int64) for name, p in zip(names, pointers, strict=True)}
                if batch["input_ids"].min() < 0:
                    log.append("error: calibration batch is not token ids")
                    return None
                calibrated += 1
            calibrator.write_calibration_cache(b"fake calibration table")
        engine = {
            "onnx": network.onnx_path,
            "inputs": [t.name for t in network.inputs],
            "outputs": [[t.name, t.shape] for t in network.outputs],
            "flags": sorted(f.name for f in config.flags),
            "profile": {k: [list(v) for v in shapes] for k, shapes in profile.shapes.items()},
            "calibrated_batches": calibrated,
            "calibrator": getattr(config.int8_calibrator, "algorithm", None),
        }
        log.append(f"built {engine['flags']} calibrated={calibrated}")
        return json.dumps(engine).encode()


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine | None:
        try:
            return ICudaEngine(json.loads(data))
        except ValueError:
            return None


class ICudaEngine:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        # an extra output first: binding by position instead of by name reads the wrong tensor
        self.names = [*spec["inputs"], EXTRA_OUTPUT, *[name for name, _ in spec["outputs"]]]

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name in self.spec["inputs"] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType.INT64 if name in self.spec["inputs"] else DataType.FLOAT

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        import onnxruntime as ort

        self.engine = engine
        self.session = ort.InferenceSession(engine.spec["onnx"], providers=["CPUExecutionProvider"])
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        low, _, high = self.engine.spec["profile"][name]
        if not all(a <= s <= b for a, s, b in zip(low, shape, high, strict=True)):
            raise RuntimeError(f"shape {shape} of {name} is outside the optimization profile {low}..{high}")
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        if name not in self.engine.names:
            raise RuntimeError(f"no tensor named {name}")
        self.addresses[name] = address
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self.shapes:
            return self.shapes[name]
        batch, seq = next(iter(self.shapes.values()))
        if name == EXTRA_OUTPUT:
            return (batch, 7)
        dims = dict(self.engine.spec["outputs"])[name]
        return (batch, seq, dims[-1]) if len(dims) == 3 else (batch, dims[-1])

    def execute_async_v3(self, stream: int) -> bool:
        missing = [n for n in self.engine.names if n not in self.addresses]
        if missing:
            raise RuntimeError(f"no address set for {missing}")
        feeds = {n: _read(self.addresses[n], self.shapes[n], np.int64) for n in self.engine.spec["inputs"]}
        names = [o.name for o in self.session.get_outputs()]
        outputs = dict(zip(names, self.session.run(names, feeds), strict=True))
        for name, value in outputs.items():
            if "FP16" in self.engine.spec["flags"]:
                value = value.astype(np.float16).astype(np.float32)
            _write(self.addresses[name], value.astype(np.float32))
        batch = next(iter(self.shapes.values()))[0]
        _write(self.addresses[EXTRA_OUTPUT], np.full((batch, 7), 1e4, dtype=np.float32))
        return True
