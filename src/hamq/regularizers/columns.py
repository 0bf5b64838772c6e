"""Empty whole cell columns per row tile: group sparsity over the cells one conversion reads.

With ``array.skip_empty_columns`` a column whose cells in a row tile are all OFF is neither
converted nor (when OFF in every tile) mapped, so E_adc falls with the number of
(tile, column) pairs that hold an ON cell, not with the number of ON cells. HamQ lowers
the ON cells one weight at a time; a column stays non-empty while any of its up-to-``R``
rows holds a 1 in that slice. This penalty is a group lasso over exactly those groups::

    penalty = sum_layers mean_{g, t, n, c} || on_c(t[g, r, n]) for r in tile t ||_2 / sqrt(|tile|)

where ``on_c(q)`` is the surrogate of "cell slot ``c`` of code ``q`` is ON" (the table of
``representation.level_table(...) > 0`` for that slot, made differentiable like HamQ's:
its lower envelope at ``slope`` per integer unit, or Gaussian-smoothed), ``g`` a group
block, ``t`` a row tile of ``array.rows`` rows, ``n`` a weight column and ``c`` one of its
``cells_per_weight`` physical columns. An L2 norm over a group has a gradient that pulls
every member of a nearly empty group harder, so whole groups reach zero (Yuan & Lin's
group lasso). The range-setting weights are held (``hamming.hold_range``).
"""

from __future__ import annotations

import torch
from torch import nn

from hamq.hardware.representation import level_table
from hamq.quantization.convert import quantized_layers
from hamq.regularizers.base import Regularizer, RegularizerConfig, register
from hamq.regularizers.hamming import hold_range
from hamq.regularizers.surrogates import interp_cost, penalty_table

_EPS = 1e-8


def slot_tables(bits: int, rep: str, cell_bits: int) -> torch.Tensor:
    """float ``(cells_per_weight, 2**bits - 1)``: 1 where cell slot ``c`` of code ``q`` is
    ON (slots in the mapping's column order: set-major, LSB slice first)."""
    levels = level_table(bits, rep, cell_bits)  # type: ignore[arg-type]  (codes, sets, slices)
    return (levels > 0).reshape(levels.shape[0], -1).T.to(torch.float32)


@register("columns")
class ColumnRegularizer(Regularizer):
    """Group lasso over the cells of each (row tile, physical column) of every layer."""

    def __init__(self, cfg: RegularizerConfig, hw) -> None:
        super().__init__(cfg, hw)
        if cfg.surrogate == "sin":
            raise ValueError("regularizer columns: surrogate sin is not available; use "
                             "envelope or interp")  # fmt: skip
        self.surrogate, self.sigma, self.slope = cfg.surrogate, cfg.smooth, cfg.slope
        self._tables: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _table(self, bits: int, device: torch.device) -> torch.Tensor:
        key = (bits, device)
        if key not in self._tables:
            raw = slot_tables(bits, self.hw.representation, self.hw.cell_bits)
            smooth = [penalty_table(row, self.surrogate, self.sigma, self.slope) for row in raw]
            self._tables[key] = torch.stack(smooth).to(device)
        return self._tables[key]

    def layer_penalty(
        self, t: torch.Tensor, bits: int, groups: int, range_code: int
    ) -> torch.Tensor:
        """Mean normalized group norm of one layer with continuous codes ``t`` ``(C_out,
        ...)``."""
        rows_per_tile = self.hw.array.rows
        tables = self._table(bits, t.device)
        c_out = t.shape[0]
        blocks = t.reshape(groups, c_out // groups, -1)  # (G, N, K)
        k = blocks.shape[-1]
        tiles = -(-k // rows_per_tile)
        pad = tiles * rows_per_tile - k
        norms = []
        for table in tables:  # one cell slot at a time: (G, N, K) surrogate ON-ness
            on = hold_range(interp_cost(blocks, table), blocks, range_code)
            on = torch.nn.functional.pad(on, (0, pad)).reshape(groups, -1, tiles, rows_per_tile)
            size = torch.full((tiles,), float(rows_per_tile), device=t.device)
            size[-1] = rows_per_tile - pad
            norms.append(torch.sqrt((on * on).sum(-1) + _EPS) / torch.sqrt(size))
        return torch.stack(norms).mean()

    def penalty(self, model: nn.Module) -> torch.Tensor:
        terms = []
        for _, layer in quantized_layers(model):
            groups = layer.groups if isinstance(layer, nn.Conv2d) else 1
            t = layer.weight_continuous()
            terms.append(self.layer_penalty(t, layer.w_bits, groups, layer.range_code))
        return torch.stack(terms).sum()


__all__ = ["ColumnRegularizer", "slot_tables"]
