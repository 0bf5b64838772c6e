"""Quantizer maths as pure functions (no module state).

Shapes: a weight ``w`` is ``(C_out, ...)``; per-channel scales have shape ``(C_out, 1, ...)``
so they broadcast against it; per-layer scales are 0-d tensors.
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest (half to even) with a straight-through (identity) gradient."""
    return (torch.round(x) - x).detach() + x


def grad_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``factor`` (LSQ)."""
    return (x - x * factor).detach() + x * factor


def weight_scale(
    w: torch.Tensor, bits: int, per_channel: bool, dynamic: bool, range_code: int | None = None
) -> torch.Tensor:
    """Step size of a symmetric ``bits``-bit weight quantizer (no gradient).

    ``fixed``: max|w| / range_code (default ``2**(bits-1) - 1``); ``dynamic``: rounded up
    to a power of two.
    """
    qmax = 2 ** (bits - 1) - 1 if range_code is None else range_code
    w = w.detach()
    if per_channel:
        amax = w.abs().reshape(w.shape[0], -1).amax(1)
        amax = amax.reshape((-1,) + (1,) * (w.dim() - 1))
    else:
        amax = w.abs().amax()
    scale = amax.clamp_min(_EPS) / qmax
    if dynamic:
        scale = torch.exp2(torch.ceil(torch.log2(scale)))
    return scale


def quantize_int(x: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Integer codes ``clamp(round(x / scale), lo, hi)`` as int64 (no gradient)."""
    return torch.clamp(torch.round(x.detach() / scale.detach()), lo, hi).to(torch.int64)


def fake_quant(x: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """``scale * clamp(round(x / scale), lo, hi)`` with a straight-through gradient for x.

    The gradient w.r.t. ``x`` is 1 inside the range and 0 where clamped; w.r.t. ``scale``
    it is the LSQ gradient when ``scale`` requires grad.
    """
    return round_ste(torch.clamp(x / scale, lo, hi)) * scale


def act_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of an activation quantizer: unsigned ``0..2**b-1`` or symmetric signed."""
    if signed:
        m = 2 ** (bits - 1) - 1
        return -m, m
    return 0, 2**bits - 1
