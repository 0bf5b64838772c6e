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
from hamq.regularizers.surrogates import interp_cost, sin_hamming


@register("hamming")
class HammingRegularizer(Regularizer):
    """Representation-aware HamQ regularizer (surrogate ``interp`` or ``sin``)."""

    def __init__(self, cfg: RegularizerConfig, hw) -> None:  # noqa: ANN001
        super().__init__(cfg, hw)
        self.surrogate = cfg.surrogate
        self._tables: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _table(self, bits: int, device: torch.device) -> torch.Tensor:
        key = (bits, device)
        if key not in self._tables:
            self._tables[key] = hamming_table(bits, self.hw.representation).to(device)
        return self._tables[key]

    def layer_cost(self, t: torch.Tensor, bits: int) -> torch.Tensor:
        """Surrogate Hamming weight of each weight (same shape as ``t``)."""
        if self.surrogate == "interp":
            return interp_cost(t, self._table(bits, t.device))
        return sin_hamming(t, bits, self.hw.representation)

    def penalty(self, model: nn.Module) -> torch.Tensor:
        terms = [
            self.layer_cost(layer.weight_continuous(), layer.w_bits).mean()
            for _, layer in quantized_layers(model)
        ]
        return torch.stack(terms).sum()
