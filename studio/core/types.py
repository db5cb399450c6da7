"""The small vocabularies shared by recipes, backends and the capability rules."""

from __future__ import annotations

from typing import Literal, get_args

Precision = Literal["fp32", "fp16", "bf16", "int8", "int4", "fp8", "fp4"]
Mode = Literal["none", "dynamic", "static", "weight-only"]
Device = Literal["cpu", "cuda"]
CalibrationMethod = Literal["minmax", "entropy", "percentile"]
Task = Literal["text-classification", "feature-extraction", "text-generation"]

PRECISIONS: tuple[str, ...] = get_args(Precision)
MODES: tuple[str, ...] = get_args(Mode)
DEVICES: tuple[str, ...] = get_args(Device)
CALIBRATION_METHODS: tuple[str, ...] = get_args(CalibrationMethod)
TASKS: tuple[str, ...] = get_args(Task)
