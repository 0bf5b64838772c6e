"""A small quantized conv with calibrated inputs, shared by the crossbar and noise tests."""

from __future__ import annotations

import torch

from hamq.quantization.config import QuantConfig
from hamq.quantization.modules import QuantConv2d


def calibrated_conv(
    c_in: int, c_out: int, batch: int, side: int, seed: int = 0
) -> tuple[QuantConv2d, torch.Tensor]:
    """A 3x3 ``QuantConv2d`` (w8a8, padding 1) from seeded float weights, its input
    quantizer calibrated on ``rand(batch, c_in, side, side)``, and those inputs' codes."""
    torch.manual_seed(seed)
    conv = QuantConv2d.from_float(torch.nn.Conv2d(c_in, c_out, 3, padding=1), QuantConfig())
    x = torch.rand(batch, c_in, side, side)
    conv.input_quant(x)  # calibrate the input range
    return conv, conv.input_quant.to_int(x)
