"""The ``prune`` term as a proximal step (``sparsity.update: proximal``).

The term is ``lambda * || (w / s) outside the mask ||_2`` per layer (``regularizers/
prune.py``), ``s`` the weight scale (per output channel by default). As a loss term its
gradient has a constant length per layer, so plain SGD with momentum moves the pruned
weights by ``lr * lambda / s`` every step, however close they already are to 0: they
oscillate around 0 instead of settling (``docs/sparsity.md``). Proximal SGD takes the
optimizer's step on the loss without the term, then applies the term's proximal operator
with the step size ``eta`` = the learning rate of the weight's parameter group::

    w_out <- argmin_w  ||w - v||^2 / (2 eta)  +  lambda * ||w / s||_2

(``v`` the weights outside the mask after the optimizer step, ``s`` held at its value
then). The result lies on the segment-like path from ``v`` towards 0 and never past it:
a group whose ``||v * s||`` is at most ``eta * lambda`` becomes exactly 0 (the first-order
condition at 0), any other group shrinks to the unique point where

    (w - v) / eta + lambda * (w / s^2) / ||w / s|| = 0,

that is ``w_i = v_i * r / (r + eta * lambda / s_i^2)`` with ``r = ||w / s||`` the root of
``|| (v / s) / (r + eta * lambda / s^2) || = 1`` (:func:`scaled_group_prox`). With one
scale for the group this is the familiar block soft-threshold, ``||w||`` shrunk by
``eta * lambda / s``.

Why the root is found by Newton's method on ``psi(r) = 1 / ||(v/s) / (r + c)||``: ``psi`` is
increasing and concave (the secular equation of a trust-region step has this form; Moré
and Sorensen 1983), so Newton from ``r = 0`` climbs to the root without overshooting, and
with equal scales ``psi`` is linear and one step is exact.

Under Adam the step size used is the group's learning rate, as in proximal variants of
adaptive methods that do not rescale the prox; the shrink then no longer matches the
per-weight steps Adam takes on the loss, which the docs state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hamq.sparsity.layers import masked_layers

_MAX_NEWTON = 100
_REL_TOL = 1e-12


def scaled_group_prox(v: torch.Tensor, s: torch.Tensor, threshold: float) -> torch.Tensor:
    """The proximal operator of ``threshold * ||w / s||_2`` at ``v`` (step folded into
    ``threshold`` = ``eta * lambda``): the ``w`` minimizing
    ``||w - v||^2 / 2 + threshold * ||w / s||_2``.

    ``v`` and ``s`` have the same shape (``s > 0``); the result has ``v``'s shape and
    dtype. Solved in float64 (module docstring)."""
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if v.shape != s.shape:
        raise ValueError(f"v and s differ in shape: {tuple(v.shape)} vs {tuple(s.shape)}")
    if threshold == 0 or v.numel() == 0:
        return v.clone()
    v64, s64 = v.double(), s.double()
    if float(torch.linalg.vector_norm(v64 * s64)) <= threshold:
        return torch.zeros_like(v)
    a = v64 / s64  # the integer-unit weights
    c = threshold / s64**2
    r = torch.zeros((), dtype=torch.float64)
    for _ in range(_MAX_NEWTON):
        u = a / (r + c)
        q = torch.sum(u * u)  # ||a / (r + c)||^2, > 1 left of the root
        psi = q.rsqrt()
        dpsi = torch.sum(u * u / (r + c)) * psi**3  # psi' = q^(-3/2) * sum a^2/(r+c)^3
        step = (1 - psi) / dpsi
        r = r + step
        if float(step.abs()) <= _REL_TOL * float(r):
            break
    return (v64 * (r / (r + c))).to(v.dtype)


def _group_lrs(optimizer: torch.optim.Optimizer) -> dict[int, int]:
    """id(parameter) -> index of its parameter group."""
    return {id(p): i for i, g in enumerate(optimizer.param_groups) for p in g["params"]}


@torch.no_grad()
def prox_step(model: nn.Module, optimizer: torch.optim.Optimizer, lambda_: float) -> None:
    """Apply the prune term's proximal operator to every masked layer whose mask is not
    fixed yet, each at its parameter group's current learning rate."""
    groups = _group_lrs(optimizer)
    for _, layer in masked_layers(model):
        if layer.mask_fixed or id(layer.weight) not in groups:
            continue
        lr = float(optimizer.param_groups[groups[id(layer.weight)]]["lr"])
        w = layer.weight
        out = ~layer.weight_mask.expand_as(w)  # type: ignore[union-attr]
        scale = layer.weight_scale().expand_as(w)
        w[out] = scaled_group_prox(w[out], scale[out], lr * lambda_)


def prox_after_step(optimizer: torch.optim.Optimizer, model: nn.Module, lambda_: float) -> None:
    """After every ``optimizer.step()``, :func:`prox_step` (installed once per optimizer;
    it does nothing for layers whose masks are fixed)."""
    if getattr(optimizer, "_hamq_prox_hooked", False):
        return

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        prox_step(model, opt, lambda_)

    optimizer.register_step_post_hook(hook)
    optimizer._hamq_prox_hooked = True  # type: ignore[attr-defined]


__all__ = ["prox_after_step", "prox_step", "scaled_group_prox"]
