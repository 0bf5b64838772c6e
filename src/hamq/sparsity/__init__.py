"""Network-level sparsity: LFSR masks that hardware regenerates, with no stored index.

``lfsr`` holds the shift registers, ``masks`` the rule that turns one into a layer's mask,
``config`` the run's ``sparsity`` section, ``layers`` masks on a model (attach, fix, check,
store) and ``phases`` the hooks the training loop calls. See ``docs/sparsity.md``.
"""

from hamq.sparsity.config import LayerSparsity, SparsityConfig
from hamq.sparsity.lfsr import is_primitive, lfsr_period, lfsr_states, lfsr_step
from hamq.sparsity.masks import (
    MaskError,
    kept_count,
    lfsr_clocks,
    lfsr_kept_indices,
    lfsr_kept_rows,
    lfsr_mask,
)

__all__ = [
    "LayerSparsity",
    "MaskError",
    "SparsityConfig",
    "is_primitive",
    "kept_count",
    "lfsr_clocks",
    "lfsr_kept_indices",
    "lfsr_kept_rows",
    "lfsr_mask",
    "lfsr_period",
    "lfsr_states",
    "lfsr_step",
]
