"""``prune``: the network-level term of twofold sparsity (Karimzadeh & Raychowdhury, IEEE
Access 2024), pushing the weights outside each layer's LFSR mask to zero::

    penalty = sum over masked layers l of || t_l * (1 - M_l) ||_2

with ``t_l = w_l / scale_l`` the layer's continuous integer-unit weights
(``weight_continuous``, as for ``l1`` and ``hamming``) and ``M_l`` its mask (1 = kept, from
``hamq.sparsity``; the layers carry it in ``weight_mask``). Integer units make lambda
independent of each layer's weight scale. The norm is not squared, as in the paper: its
gradient ``t_i / ||t_out||`` has unit length per layer whatever the size of the pruned
weights, so the small ones keep being pulled all the way to 0 instead of stalling as under
an L2 penalty. Only weights outside the mask get a gradient; the range-setting (scale)
weight may be among them, and pulling it down is what is wanted.

The term acts during the regularized QAT epochs; once the masks are fixed (hard pruning,
``sparsity/layers.py``) the weights outside them are exactly 0 and the term is 0. It is
configured in the run's ``sparsity`` section (``sparsity.lambda``), next to the main
``regularizer`` term, not as ``regularizer.name``.
"""

from __future__ import annotations

import torch
from torch import nn

from hamq.errors import HamqError
from hamq.quantization.convert import quantized_layers
from hamq.regularizers.base import Regularizer, register


@register("prune")
class PruneRegularizer(Regularizer):
    """lambda * sum over layers of the L2 norm of the integer-unit weights outside the mask."""

    def attach(self, model: nn.Module) -> None:
        if not any(x.weight_mask is not None for _, x in quantized_layers(model)):
            raise HamqError(
                "the prune regularizer needs LFSR masks on the model: set sparsity.sparsity "
                "(or a layer's) above 0"
            )

    def penalty(self, model: nn.Module) -> torch.Tensor:
        terms = []
        for _, layer in quantized_layers(model):
            mask = layer.weight_mask
            if mask is None or layer.mask_fixed:
                continue
            t = layer.weight_continuous()
            terms.append(torch.linalg.vector_norm(t * ~mask))
        if not terms:
            return next(model.parameters()).new_zeros(())
        return torch.stack(terms).sum()
