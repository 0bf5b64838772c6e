"""Adaptive BatchNorm statistics (AdaBS; Joshi et al., "Accurate deep neural network
inference using computational phase-change memory", Nature Communications 2020).

Drift and read noise change what each output channel of a crossbar layer computes; global
drift compensation restores one scale per layer. AdaBS goes further with what a chip
already has: the BatchNorm layers after the arrays are digital, so their running mean and
variance can be re-estimated from a few hundred calibration inputs passed through the
drifted arrays, at the time of use. Each channel then gets its own affine correction, an
offset as well as a scale. The calibration inputs come from the calibration split, never
from test.

``torch.optim.swa_utils.update_bn`` re-estimates the statistics the same way, but it puts
the whole model in training mode, which would let the input quantizers move their ranges;
:func:`adapt_batchnorm` switches only the BatchNorm layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hamq.errors import HamqError


def batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@contextmanager
def kept_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Give the BatchNorm layers back their running statistics and momentum on exit (on
    error too), whatever :func:`adapt_batchnorm` did in between."""
    saved = [
        (bn, bn.momentum, {k: v.clone() for k, v in bn.state_dict().items()})
        for bn in batchnorms(model)
    ]
    try:
        yield
    finally:
        for bn, momentum, state in saved:
            bn.load_state_dict(state)
            bn.momentum = momentum


def adapt_batchnorm(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Re-estimate every BatchNorm layer's running mean and (unbiased) variance as the
    cumulative average over the forwards of ``batches`` as the model computes now (inside
    :func:`~hamq.hardware.simulate.simulating`: through the arrays); every other module
    stays in eval mode. Returns the samples used. Wrap in :func:`kept_batchnorm_stats` to
    restore the trained statistics afterwards."""
    bns = batchnorms(model)
    if not bns:
        raise HamqError(
            "--adapt-bn: the model has no BatchNorm layer, so there are no statistics to "
            "re-estimate; leave --adapt-bn out"
        )
    device = next(model.parameters()).device
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches
        bn.train()
    samples = 0
    try:
        with torch.no_grad():
            for x, _ in batches:
                if x.shape[0] < 2:  # one sample has no batch variance (BatchNorm1d refuses)
                    continue
                model(x.to(device))
                samples += int(x.shape[0])
    finally:
        for bn in bns:
            bn.eval()
    if samples == 0:
        raise HamqError(
            "--adapt-bn: no calibration batch of at least 2 samples; give more "
            "--calibration-samples"
        )
    return samples


__all__ = ["adapt_batchnorm", "batchnorms", "kept_batchnorm_stats"]
