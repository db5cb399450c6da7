"""Per-layer sensitivity of an ONNX Runtime quantization recipe (static INT8, dynamic INT8, INT4 weight-only).

For every matrix product the recipe would quantize (MatMul/Gemm, the ops that gain), and for every
transformer layer's group of them: the output KL to the float graph when that node alone is quantized,
and the agreement when that node alone is kept in float (everything else quantized). Both are built
with the recipe's own backend through `exclude_nodes`, so what is measured is what the recipe would
ship; artifacts are cached like any other. For static INT8 the activation SQNR at each node of the
fully quantized graph comes from ONNX Runtime's `qdq_loss_debug`.

A causal LM is measured on its next-token distributions (every position of the first windows of the
sample's token stream): KL is the mean KL over positions, agreement the share of positions with the same
top-1. Its output projection is left out (the recipes keep it in float unless `quantize_lm_head`), and
`nodes=False` ranks transformer layers only (two builds per layer instead of two per matrix product).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.backends.base import BuildContext
from studio.backends.onnx_graphs import (
    OrtPredictor,
    index_path_nodes,
    lm_head_nodes,
    open_session,
    source_graph,
)
from studio.core.cache import ArtifactCache
from studio.core.catalogue import get_spec
from studio.core.dataset import TextSet
from studio.core.errors import StudioError
from studio.core.kinds.text import TextMeasurer
from studio.core.measure import fidelity
from studio.core.model import Model
from studio.core.recipe import Recipe
from studio.core.types import Precision

SUPPORTED = ("ort-int8-static", "ort-int8-dynamic", "ort-int4")
PRODUCTS = ("MatMul", "Gemm")
SQNR_SAMPLE = 8  # inputs for the SQNR pass, which keeps every activation of both graphs in memory
LM_WINDOWS, LM_WINDOW = 2, 128  # a causal LM's sample: full-vocabulary logits at every position
_LAYER = re.compile(r"layers?[./_](\d+)")

Report = Callable[[str, int, int], None]


@dataclass
class Sensitivity:
    """One node or one layer's group of nodes."""

    name: str
    op_type: str  # "MatMul", "Gemm", or "layer" for a group
    nodes: list[str]
    kl_when_quantized_alone: float
    agreement_when_kept_float: float | None  # None: not measured (`recovery=False`)
    sqnr_db: float | None = None  # the activation the node reads, fully quantized graph vs float (static)
    weight_sqnr_db: float | None = None  # its weight, dequantized vs float (static)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op_type": self.op_type,
            "nodes": self.nodes,
            "kl_when_quantized_alone": self.kl_when_quantized_alone,
            "agreement_when_kept_float": self.agreement_when_kept_float,
            "sqnr_db": self.sqnr_db,
            "weight_sqnr_db": self.weight_sqnr_db,
        }


@dataclass
class SensitivityReport:
    recipe: str
    sample: int
    agreement_all_quantized: float
    kl_all_quantized: float
    layers: list[Sensitivity] = field(default_factory=list)  # nodes, worst first
    groups: list[Sensitivity] = field(default_factory=list)  # transformer layers, worst first

    def payload(self) -> dict[str, Any]:
        """As `qstudio sensitivity --json` writes it: `layers` (nodes) and `groups`, worst first."""
        return {
            "recipe": self.recipe,
            "sample": self.sample,
            "agreement_all_quantized": self.agreement_all_quantized,
            "kl_all_quantized": self.kl_all_quantized,
            "layers": [entry.as_dict() for entry in self.layers],
            "groups": [entry.as_dict() for entry in self.groups],
        }


def layer_of(node: str) -> str:
    """The transformer layer a node belongs to, from its exported name ("layer 3"), or "other"."""
    match = _LAYER.search(node)
    return f"layer {match.group(1)}" if match else "other"


