"""Clearing nearly empty cell columns: bit-column sparsity after training.

On arrays that skip all-OFF columns (``array.skip_empty_columns``), a physical column of a
row tile costs a conversion per input cycle and a read of every one of its cells (level 0
included) as soon as one cell in it is ON. After HamQ most low-slice columns hold no ON
cell, but some hold one or two: a column with 1 ON cell out of 128 pays the whole
column's floor and conversions for one weight's low bits. Clearing moves each weight of
such a column to the nearest code whose cell there is OFF, so the column empties.

The rule, per (group block, row tile, physical column) with at most ``max_on`` ON cells,
sparsest first:

- a column holding a range-setting weight (``|q| >= range_code``) is left as it is, so
  every channel keeps its step size;
- each weight with an ON cell there moves to the nearest code ``q'`` with
  ``|q'| < range_code`` whose cells are OFF in that column, in every column empty in
  that tile and in every other column to be cleared (ties: the smaller ``|q'|``, fewer
  ON cells), so a weight ON in two sparse columns takes the code nearest to it with
  both OFF.
  Code 0 qualifies wherever it is stored as all OFF (every representation but
  ``shifted``), so such a column always empties; with ``shifted`` a column no code can
  empty is left;
- a column is left when some weight would have to move by more than ``max_move`` codes:
  clearing a high slice (the ``64`` of a weight at 96) moves the largest weights, which
  the network needs (on ResNet-20, clearing every column of one ON cell with no limit
  moved weights by up to 48 codes and cost 1.7 pp; ``docs/sparsity.md``);
- a move can leave another column of the tile with ``max_on`` ON cells or fewer, so the
  tile is swept again until no column within the threshold can be cleared.

The matrices are in storage order (``LayerMapping.matrices``: for the index-free layout,
the kept rows in LFSR order), so the row tiles are the arrays' own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hamq.hardware.mapping import conv_geometry, map_weights
from hamq.hardware.representation import Representation, integer_range, level_table
from hamq.hardware.spec import HardwareSpec
from hamq.quantization.convert import quantized_layers


@dataclass(frozen=True)
class ClearCounts:
    """What clearing changed in one layer.

    nonempty_before, nonempty_after: (group, row tile, column) triples holding an ON cell;
    weights_changed: weights moved to another code; abs_change: the sum of ``|q' - q|``
    over them (integer units).
    """

    nonempty_before: int
    nonempty_after: int
    weights_changed: int
    abs_change: int

    @property
    def columns_cleared(self) -> int:
        return self.nonempty_before - self.nonempty_after


def clear_sparse_columns(
    matrices: torch.Tensor,
    tile_rows: int,
    bits: int,
    rep: Representation,
    cell_bits: int,
    max_on: int,
    range_code: int,
    max_move: int | None = None,
) -> tuple[torch.Tensor, ClearCounts]:
    """Integer weight matrices ``(G, K, N)`` (storage order) with every column of a row tile
    of ``tile_rows`` rows that holds 1 .. ``max_on`` ON cells emptied (module docstring),
    unless some weight would move by more than ``max_move`` codes (None: no limit);
    returns the new matrices (int64) and the counts."""
    if max_on < 0 or tile_rows < 1:
        raise ValueError(f"max_on = {max_on}, tile_rows = {tile_rows}: need >= 0 and >= 1")
    if max_move is not None and max_move < 1:
        raise ValueError(f"max_move = {max_move}: must be at least 1 (or None: no limit)")
    max_move = 2**bits if max_move is None else max_move
    q_all = integer_range(bits)
    qmax = int(q_all[-1])
    if not 0 < range_code <= qmax:
        raise ValueError(f"range_code = {range_code}: must be in 1 .. {qmax}")
    on_table = level_table(bits, rep, cell_bits).reshape(q_all.numel(), -1) > 0  # (Q, C)
    in_range = q_all.abs() < range_code  # a moved weight never becomes a range weight
    # tie-break toward the smaller |q'|: key = |q' - q| * (2 qmax + 1) + |q'|
    weight = 2 * qmax + 1
    out = matrices.to(torch.int64).clone()
    g_blocks, k, _ = out.shape
    before = after = changed = moved = 0
    for g in range(g_blocks):
        for r0 in range(0, k, tile_rows):
            tile = out[g, r0 : r0 + tile_rows]  # (R, N), a view into out
            start = tile.clone()
            on = on_table[tile + qmax]  # (R, N, C)
            counts = on.sum(0)  # (N, C)
            # columns holding a range-setting weight's ON cell stay (the weight never moves)
            held = (on & (tile.abs() >= range_code)[:, :, None]).any(0)
            stuck = torch.zeros_like(held)  # columns found not clearable within the limits
            before += int((counts > 0).sum())
            progress = True
            while progress:  # a move can drop another column to max_on: repeat until none
                progress = False
                cand = ((counts > 0) & (counts <= max_on)).nonzero()
                order = counts[cand[:, 0], cand[:, 1]].argsort(stable=True)
                for n, c in cand[order].tolist():
                    if not 0 < int(counts[n, c]) <= max_on:
                        continue  # an earlier move emptied or filled it
                    if bool(held[n, c] | stuck[n, c]):
                        continue  # a range weight's (its step would change), or found stuck
                    rows = on[:, n, c].nonzero().squeeze(1)
                    q = tile[rows, n]
                    # OFF here, in the empty columns, and in the others to clear
                    forbid = (counts[n] == 0) | ((counts[n] <= max_on) & ~held[n] & ~stuck[n])
                    forbid[c] = True
                    allowed = in_range & ~on_table[:, forbid].any(1)
                    qs = q_all[allowed]
                    if qs.numel() == 0:
                        stuck[n, c] = True  # (``shifted``: no code is OFF in all of them)
                        continue
                    key = (qs[None, :] - q[:, None]).abs() * weight + qs.abs()[None, :]
                    new = qs[key.argmin(1)]
                    if int((new - q).abs().max()) > max_move:
                        stuck[n, c] = True  # too far for some weight: the column stays
                        continue
                    tile[rows, n] = new
                    on[rows, n] = on_table[new + qmax]
                    counts[n] = on[:, n].sum(0)
                    progress = True  # this column emptied: the non-empty count fell
            after += int((counts > 0).sum())
            changed += int((tile != start).sum())  # a weight may move twice: count it once
            moved += int((tile - start).abs().sum())
    return out, ClearCounts(before, after, changed, moved)


def clear_model_columns(
    model: nn.Module, hw: HardwareSpec, max_on: int, max_move: int | None = None
) -> dict[str, ClearCounts]:
    """Clear every quantized layer's columns of at most ``max_on`` ON cells (moving no
    weight by more than ``max_move`` codes) as ``hw`` maps them: its tile rows,
    representation and cell bits, and the index-free layout of a row-pruned layer. The
    weights are set to their new codes times their unchanged step. Returns the counts
    per layer name."""
    result = {}
    for name, layer in quantized_layers(model):
        codes = layer.weight_int()
        groups = layer.groups if isinstance(layer, nn.Conv2d) else 1
        mapping = map_weights(name, codes, conv_geometry(layer), groups, layer.w_bits, hw,
                              layer.row_layout)  # fmt: skip
        new, counts = clear_sparse_columns(mapping.matrices, hw.array.rows, layer.w_bits,
                                           hw.representation, hw.cell_bits, max_on,
                                           layer.range_code, max_move)  # fmt: skip
        result[name] = counts
        if counts.weights_changed == 0:
            continue
        stored = new.transpose(1, 2).reshape(codes.shape[0], -1)  # (C_out, K')
        flat = codes.reshape(codes.shape[0], -1).clone()
        if layer.row_layout is None:
            flat = stored
        else:
            flat[:, layer.row_layout.rows.to(flat.device)] = stored.to(flat.device)
        new_codes = flat.reshape(codes.shape).to(codes.device)
        diff = new_codes != codes
        with torch.no_grad():
            scale = layer.weight_scale()
            target = (new_codes.to(layer.weight.dtype) * scale).to(layer.weight.dtype)
            layer.weight[diff] = target[diff]
        if not torch.equal(layer.weight_int(), new_codes):
            raise AssertionError(f"layer '{name}': cleared codes did not round-trip")
    return result


__all__ = ["ClearCounts", "clear_model_columns", "clear_sparse_columns"]
