"""Quantization Studio: quantize a model with several recipes and compare every result against FP32."""

__version__ = "0.1.0"
