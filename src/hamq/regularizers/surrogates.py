"""Differentiable surrogates of an integer cost table, evaluated at continuous weights.

``t`` is a weight in integer units (``w / scale``, clamped to ``[-q_max, q_max]``), with
gradient. A *cost table* holds the exact cost of every integer ``-q_max .. q_max`` (the
Hamming weight of its stored words, its ON cells, its cell energy).
"""

from __future__ import annotations

import math

import torch

from hamq.hardware.representation import Representation, word_bits


def interp_cost(t: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``table`` at ``t`` (same shape as ``t``).

    Exact at every integer; between two integers the gradient is the cost difference of
    the two neighbours, so it always points toward the cheaper one.
    """
    q_max = (table.numel() - 1) // 2
    table = table.to(t.dtype)  # lerp needs one dtype (a float64 or half model's weights)
    u = t + q_max
    lo = u.detach().floor().clamp(0, table.numel() - 2)
    frac = u - lo
    lo_i = lo.to(torch.int64)
    return torch.lerp(table[lo_i], table[lo_i + 1], frac)


class _Lookup(torch.autograd.Function):
    """:func:`interp_cost` for large tensors: two 1-D gathers (value and slope of the
    interval), only the slope kept for the backward pass, no graph over the index
    arithmetic."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, values: torch.Tensor, slopes: torch.Tensor):  # type: ignore[override]
        q_max = slopes.shape[0] // 2  # (one slope per interval: 2 q_max of them)
        u = t.detach() + q_max
        lo = u.floor().clamp_(0, slopes.shape[0] - 1)
        idx = lo.to(torch.int64)
        slope = slopes[idx]
        ctx.save_for_backward(slope)
        return values[idx] + (u - lo) * slope

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


def interp_lookup(t: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The same piecewise-linear interpolation as :func:`interp_cost` (equal up to float
    rounding, the same gradient in ``t``; none in ``table``), faster on large tensors
    such as a batch of layer inputs (``energy`` with ``activity: batch``)."""
    table = table.to(t.dtype)
    return _Lookup.apply(t, table[:-1].contiguous(), (table[1:] - table[:-1]).contiguous())


def smooth_table(table: torch.Tensor, sigma: float) -> torch.Tensor:
    """Expected cost under Gaussian dither: ``T_s[i] = sum_j T[j] N(j - i; sigma) / Z_i``.

    The exact Hamming-weight table is rugged (127 -> 7 bits, 128 -> 1 bit), so its
    interpolation only ever pulls a weight to the nearest local minimum. Smoothing with a
    Gaussian of ``sigma`` integer units (truncated to the representable range, renormalized)
    keeps the low-cost codes low while giving a gradient toward whole regions of cheap codes.
    ``sigma = 0`` returns the table unchanged.
    """
    if sigma <= 0:
        return table
    idx = torch.arange(table.numel(), dtype=torch.float64)
    kernel = torch.exp(-0.5 * ((idx[:, None] - idx[None, :]) / sigma) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)
    return (kernel @ table.to(torch.float64)).to(table.dtype)


def envelope_table(table: torch.Tensor, slope: float) -> torch.Tensor:
    """Lower envelope of ``table`` under a cost of ``slope`` per integer unit moved:
    ``T_e[i] = min_j T[j] + slope * |i - j|`` (the min-plus convolution of the table with
    ``slope * |x|``, the 1-D distance transform).

    Properties the HamQ penalty relies on (tested in ``tests/test_regularizers.py``):
    ``T_e <= T``; ``T_e[i] == T[i]`` at every code no cheaper code can reach at ``slope``
    per unit, and every local minimum of ``T_e`` is such a code (an *attractor*), so a
    weight that settles there is stored exactly at its modeled cost; between integers the
    slope of ``T_e`` is ``-slope``, 0 or ``+slope``, a constant pull toward the nearest
    attractor (L1-like, but toward cheap codes rather than toward 0). The Gaussian-smoothed
    table instead moves its minima off the cheap codes (at 8 bits its minimum near 32, HW 1,
    sits at 35, HW 3), where weights then stall. Large ``slope`` gives back ``T``; small
    ``slope`` leaves fewer, cheaper attractors (0 and the powers of two first).

    Computed exactly by a forward and a backward pass, O(n).
    """
    if slope <= 0:
        raise ValueError(f"envelope slope must be > 0, got {slope}")
    out = table.to(torch.float64).clone()
    for i in range(1, out.numel()):
        out[i] = torch.minimum(out[i], out[i - 1] + slope)
    for i in range(out.numel() - 2, -1, -1):
        out[i] = torch.minimum(out[i], out[i + 1] + slope)
    return out.to(table.dtype if table.is_floating_point() else torch.float64)


def penalty_table(table: torch.Tensor, surrogate: str, sigma: float, slope: float) -> torch.Tensor:
    """The table a training penalty interpolates: the lower envelope at ``slope`` (table
    units per integer unit) for ``envelope``, else the Gaussian-smoothed table (``interp``)."""
    if surrogate == "envelope":
        return envelope_table(table, slope)
    return smooth_table(table, sigma)


def _smooth_bits(x: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Sum over bits k < n_bits of a sinusoid through bit k of x (period 2**(k+1)).

    Bit k of an integer is 0 on ``x mod 2**(k+1)`` in ``[0, 2**k)`` and 1 on the rest;
    the sinusoid is 0 at the centre of the first run of integers and 1 at the centre of
    the second.
    """
    total = torch.zeros_like(x)
    for k in range(n_bits):
        period = 2.0 ** (k + 1)
        c0 = (2.0**k - 1) / 2
        total = total + 0.5 - 0.5 * torch.cos(2 * math.pi * (x - c0) / period)
    return total


def sin_hamming(t: torch.Tensor, bits: int, rep: Representation) -> torch.Tensor:
    """Smooth Hamming weight of the stored word(s) of continuous integers ``t``."""
    wb = word_bits(bits, rep)
    if rep == "differential":
        return _smooth_bits(t.abs(), wb)
    if rep == "twos_complement":
        return _smooth_bits(t, wb)  # periodic, so negative t wraps like q mod 2**bits
    if rep == "shifted":
        return _smooth_bits(t + 2 ** (bits - 1), wb)
    if rep == "sign_magnitude":
        return _smooth_bits(t.abs(), wb - 1) + torch.sigmoid(-4.0 * t)
    raise ValueError(f"unknown representation '{rep}'")
