"""``bits``: the bit-level term of twofold sparsity (Karimzadeh & Raychowdhury, IEEE Access
2024), on the two's-complement bits of the quantized weights::

    penalty = sum over layers l of (N_l / N) * || sum_n W_l^(n) ||_2

where ``W_l^(n)`` is bit plane ``n`` of the ``b``-bit two's-complement words of layer
``l``'s integer weights (``q mod 2**b``), so ``sum_n W_l^(n)`` is the number of ON bits of
each weight, ``||.||_2`` the L2 norm over the layer's weights, ``N_l`` the layer's weight
count and ``N`` the model's (quantized layers only). The bits are those of two's complement
whatever the run's hardware representation, as in the paper; ``hamming`` is the
representation-aware term.

**Differentiable.** The exact bit count of a weight is a table over the integers
``-q_max .. q_max`` (``hamming_table(b, "twos_complement")``). Summing the bit planes, each
linearly interpolated between integers, is the same as interpolating the summed table, so
the per-weight count uses the HamQ surrogates of ``surrogates.py`` at the continuous
integer-unit weight ``t = w / scale`` (``regularizer.surrogate``): ``envelope`` (default:
the table's lower envelope at ``regularizer.slope`` bits per integer unit; its minima are
exact cheap codes: 0 and the words with few ones, such as 64 = 0100 0000 or -64 = 1100 0000),
``interp`` (the table smoothed by ``regularizer.smooth``; ``smooth: 0`` is the exact
per-bit-plane interpolation) or ``sin`` (each bit plane a sinusoid, periodic, so negative
weights wrap like ``q mod 2**b``). Each is exact, or a lower bound of the exact count, at the
integers. As for ``hamming``, the weights that set the range are held (``hold_range``).

**Scale of beta.** The norm is not divided by the weight count: a layer of ``N_l`` weights
with ``h`` ON bits each contributes ``(N_l / N) * h * sqrt(N_l)``, so beta sits well below
the lambdas of ``hamming`` (which sums per-layer means): on the trained 8-bit digits CNN the
penalty is 130 where ``hamming``'s (two's complement) is 6, and on its largest layer the
per-weight gradient of ``bits`` is 54 times ``hamming``'s, so beta 0.01 pulls there like
``hamming`` lambda 0.5.
"""

from __future__ import annotations

import torch
from torch import nn

from hamq.hardware.representation import hamming_table
from hamq.hardware.spec import HardwareSpec
from hamq.quantization.convert import quantized_layers
from hamq.regularizers.base import Regularizer, RegularizerConfig, register
from hamq.regularizers.hamming import hold_range
from hamq.regularizers.surrogates import interp_cost, penalty_table, sin_hamming


def twos_complement_bits(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Exact ON bits of the ``bits``-bit two's-complement word of each integer in ``q``."""
    word = torch.remainder(q.to(torch.int64), 2**bits)
    planes = (word.unsqueeze(-1) >> torch.arange(bits, device=q.device)) & 1
    return planes.sum(-1)


@register("bits")
class BitsRegularizer(Regularizer):
    """beta * sum over layers of (N_l / N) * L2 norm of the per-weight two's-complement bits."""

    def __init__(self, cfg: RegularizerConfig, hw: HardwareSpec) -> None:
        super().__init__(cfg, hw)
        self.surrogate = cfg.surrogate
        self.sigma = cfg.smooth
        self.slope = cfg.slope
        self._tables: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _table(self, bits: int, device: torch.device) -> torch.Tensor:
        key = (bits, device)
        if key not in self._tables:
            table = hamming_table(bits, "twos_complement")
            self._tables[key] = penalty_table(table, self.surrogate, self.sigma, self.slope).to(
                device
            )
        return self._tables[key]

    def weight_bits(self, t: torch.Tensor, bits: int) -> torch.Tensor:
        """Surrogate ON-bit count of each continuous integer-unit weight (``t``'s shape)."""
        if self.surrogate in ("interp", "envelope"):
            return interp_cost(t, self._table(bits, t.device))
        return sin_hamming(t, bits, "twos_complement")

    def penalty(self, model: nn.Module) -> torch.Tensor:
        layers = quantized_layers(model)
        total = sum(layer.weight.numel() for _, layer in layers)
        terms = []
        for _, layer in layers:
            t = layer.weight_continuous()
            count = hold_range(self.weight_bits(t, layer.w_bits), t, layer.range_code)
            terms.append(layer.weight.numel() / total * torch.linalg.vector_norm(count))
        return torch.stack(terms).sum()
