"""Recipes: declarative TOML files that say how to quantize and how to measure.

One pydantic model validates a recipe whether it comes from a built-in file, a user's file or the GUI
form, so all three give the same one-line message naming the field and the values it allows.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from studio.core.catalogue import REGISTRY
from studio.core.errors import StudioError
from studio.core.paths import resources_dir
from studio.core.types import CalibrationMethod, Device, Mode, Precision, Task

# Fields that change only how an artifact is run and timed, never the artifact itself.
_RUNTIME_ONLY = {"name", "description", "threads", "batch_size", "tasks"}


class Calibration(BaseModel):
    """How static quantization picks activation ranges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: CalibrationMethod = Field("minmax", description="minmax, entropy or percentile")
    samples: int = Field(128, ge=1, le=100_000, description="calibration inputs, drawn apart from evaluation")


class Recipe(BaseModel):
    """One way of quantizing and running a model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="unique name, used on the CLI")
    description: str = Field("", description="one line shown next to the name")
    backend: str = Field(description="a backend from `qstudio recipes --backends`")
    precision: Precision = Field(description="numeric format of the weights (and activations)")
    mode: Mode = Field("none", description="none, dynamic, static (calibrated) or weight-only")
    device: Device = Field("cpu", description="cpu or cuda")
    calibration: Calibration | None = Field(None, description="required for static mode")
    per_channel: bool = Field(False, description="one scale per output channel instead of per tensor")
    optimize_graph: bool = Field(True, description="fuse attention/layer-norm before quantizing (ORT)")
    block_size: int = Field(32, ge=16, le=256, description="weight-only block size (power of two)")
    accuracy_level: int | None = Field(
        None, ge=0, le=4, description="INT4 MatMulNBits compute type: 4 = INT8 (fast on CPU); none = default"
    )
    symmetric: bool = Field(True, description="weight-only: symmetric blocks (no zero point)")
    algorithm: Literal["rtn", "hqq"] = Field(
        "rtn",
        description="INT4 weight-only: round-to-nearest per block, or HQQ (optimised scale and float zero)",
    )
    quantize_lm_head: bool = Field(False, description="causal LMs: also quantize the output projection")
    double_quant: bool = Field(True, description="bitsandbytes NF4: quantize the quantization constants too")
    compute_dtype: Literal["fp16", "bf16", "fp32"] = Field(
        "fp16", description="bitsandbytes NF4: the dtype matmuls run in"
    )
    tasks: tuple[Task, ...] = Field(
        (), description="model kinds this recipe is written for (empty: any); the built-ins say"
    )
    exclude_ops: tuple[str, ...] = Field((), description="operator types left in float")
    exclude_nodes: tuple[str, ...] = Field((), description="node names left in float")
    threads: int = Field(0, ge=0, le=1024, description="intra-op threads; 0 = the runtime's default")
    batch_size: int = Field(1, ge=1, le=4096, description="batch size for latency and throughput")
    seq_len: int = Field(128, ge=8, le=8192, description="sequence length for latency and calibration")

    @model_validator(mode="after")
    def _fits_backend(self) -> Recipe:
        if self.backend not in REGISTRY:
            raise ValueError(
                f"backend: unknown backend '{self.backend}'; allowed: {', '.join(sorted(REGISTRY))}"
            )
        spec = REGISTRY[self.backend]
        for field, value, allowed in (
            ("precision", self.precision, spec.precisions),
            ("mode", self.mode, spec.modes),
            ("device", self.device, spec.devices),
        ):
            if value not in allowed:
                raise ValueError(
                    f"{field}: backend '{self.backend}' does not do {field} '{value}'; "
                    f"allowed: {', '.join(allowed)}"
                )
        if self.mode == "static" and self.calibration is None:
            raise ValueError(
                "calibration: static mode needs a [calibration] table (method = minmax|entropy|percentile, samples = N)"
            )
        if self.tasks and not set(self.tasks) & set(spec.tasks):
            raise ValueError(
                f"tasks: backend '{self.backend}' handles {', '.join(spec.tasks)}, not {', '.join(self.tasks)}"
            )
        if self.block_size & (self.block_size - 1):
            raise ValueError(
                f"block_size: {self.block_size} is not a power of two; allowed: 16, 32, 64, 128, 256"
            )
        return self

    def artifact_fields(self) -> dict[str, Any]:
        """The fields that decide the quantized artifact: part of its cache key."""
        fields = self.model_dump(mode="json", exclude=_RUNTIME_ONLY)
        if self.calibration is None:
            fields.pop("seq_len")
        return fields

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True, exclude_defaults=False))

    @property
    def title(self) -> str:
        return self.description or self.name

    def suits(self, task: str) -> bool:
        """Whether this recipe is written for models of `task` (a recipe naming no task suits any)."""
        return not self.tasks or task in self.tasks


def _describe(error: ValidationError, source: str) -> StudioError:
    """Turn pydantic's report into one line: the first bad field, what it got and what it allows."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return StudioError(f"recipe {source}: field '{location}' is missing", "add it to the file")
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(Recipe.model_fields)
        return StudioError(f"recipe {source}: unknown field '{location}'", f"allowed fields: {allowed}")
    if not location and ":" in message:  # raised by _fits_backend as "field: reason; allowed: ..."
        location, _, message = message.partition(": ")
        return StudioError(f"recipe {source}: field '{location}': {message}")
    got = first.get("input")
    allowed = ""
    if first["type"] == "literal_error":  # pydantic lists them as "'a', 'b' or 'c'"
        allowed = str(first.get("ctx", {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
    remedy = f"allowed: {allowed}" if allowed else message
    return StudioError(f"recipe {source}: field '{location}' has invalid value {got!r}", remedy)


def parse_recipe(data: dict[str, Any], source: str = "<form>") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        raise _describe(error, source) from None


def load_recipe_file(path: Path) -> Recipe:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioError(f"recipe file not found: {path}", "check the path") from None
    except tomllib.TOMLDecodeError as error:
        raise StudioError(f"recipe {path.name} is not valid TOML ({error})", "fix the syntax") from None
    data.setdefault("name", path.stem)
    return parse_recipe(data, path.name)


def builtin_recipes(task: str | None = None) -> list[Recipe]:
    """The recipes shipped in resources/recipes, in file-name order; with `task`, those written for it."""
    folder = resources_dir() / "recipes"
    recipes = [load_recipe_file(path) for path in sorted(folder.glob("*.toml"))]
    return [r for r in recipes if task is None or r.suits(task)]


def resolve_recipe(name_or_path: str) -> Recipe:
    """A built-in recipe by name, or a recipe file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_recipe_file(path)
    builtins = {recipe.name: recipe for recipe in builtin_recipes()}
    if name_or_path in builtins:
        return builtins[name_or_path]
    raise StudioError(
        f"no recipe named '{name_or_path}'",
        f"use a .toml file or one of: {', '.join(builtins)} (see `qstudio recipes`)",
    )


def keep_ops_in_float(recipe: Recipe, ops: list[str]) -> Recipe:
    """`recipe` with every node of the operator types `ops` left in float (INC's op-type fallback)."""
    return recipe.model_copy(
        update={
            "name": f"{recipe.name}-keep-{'-'.join(op.lower() for op in ops)}-float",
            "description": f"{recipe.title}, {', '.join(ops)} kept in float",
            "exclude_ops": tuple(dict.fromkeys([*recipe.exclude_ops, *ops])),
        }
    )


def keep_in_float(recipe: Recipe, nodes: list[str], layers: list[str] | None = None) -> Recipe:
    """`recipe` with `nodes` (a sensitivity ranking's worst, in order) left in float; named for how many
    nodes, or for how many transformer `layers` when whole layers were ranked (a causal LM's)."""
    count = len(nodes)
    what = f"{count} most sensitive nodes" if layers is None else ", ".join(layers)
    return recipe.model_copy(
        update={
            "name": f"{recipe.name}-keep{count if layers is None else f'{len(layers)}-layers'}-float",
            "description": f"{recipe.title}, {what} kept in float",
            "exclude_nodes": tuple(dict.fromkeys([*recipe.exclude_nodes, *nodes])),
        }
    )
