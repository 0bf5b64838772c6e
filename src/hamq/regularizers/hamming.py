"""HamQ (Sharma et al., IEEE Sensors J. 2024): penalize the Hamming weight of the stored
weight words, so fewer crossbar cells are ON.

Per layer the penalty is the surrogate Hamming weight summed over the layer's weights and
divided by its number of weights (mean stored bits ON per weight, "normalized per layer");
the layers' terms are summed and multiplied by lambda.
"""

from __future__ import annotations

import torch
from torch import nn

from hamq.hardware.representation import hamming_table
from hamq.quantization.convert import quantized_layers
from hamq.regularizers.base import Regularizer, RegularizerConfig, register
from hamq.regularizers.surrogates import interp_cost, penalty_table, sin_hamming


def hold_range(cost: torch.Tensor, t: torch.Tensor, range_code: int) -> torch.Tensor:
    """Stop the cost's gradient on the weights that set the range (``|t| > range_code -
    1/2``; ``range_code`` is ``q_max`` unless ``quant.range_code`` sets it).

    With a range taken from the weights (scale = max|w| / q_max, no gradient), pulling the
    largest weight down shrinks the scale, re-inflates every code, and invites the
    regularizer to shrink the whole channel while batch norm undoes it; each optimizer step
    then moves more integer units and training turns to noise. Holding the range-setting
    weights leaves the scale to the task loss.
    """
    return torch.where(t.abs() > range_code - 0.5, cost.detach(), cost)


@register("hamming")
class HammingRegularizer(Regularizer):
    """Representation-aware HamQ regularizer (surrogate ``interp``, ``envelope`` or ``sin``)."""

    def __init__(self, cfg: RegularizerConfig, hw) -> None:
        super().__init__(cfg, hw)
        self.surrogate = cfg.surrogate
        self.sigma = cfg.smooth
        self.slope = cfg.slope
        self._tables: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _table(self, bits: int, device: torch.device) -> torch.Tensor:
        key = (bits, device)
        if key not in self._tables:
            table = hamming_table(bits, self.hw.representation)
            table = penalty_table(table, self.surrogate, self.sigma, self.slope)
            self._tables[key] = table.to(device)
        return self._tables[key]

    def layer_cost(self, t: torch.Tensor, bits: int) -> torch.Tensor:
        """Surrogate Hamming weight of each weight (same shape as ``t``)."""
        if self.surrogate in ("interp", "envelope"):
            return interp_cost(t, self._table(bits, t.device))
        return sin_hamming(t, bits, self.hw.representation)

    def penalty(self, model: nn.Module) -> torch.Tensor:
        terms = []
        for _, layer in quantized_layers(model):
            t = layer.weight_continuous()
            cost = self.layer_cost(t, layer.w_bits)
            terms.append(hold_range(cost, t, layer.range_code).mean())
        return torch.stack(terms).sum()
