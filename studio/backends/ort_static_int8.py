"""ONNX Runtime static INT8 in QDQ format, with activation ranges calibrated on held-out texts.

QDQ is what both the CPU and the CUDA/TensorRT execution providers consume; NVIDIA GPUs have no
dynamic INT8, so this is the INT8 recipe for GPUs too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.onnx_graphs import index_path_nodes, load_predictor, op_types, quantized_artifact
from studio.core.errors import StudioError
from studio.core.inputs import encode

# What gains from INT8 in a transformer (ONNX Runtime's guidance: the matrix products), and Gather for
# the embedding tables (its data input only: indices are never quantized). Quantizing every op the QDQ
# quantizer knows also reaches masks and relative-position index arithmetic (DeBERTa's buckets,
# ModernBERT's local window) and loses accuracy there for no speed.
STATIC_OPS = ("MatMul", "Gemm", "Gather")


class _CalibrationReader:
    """Feeds one calibration text at a time to ORT's calibrator, reporting progress and honouring cancel.

    All texts are padded to the longest one: the histogram calibrators (entropy, percentile) stack
    every sample's activations and refuse ragged shapes.
    """

    def __init__(
        self, ctx: BuildContext, input_names: list[str], texts: list[str], pairs: list[str] | None
    ) -> None:
        self.ctx = ctx
        self.feeds = encode(ctx.model.tokenizer, texts, input_names, ctx.recipe.seq_len, pairs=pairs)
        self.count = len(texts)
        self._iter: Iterator[int] = iter(range(self.count))

    def get_next(self) -> dict[str, Any] | None:
        index = next(self._iter, None)
        if index is None:
            return None
        self.ctx.check_cancel()
        self.ctx.report("calibrate", index + 1, self.count)
        return {name: array[index : index + 1] for name, array in self.feeds.items()}

    def rewind(self) -> None:
        self._iter = iter(range(self.count))


ENTROPY_BINS = 2048  # histogram bins for entropy calibration (TensorRT's convention: 2048 into 128)
RANGES_FILE = "ranges.json"
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}  # onnxruntime's names


def calibrated_ranges(
    ctx: BuildContext, source: Path, prepared: Path, ops: list[str], method_name: str
) -> Path:
    """Activation ranges of `source`, calibrated on `prepared` (its pre-processed form) and cached by
    `source`: the same texts, method and graph give the same ranges
    whatever nodes a recipe then leaves in float, so variants (exclude_nodes, sensitivity, a search)
    calibrate once.

    The entropy calibrator gets 2048 histogram bins: quantize_static passes no bin count, and with its
    default of 128 bins into 128 quantized bins the KL search has one candidate, the full range, so
    "entropy" gave minmax's ranges byte for byte."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    method = getattr(CalibrationMethod, METHODS[method_name])
    assert ctx.recipe.calibration is not None
    samples = ctx.recipe.calibration.samples
    texts, pairs = ctx.calibration_sample(samples)

    def build(folder: Path) -> None:
        import onnx

        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            inputs = [i.name for i in onnx.load(str(prepared), load_external_data=False).graph.input]
            reader = _CalibrationReader(
                ctx, [n for n in ctx.model.info.input_names if n in inputs], texts, pairs
            )
            options = (
                {"num_bins": ENTROPY_BINS, "num_quantized_bins": 128}
                if method == CalibrationMethod.Entropy
                else {}
            )
            calibrator = create_calibrator(
                prepared,
                ops,
                augmented_model_path=str(Path(scratch) / "augmented.onnx"),
                calibrate_method=method,
                providers=["CPUExecutionProvider"],
                extra_options=options,
            )
            calibrator.collect_data(reader)
            save_tensors_data(calibrator.compute_data(), folder / RANGES_FILE)

    key = ctx.cache.key(
        model=ctx.model.info.content_hash,
        step="calibrate",
        source=source.parent.name,
        method=method_name,
        ops=ops,
        seq_len=ctx.recipe.seq_len,
        texts=ctx.calibration_digest(samples),
    )
    folder, _ = ctx.cache.get_or_build(key, build, step="calibrate", model=ctx.model.info.name)
    return folder / RANGES_FILE


def pre_process(source: Path, target: Path) -> None:
    """Shape-infer the graph so the calibrator sees every float activation.

    Symbolic inference (with auto_merge) types the outputs of fused com.microsoft ops; without it the
    tensors after them are skipped by calibration and the quantizer fails on the classifier's bias.
    On the plain export it fails ("Incomplete symbolic shape inference"): plain ONNX inference then.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=False, auto_merge=True)
    except Exception:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)


class OrtStaticInt8:
    def prepare(self, ctx: BuildContext) -> Artifact:
        calibration = ctx.recipe.calibration
        assert calibration is not None  # the recipe validator guarantees it
        if not ctx.calibration_sample(calibration.samples)[0]:
            raise StudioError(
                "static INT8 needs calibration texts and none were given",
                "pass --calibration FILE or an --eval file",
            )

        def write(source: Path, target: Path) -> None:
            import onnx
            from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

            with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
                prepared = Path(scratch) / "prepared.onnx"
                ctx.report("pre-process", 0, 1)
                pre_process(source, prepared)
                present = op_types(prepared)
                ops = [op for op in STATIC_OPS if op in present and op not in ctx.recipe.exclude_ops]
                index_nodes = index_path_nodes(prepared, ops)
                if index_nodes:
                    ctx.notes.append(
                        f"{len(index_nodes)} {'/'.join(ops)} nodes compute indices or positions: left in float"
                    )
                try:
                    ranges = calibrated_ranges(ctx, source, prepared, ops, calibration.method)
                except ValueError as error:
                    if "Too many bins" not in str(error):
                        raise
                    raise StudioError(
                        f"{calibration.method} calibration cannot histogram this model's activations (one of "
                        "them spans too wide a range, e.g. a mask of float32's minimum)",
                        "use the minmax calibration method",
                    ) from None
                ctx.report("quantize (static INT8, QDQ)", 0, 1)
                quantize_static(
                    prepared,
                    target,
                    None,
                    quant_format=QuantFormat.QDQ,
                    per_channel=ctx.recipe.per_channel,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, METHODS[calibration.method]),
                    op_types_to_quantize=ops,
                    nodes_to_exclude=list(dict.fromkeys([*ctx.recipe.exclude_nodes, *index_nodes])) or None,
                    calibration_providers=["CPUExecutionProvider"],
                    calibration_cache_path=ranges,
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )

        return quantized_artifact(
            ctx, f"int8-static-ranges-{ctx.calibration_digest(calibration.samples)}", write
        )

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        return load_predictor(ctx, artifact)
