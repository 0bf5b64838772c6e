"""L1 on the integer-unit weights: the baseline the HamQ paper compares against.

Normalized like ``hamming`` (mean |w / scale| per layer, summed over layers), so the same
lambda grid is comparable.
"""

from __future__ import annotations

import torch
from torch import nn

from hamq.quantization.convert import quantized_layers
from hamq.regularizers.base import Regularizer, register


@register("l1")
class L1Regularizer(Regularizer):
    """lambda * sum over layers of mean |w / scale|."""

    def penalty(self, model: nn.Module) -> torch.Tensor:
        terms = [layer.weight_continuous().abs().mean() for _, layer in quantized_layers(model)]
        return torch.stack(terms).sum()
