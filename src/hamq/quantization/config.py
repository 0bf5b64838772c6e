"""Quantization config: what ``quantize_model`` builds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
    """

    w_bits: int = Field(8, ge=2, le=8)
    a_bits: int = Field(8, ge=2, le=8)
    granularity: Literal["per_channel", "per_layer"] = "per_channel"
    scheme: Literal["fixed", "dynamic"] = "fixed"
    act_range: Literal["calibrated", "learned"] = "calibrated"
    skip: tuple[str, ...] = ()
