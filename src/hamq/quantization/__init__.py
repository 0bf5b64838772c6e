"""Quantization-aware training: quantizers (pure maths), quantized layers, model conversion."""

from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import ConversionReport, quantize_model, quantized_layers
from hamq.quantization.export import IntegerLayer, export_integer_layers
from hamq.quantization.modules import ActQuantizer, QuantConv2d, QuantLinear

__all__ = [
    "ActQuantizer",
    "ConversionReport",
    "IntegerLayer",
    "QuantConfig",
    "QuantConv2d",
    "QuantLinear",
    "export_integer_layers",
    "quantize_model",
    "quantized_layers",
]