def quantizable_nodes(graph_path: Path, constant_weights_only: bool = False) -> list[tuple[str, str]]:
    """(name, op type) of the matrix products a recipe quantizes, index paths left out. Dynamic INT8 and
    INT4 quantize only products whose second input is a weight (ORT's MatMulConstBOnly, MatMulNBits):
    with `constant_weights_only` the others (attention scores, a rotary embedding's positions) are left
    out, as quantizing one "alone" would quantize nothing."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    skipped = set(index_path_nodes(graph_path, PRODUCTS))
    weights = {initializer.name for initializer in graph.initializer}
    return [
        (n.name, n.op_type)
        for n in graph.node
        if n.op_type in PRODUCTS
        and n.name
        and n.name not in skipped
        and (not constant_weights_only or (len(n.input) > 1 and n.input[1] in weights))
    ]


class _Outputs:
    """Outputs of a predictor on the sample, in order (the kind's own batching)."""

    def __init__(self, model: Model, sample: TextSet) -> None:
        from studio.core.settings import RunSettings

        self.measurer = TextMeasurer(model, sample, RunSettings())

    def __call__(self, predictor: Any, recipe: Recipe) -> np.ndarray:
        return self.measurer.outputs(predictor, recipe)


class _NextTokens:
    """A causal LM's next-token logits at every position of the first windows of the sample's stream."""

    def __init__(self, model: Model, sample: TextSet) -> None:
        from studio.core.kinds.causal_lm import token_stream, windows

        blocks, _ = windows(token_stream(model.tokenizer, sample.texts), LM_WINDOW)
        self.blocks = blocks[:LM_WINDOWS]

    def __call__(self, predictor: Any, recipe: Recipe) -> np.ndarray:
        rows = [np.asarray(predictor.logits(block[None, :]))[0] for block in self.blocks]
        return np.concatenate(rows).astype(np.float32)


def _float_predictor(model: Model, graph: Path, recipe: Recipe) -> Any:
    session = open_session(graph, "cpu", recipe.threads)
    if model.is_causal_lm:
        from studio.backends.ort_lm import OrtCausalLM

        return OrtCausalLM(session)
    return OrtPredictor(session, model.info.output_name)


def analyse(
    model: Model,
    recipe: Recipe,
    sample: TextSet,
    calibration: TextSet,
    cache: ArtifactCache,
    precision: Precision,
    report: Report = lambda stage, done, total: None,
    groups: bool = True,
    nodes: bool = True,
    recovery: bool = True,
) -> SensitivityReport:
    """Rank the recipe's quantizable nodes (and layers) by the error each causes; see the module doc.
    `recovery=False` skips the kept-in-float builds (half the cost; the ranking is by KL alone).
    Each variant's artifact is removed once measured, unless it was in the cache before: a causal LM's
    ranking builds dozens of model-sized files that nothing reuses."""
    if recipe.backend not in SUPPORTED:
        raise StudioError(
            f"sensitivity covers {', '.join(SUPPORTED)} recipes; {recipe.name} uses {recipe.backend}",
            "pick an ONNX Runtime INT8 or INT4 recipe",
        )
    if model.info.task not in ("text-classification", "text-generation"):
        raise StudioError(
            "sensitivity ranks by output KL and agreement, which need a classifier's labels or a causal "
            "LM's next tokens",
            "open a text classifier or a causal language model (plain encoders are not covered)",
        )
    spec = get_spec(recipe.backend)
    backend = spec.load()

    def context(variant: Recipe) -> BuildContext:
        return BuildContext(model, variant, cache, precision, calibration.texts, calibration.pairs)

    outputs: Callable[[Any, Recipe], np.ndarray] = (
        _NextTokens(model, sample) if model.is_causal_lm else _Outputs(model, sample)
    )
    base = context(recipe)
    float_graph = source_graph(base)
    reference = outputs(_float_predictor(model, float_graph, recipe), recipe)
    products = quantizable_nodes(float_graph, constant_weights_only=recipe.mode != "static")
    if model.is_causal_lm and not recipe.quantize_lm_head:  # the recipe leaves it in float anyway
        head = set(lm_head_nodes(float_graph))
        products = [(name, op) for name, op in products if name not in head]
    if not products:
        raise StudioError(f"{float_graph.name} has no MatMul or Gemm to quantize", "check the exported graph")
    names = [name for name, _ in products]
    groups = groups or not nodes
    per_entry = 2 if recovery else 1
    steps = (len(products) if nodes else 0) + (len({layer_of(n) for n in names}) if groups else 0)
    steps = steps * per_entry + 1
    done = 0

    def measure(excluded: list[str], keep: bool = False) -> tuple[float, float, Any]:
        nonlocal done
        variant = recipe.model_copy(
            update={"exclude_nodes": tuple(dict.fromkeys([*recipe.exclude_nodes, *excluded]))}
        )
        ctx = context(variant)
        artifact = backend.prepare(ctx)
        result = outputs(backend.load(ctx, artifact), variant)
        fid = fidelity(reference, result, classification=True)
        if not keep and not artifact.from_cache and artifact.path is not None:
            cache.discard(artifact.path.parent)
        done += 1
        report("sensitivity", done, steps)
        return fid.kl or 0.0, fid.top1_agreement or 0.0, artifact

    kl_all, agreement_all, full = measure([], keep=True)  # what the recipe itself builds: kept
    static = recipe.backend == "ort-int8-static"
    activation_sqnr, weight_sqnr = (
        _sqnr(float_graph, full.path, model, sample, recipe) if static else ({}, {})
    )

    def lowest(values: dict[str, float], members: list[str]) -> float | None:
        found = [values[m] for m in members if m in values]
        return min(found) if found else None

    def entry(name: str, op_type: str, members: list[str]) -> Sensitivity:
        others = [n for n in names if n not in members]
        kl_alone, _, _ = measure(others)
        agreement_float = measure(members)[1] if recovery else None
        return Sensitivity(
            name, op_type, members, kl_alone, agreement_float,
            lowest(activation_sqnr, members), lowest(weight_sqnr, members),
        )  # fmt: skip

    layers = [entry(name, op, [name]) for name, op in products] if nodes else []
    grouped: dict[str, list[str]] = {}
    for name in names:
        grouped.setdefault(layer_of(name), []).append(name)
    group_entries = [entry(layer, "layer", members) for layer, members in grouped.items()] if groups else []

    def rank(entries: list[Sensitivity]) -> list[Sensitivity]:
        return sorted(
            entries, key=lambda e: (-e.kl_when_quantized_alone, -(e.agreement_when_kept_float or 0.0))
        )

    return SensitivityReport(
        recipe.name, len(sample), agreement_all, kl_all, rank(layers), rank(group_entries)
    )


def _sqnr(
    float_graph: Path, quantized: Path | None, model: Model, sample: TextSet, recipe: Recipe
) -> tuple[dict[str, float], dict[str, float]]:
    """SQNR (dB) of the activation each matrix product reads in the fully quantized QDQ graph against
    the float graph, with ONNX Runtime's qdq_loss_debug; keyed by node name."""
    import tempfile

    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        compute_weight_error,
        create_activation_matching,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    from studio.core.inputs import encode, pick

    if quantized is None:
        return {}, {}
    names = list(model.info.input_names)
    rows = list(range(min(SQNR_SAMPLE, len(sample))))

    class Reader:
        def __init__(self) -> None:
            self.items = iter(rows)

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self.items, None)
            if i is None:
                return None
            return encode(
                model.tokenizer, [sample.texts[i]], names, recipe.seq_len, pairs=pick(sample.pairs, [i])
            )

        def __iter__(self) -> Any:
            return iter(self.get_next, None)

    from studio.backends.ort_static_int8 import pre_process

    with tempfile.TemporaryDirectory() as scratch:
        float_aug, quant_aug = Path(scratch) / "float.onnx", Path(scratch) / "quant.onnx"
        typed = Path(scratch) / "typed.onnx"  # shape-inferred, as the quantizer saw it: tensors have types
        pre_process(float_graph, typed)
        # every float tensor of both graphs (the QDQ pairs are what gets matched), on a few inputs only
        modify_model_output_intermediate_tensors(str(typed), str(float_aug))
        modify_model_output_intermediate_tensors(str(quantized), str(quant_aug))
        float_inputs = {i.name for i in onnx.load(str(float_aug), load_external_data=False).graph.input}
        names = [n for n in names if n in float_inputs]
        matching = create_activation_matching(
            collect_activations(str(quant_aug), Reader()), collect_activations(str(float_aug), Reader())
        )
        errors = compute_activation_error(matching)
        weight_errors = compute_weight_error(create_weight_matching(str(typed), str(quantized)))
    graph = onnx.load(str(float_graph), load_external_data=False).graph
    activations: dict[str, float] = {}
    weights: dict[str, float] = {}
    for node in graph.node:
        if node.op_type not in PRODUCTS or len(node.input) < 2:
            continue
        value = errors.get(node.input[0], {}).get("xmodel_err")
        if value is not None and np.isfinite(value):
            activations[node.name] = float(value)
        if node.input[1] in weight_errors and np.isfinite(weight_errors[node.input[1]]):
            weights[node.name] = float(weight_errors[node.input[1]])
    return activations, weights
