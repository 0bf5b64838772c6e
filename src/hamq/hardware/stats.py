"""Exact statistics of what a layer stores: ON cells, cells per level, Hamming weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from hamq.hardware.representation import (
    Representation,
    cell_levels,
    cells_per_weight,
    encode,
    popcount,
)


@dataclass(frozen=True)
class CellStats:
    """Stored-cell statistics of one layer (counts over all its weights).

    cells_on: cells at a non-zero level; cells_total: cells used by the weights (no tiling
    padding); level_counts[l]: cells at level l; hw_hist[h]: weights whose stored word(s)
    have Hamming weight h; hamming_weight: total set bits stored.
    """

    cells_on: int
    cells_total: int
    level_counts: list[int]
    hw_hist: list[int]
    hamming_weight: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def cell_stats(q: torch.Tensor, bits: int, rep: Representation, cell_bits: int) -> CellStats:
    """Exact statistics of integer weights ``q`` (any shape) stored as ``rep`` in cells."""
    levels = cell_levels(q.reshape(-1), bits, rep, cell_bits)  # (n, sets, slices)
    hw = popcount(encode(q.reshape(-1), bits, rep)).sum(-1)  # (n,)
    max_hw = 2 * bits  # generous upper bound for every representation
    return CellStats(
        cells_on=int((levels > 0).sum()),
        cells_total=q.numel() * cells_per_weight(bits, rep, cell_bits),
        level_counts=torch.bincount(levels.reshape(-1), minlength=2**cell_bits).tolist(),
        hw_hist=torch.bincount(hw, minlength=max_hw + 1)[: max_hw + 1].tolist(),
        hamming_weight=int(hw.sum()),
    )
