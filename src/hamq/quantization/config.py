"""Quantization config: what ``quantize_model`` builds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hamq.config_base import Section


class QuantConfig(Section):
    """Weight and activation quantization of every Conv2d/Linear layer.

    Fields:
        w_bits: weight bits (2..8); weights are symmetric signed integers,
            ``|q| <= 2**(w_bits-1) - 1``.
        a_bits: activation bits at each quantized layer's input (2..8). Non-negative inputs
            (after ReLU) use the unsigned range ``0 .. 2**a_bits - 1``; inputs seen negative at
            calibration use the signed range ``|x| <= 2**(a_bits-1) - 1`` (applied on the array
            in two passes, positive and negative part).
        granularity: one weight scale per layer or per output channel.
        scheme: ``fixed``: scale = max|w| / q_max (fixed point, range from the weights);
            ``dynamic``: that scale rounded up to a power of two (dynamic fixed point, so the
            rescale is a shift).
        act_range: ``calibrated``: running max of |x| (momentum 0.1) measured in training;
            ``learned``: a trainable step size (LSQ, Esser et al. 2020).
        skip: layer names (as in ``model.named_modules()``) kept in float; reported.
        range_code: the integer code the largest |weight| of each channel (or layer) maps
            to; None: ``q_max`` (``2**(w_bits-1) - 1``: at 8 bits 127, seven ON bits, one
            per bit column). A code with few ON bits (64, 96) stores the range-setting
            weights in fewer cells and bit columns, at the price of a coarser step
            (``scale = max|w| / range_code``); the regularizers hold those weights
            (``hamming.hold_range``).
    """

    w_bits: int = Field(8, ge=2, le=8)
    a_bits: int = Field(8, ge=2, le=8)
    granularity: Literal["per_channel", "per_layer"] = "per_channel"
    scheme: Literal["fixed", "dynamic"] = "fixed"
    act_range: Literal["calibrated", "learned"] = "calibrated"
    skip: tuple[str, ...] = ()
    range_code: int | None = Field(None, ge=1, le=127)

    @model_validator(mode="after")
    def _range_code(self) -> QuantConfig:
        q_max = 2 ** (self.w_bits - 1) - 1
        if self.range_code is not None and self.range_code > q_max:
            raise ValueError(
                f"quant.range_code = {self.range_code} exceeds the largest {self.w_bits}-bit "
                f"code {q_max}; give 1..{q_max}"
            )
        return self
