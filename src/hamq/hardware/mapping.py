"""Mapping a quantized layer onto crossbar tiles, and what its stored cells are.

A layer unrolls to ``groups`` blocks of ``K`` rows (``C_in/groups * kh * kw``, in the
channel-major order of the conv weight) by ``N`` logical columns (``C_out/groups``). Each
weight occupies ``cells_per_weight`` physical columns (column sets x slices, see
``representation.py``), so a block has ``N * cells_per_weight`` physical columns, ordered
weight-major: column ``n * cells_per_weight + s * slices + j`` holds slice ``j`` of set
``s`` of weight ``n``. For a convolution, row ``(c, i, j)`` of block ``g`` is driven by
input channel ``g * C_in/groups + c`` at kernel tap ``(i, j)`` of each output position
(:class:`ConvGeometry`).

Tiling: a block's rows split into ``ceil(K / R)`` row tiles and its physical columns into
``ceil(cols / C)`` column tiles, for an array of ``R x C`` cells.

**Grouped and depthwise layers: every group block gets its own tiles (no packing).**
Packing several blocks on the diagonal of one array would save arrays, but the rows a block
drives would then also cross the other blocks' cells, which sit at level 0 and still draw
their level-0 read energy; an unpacked mapping keeps the energy model exact and the
array count honest. Utilization is reported as used cells / allocated cells, so a depthwise
layer shows how much of its arrays it wastes.

Cells of a tile that hold no weight (past the last row or column) are neither driven nor
read: they cost no energy, only area (they lower the utilization).

**Index-free layout (row-granular LFSR masks).** A layer pruned by whole rows
(``sparsity.granularity: row``) stores only its kept rows, ``K' = len(kept_rows)`` of the
``K``, in the order the LFSR yields them: row ``j`` of the compacted block is unroll row
``kept_rows[j]``, and the tiles cut the compacted rows. At inference the same LFSR
regenerates ``kept_rows`` to fetch each stored row's input (``energy.input_vectors``), so
no index is stored. A weight-granular mask keeps different rows in different columns,
which one row's shared input line cannot serve compacted; it maps dense, the pruned cells
at level 0 (``docs/sparsity.md``).

**Per-code tables.** A weight's cells depend only on its integer code, so what the energy
model needs per row (ON cells, read energy ``rowEnergy[r] = sum_c E_cell[level(r, c)]``) is a
table over the ``2**bits - 1`` codes looked up once per weight and summed over the row's
``N`` weights (:func:`row_sums`): no cell-level tensor is built. The weights are kept as
int8 codes (``|q| <= 127``), so a lookup reads one byte per weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
import torch
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.representation import (
    Representation,
    cell_levels,
    cells_per_weight,
    check_layout,
    interpolate_levels,
    level_table,
    n_slices,
    spread_factors,
)
from hamq.hardware.spec import HardwareSpec
from hamq.quantization.export import IntegerLayer
from hamq.sparsity.masks import RowLayout


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ConvGeometry:
    """How a convolution's input drives its rows: kernel size, stride, padding, dilation
    (each ``(height, width)``), as in ``torch.nn.functional.conv2d``."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    def positions(self, hw_in: tuple[int, ...] | torch.Size) -> int:
        """Output positions (input vectors per sample) for an input of spatial size
        ``hw_in = (H, W)``."""
        n = 1
        for size, k, s, p, d in zip(
            hw_in, self.kernel_size, self.stride, self.padding, self.dilation, strict=True
        ):
            n *= (size + 2 * p - d * (k - 1) - 1) // s + 1
        return n


def conv_geometry(layer: IntegerLayer | nn.Module) -> ConvGeometry | None:
    """The :class:`ConvGeometry` of a conv layer (exported or a ``Conv2d``), None for a
    linear layer."""
    if isinstance(layer, IntegerLayer) and layer.kind != "conv2d":
        return None
    if not isinstance(layer, IntegerLayer | nn.Conv2d):
        return None
    return ConvGeometry(
        tuple(layer.kernel_size),  # type: ignore[arg-type]
        tuple(layer.stride),  # type: ignore[arg-type]
        tuple(layer.padding),  # type: ignore[arg-type]
        tuple(layer.dilation),  # type: ignore[arg-type]
    )


def row_sums(per_weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Sum of a per-weight quantity over the ``N`` weights of every crossbar row.

    Args:
        per_weight: ``(C_out, ...)`` in the layout of the layer's weight (conv
            ``(C_out, C_in/groups, kh, kw)``, linear ``(C_out, C_in)``), any dtype.
    Returns:
        ``(groups, K)``: entry ``[g, r]`` sums block ``g``'s weights on row ``r``. Integer
        inputs are summed in int64 (exact), floats in their own dtype (with gradient).
    """
    c_out = per_weight.shape[0]
    blocks = per_weight.reshape(groups, c_out // groups, -1)
    if not per_weight.is_floating_point():
        return blocks.sum(1, dtype=torch.int64)
    return blocks.sum(1)


@dataclass(frozen=True)
class LayerMapping:
    """Where one layer's cells sit on the arrays.

    Attributes:
        name: layer name.
        kind: ``conv2d`` or ``linear``.
        conv: how a conv layer's input drives its rows (None for a linear layer).
        groups: group blocks (1 for a dense layer, C_in for depthwise).
        rows: crossbar rows of one block, K.
        weights: logical columns (weights per row) of one block, N.
        cells_per_weight: physical columns per weight.
        cols: physical columns of one block, ``N * cells_per_weight``.
        tile_rows, tile_cols: array size R x C.
        row_tiles, col_tiles: tiles of one block along rows and columns.
        codes: int8 integer weights in the weight's layout, ``(C_out, ...)`` (block ``g``
            holds output channels ``g * N .. (g + 1) * N - 1``).
        w_bits, representation, cell_bits: how the weights are stored.
        row_layout: for the index-free layout, the stored unroll rows in storage (LFSR)
            order and the register clocks that regenerate them; None when all ``K`` rows
            are stored (``codes`` then has the weight's layout, else ``(C_out, K')``).
        dense_rows: ``K`` before compaction (= ``rows`` when nothing is pruned).
        spread: ``array.slice_levels`` is ``spread`` (a narrow top slice uses the cell's
            whole range: its cells' energies and conductances are those of stretched
            levels; ``representation.spread_factors``).
    """

    name: str
    kind: str
    conv: ConvGeometry | None
    groups: int
    rows: int
    weights: int
    cells_per_weight: int
    cols: int
    tile_rows: int
    tile_cols: int
    row_tiles: int
    col_tiles: int
    codes: torch.Tensor
    w_bits: int
    representation: Representation
    cell_bits: int
    row_layout: RowLayout | None = None
    dense_rows: int = 0
    spread: bool = False

    @property
    def stretch(self) -> torch.Tensor:
        """Level stretch of each physical column, float64 ``(cols,)`` (weight-major; all 1
        unless ``spread``; ``representation.spread_factors``)."""
        per_weight = spread_factors(self.w_bits, self.representation, self.cell_bits, self.spread)
        return per_weight.repeat(self.weights)

    @property
    def stretched(self) -> bool:
        """Some column is stretched (``spread`` with a slice narrower than the cell)."""
        return bool((self.stretch != 1).any())

    @property
    def kept_rows(self) -> torch.Tensor | None:
        """The stored unroll rows in storage order (index-free layout), else None."""
        return None if self.row_layout is None else self.row_layout.rows

    @property
    def dense_row_tiles(self) -> int:
        """Row tiles of one block in the dense layout (all ``K`` rows stored)."""
        return ceil_div(self.dense_rows or self.rows, self.tile_rows)

    @property
    def matrices(self) -> torch.Tensor:
        """int64 integer weight matrices ``(groups, K, N)`` (rows by logical columns)."""
        blocks = self.codes.reshape(self.groups, self.weights, self.rows)
        return blocks.transpose(1, 2).to(torch.int64)

    @property
    def levels(self) -> torch.Tensor:
        """int64 cell levels ``(groups, K, cols)`` (materialized on demand: large)."""
        lv = cell_levels(self.matrices, self.w_bits, self.representation, self.cell_bits)
        return lv.reshape(self.groups, self.rows, self.cols)

    @property
    def tiles(self) -> int:
        """Arrays allocated to the layer: groups x row tiles x column tiles."""
        return self.groups * self.row_tiles * self.col_tiles

    @property
    def cells_used(self) -> int:
        """Cells holding a weight slice: groups x K x cols."""
        return self.groups * self.rows * self.cols

    @property
    def utilization(self) -> float:
        """Used cells / allocated cells (tiles x R x C), in 0..1."""
        return self.cells_used / (self.tiles * self.tile_rows * self.tile_cols)

    @cached_property
    def row_cells_by_level(self) -> torch.Tensor:
        """Cells at each level ``1 .. 2**cell_bits - 1`` on each row: int64
        ``(2**cell_bits - 1, groups, K)`` (1- and 2-bit cells; computed once)."""
        counts = cells_by_level_u8(self.codes, self.w_bits, self.representation, self.cell_bits)
        return torch.stack([_u8_row_sums(c, self.groups) for c in counts])

    @cached_property
    def row_cells_on(self) -> torch.Tensor:
        """Cells at a non-zero level on each row: int64 ``(groups, K)`` (computed once)."""
        if self.cell_bits <= 2:
            return self.row_cells_by_level.sum(0)
        on = on_cells_u8(self.codes, self.w_bits, self.representation, self.cell_bits)
        return _u8_row_sums(on, self.groups)

    @property
    def cells_on(self) -> int:
        """Cells at a non-zero level."""
        return int(self.row_cells_on.sum())

    @cached_property
    def tile_column_sums(self) -> torch.Tensor:
        """Sum of the cell levels of every physical column within every row tile: int64
        ``(groups, row_tiles, cols)`` (computed once, one uint8 slice plane at a time).

        A column with sum 0 in a tile is all OFF there: its bitline carries only level-0
        current and it needs no conversion; its largest bitline sum is the sum times the
        largest input digit (``crossbar.py``).
        """
        g, k, n = self.groups, self.rows, self.weights
        word = stored_word_u8(self.codes, self.w_bits, self.representation)
        word = word.reshape(g, n, k).transpose(1, 2)  # (G, K, N)
        pad = self.row_tiles * self.tile_rows - k
        mask = 2**self.cell_bits - 1
        slices = self.cells_per_weight // (2 if self.representation == "differential" else 1)
        planes = []
        for sign in (1, -1) if self.representation == "differential" else (0,):
            if sign:
                held = (self.matrices * sign > 0).reshape(g, k, n)
                src = torch.where(held, word, torch.zeros_like(word))
            else:
                src = word
            for j in range(slices):
                level = ((src >> (j * self.cell_bits)) & mask).to(torch.int32)
                level = torch.nn.functional.pad(level, (0, 0, 0, pad))
                planes.append(level.reshape(g, self.row_tiles, self.tile_rows, n).sum(2))
        sums = torch.stack(planes, -1)  # (G, T, N, sets * slices), weight-major columns
        return sums.reshape(g, self.row_tiles, self.cols).to(torch.int64)

    @property
    def mapped_cols(self) -> int:
        """Physical columns holding at least one ON cell, all group blocks: the columns an
        array must provide when all-OFF columns are not mapped."""
        return int((self.tile_column_sums.sum(1) > 0).sum())

    @property
    def mapped_tiles(self) -> int:
        """Arrays needed when all-OFF columns are not mapped: per group block,
        ``row_tiles * ceil(mapped columns / C)`` (at least one array per block)."""
        per_block = (self.tile_column_sums.sum(1) > 0).sum(-1)  # (G,)
        col_tiles = torch.clamp(-(-per_block // self.tile_cols), min=1)
        return int(col_tiles.sum()) * self.row_tiles

    @property
    def nonempty_tile_columns(self) -> int:
        """(group, row tile, column) triples with an ON cell: conversions per input cycle
        when all-OFF columns are skipped."""
        return int((self.tile_column_sums > 0).sum())

    def row_energy_pj(self, e_cell_pj: tuple[float, ...] | list[float]) -> torch.Tensor:
        """Energy of reading every cell of each row once at full input: float64
        ``(groups, K)``, pJ; ``rowEnergy[r] = sum_c e_cell_pj[level(r, c)]``.

        With 1- or 2-bit cells from integer counts of the row's cells at each level,
        ``e[0] * cells + sum_l (e[l] - e[0]) * cells at level l`` (exact); with 4-bit cells
        (15 levels) a per-code energy table is summed per row instead.
        """
        e = torch.tensor(e_cell_pj, dtype=torch.float64)
        if self.cell_bits > 2 or self.stretched:
            table = cell_energy_table(self.w_bits, self.representation, self.cell_bits,
                                      e.tolist(), self.spread)  # fmt: skip
            return _table_row_sums(table, self.codes, self.groups)
        cells = self.weights * self.cells_per_weight  # per row, all levels
        by_level = self.row_cells_by_level.to(torch.float64)  # (levels - 1, groups, K)
        return e[0] * cells + torch.tensordot(e[1:] - e[0], by_level, dims=1)


def check_storage(name: str, w_bits: int, hw: HardwareSpec) -> None:
    """Raise :class:`HamqError` naming ``array.cell_bits`` / ``array.representation`` when
    layer ``name``'s ``w_bits``-bit weights cannot be stored that way
    (``representation.check_layout``)."""
    rep, cell_bits = hw.representation, hw.cell_bits
    try:
        check_layout(w_bits, rep, cell_bits)
    except ValueError as err:
        raise HamqError(
            f"hardware {hw.name}: array.cell_bits = {cell_bits} with array.representation = "
            f"{rep} cannot store the {w_bits}-bit weights of layer '{name}': {err}"
        ) from None


def map_weights(
    name: str,
    codes: torch.Tensor,
    conv: ConvGeometry | None,
    groups: int,
    w_bits: int,
    hw: HardwareSpec,
    row_layout: RowLayout | None = None,
) -> LayerMapping:
    """Tiling and cells of a layer with integer weights ``codes`` on the arrays of ``hw``.

    Args:
        codes: integer weights in the weight's layout, conv ``(C_out, C_in/groups, kh, kw)``
            or linear ``(C_out, C_in)``, any integer dtype, ``|q| <= 2**(w_bits-1) - 1``.
        conv: the conv geometry (None for a linear layer).
        row_layout: for the index-free layout, the unroll rows stored, in storage order
            (distinct, in ``0 .. K-1``); the other rows must hold only zero weights.

    Raises :class:`HamqError` as :func:`check_storage`, and when a row left out holds a
    non-zero weight.
    """
    check_storage(name, w_bits, hw)
    rep, cell_bits = hw.representation, hw.cell_bits
    n = codes.shape[0] // groups
    dense_rows = codes[0].numel()
    if row_layout is not None:
        flat = codes.reshape(codes.shape[0], dense_rows)
        kept_rows = row_layout.rows.to(device=codes.device, dtype=torch.int64)
        dropped = torch.ones(dense_rows, dtype=torch.bool, device=codes.device)
        dropped[kept_rows] = False
        if bool((flat[:, dropped] != 0).any()):
            raise HamqError(
                f"layer '{name}': rows outside its row mask hold non-zero weights, so they "
                f"cannot be left off the arrays; fix the masks (hamq.sparsity.fix_masks)"
            )
        codes = flat[:, kept_rows]
    k = codes[0].numel()
    cpw = cells_per_weight(w_bits, rep, cell_bits)
    r, c = hw.array.rows, hw.array.cols
    return LayerMapping(
        name=name,
        kind="linear" if conv is None else "conv2d",
        conv=conv,
        groups=groups,
        rows=k,
        weights=n,
        cells_per_weight=cpw,
        cols=n * cpw,
        tile_rows=r,
        tile_cols=c,
        row_tiles=ceil_div(k, r),
        col_tiles=ceil_div(n * cpw, c),
        codes=codes if codes.dtype == torch.int8 else codes.to(torch.int8),
        w_bits=w_bits,
        representation=rep,
        cell_bits=cell_bits,
        row_layout=row_layout,
        dense_rows=dense_rows,
        spread=hw.array.slice_levels == "spread",
    )


def map_layer(layer: IntegerLayer, hw: HardwareSpec) -> LayerMapping:
    """:func:`map_weights` of an exported layer."""
    return map_weights(layer.name, layer.w_int, conv_geometry(layer), layer.groups,
                       layer.w_bits, hw)  # fmt: skip


@cache
def _cell_energy_values(
    bits: int, rep: Representation, cell_bits: int, e_cell_pj: tuple[float, ...], spread: bool
) -> tuple[float, ...]:
    table = torch.tensor(e_cell_pj, dtype=torch.float64)
    levels = level_table(bits, rep, cell_bits)  # (codes, sets, slices)
    if not spread:
        return tuple(table[levels].sum((-1, -2)).tolist())
    stretch = spread_factors(bits, rep, cell_bits, True)[: n_slices(bits, rep, cell_bits)]
    return tuple(interpolate_levels(table, levels * stretch).sum((-1, -2)).tolist())


def cell_energy_table(
    bits: int,
    rep: Representation,
    cell_bits: int,
    e_cell_pj: tuple[float, ...] | list[float],
    spread: bool = False,
) -> torch.Tensor:
    """Read energy (pJ) of all cells storing each integer ``-q_max .. q_max``.

    Returns float64 ``(2**bits - 1,)``: entry ``i`` is ``sum over the cells of q = i - q_max
    of e_cell_pj[level]`` (column sets and slices, see ``representation.level_table``).
    With ``spread`` (``array.slice_levels: spread``) a narrow slice's code is read at its
    stretched fractional level, its energy interpolated between the table's levels.
    Computed once per (bits, representation, cell bits, energies); a new tensor each call.
    """
    e = tuple(float(x) for x in e_cell_pj)
    spread = spread and any(f != 1 for f in spread_factors(bits, rep, cell_bits, True).tolist())
    values = _cell_energy_values(bits, rep, cell_bits, e, spread)
    return torch.tensor(values, dtype=torch.float64)


_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F
_NP_POPCOUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0


def popcount_u8(x: torch.Tensor) -> torch.Tensor:
    """Set bits of each value of a uint8 tensor (uint8, same shape).

    On the CPU numpy's ``bitwise_count`` (the hardware popcount instruction, several
    times faster than the fallback); elsewhere a SWAR popcount on eight bytes packed in one
    int64 (Hacker's Delight 5-1): a few integer ops on 1/8 of the elements.
    """
    if _NP_POPCOUNT and x.device.type == "cpu":
        return torch.from_numpy(np.bitwise_count(x.numpy()))
    flat = x.reshape(-1)
    pad = -flat.numel() % 8
    if pad:
        flat = torch.cat((flat, flat.new_zeros(pad)))
    v = flat.view(torch.int64)
    v = v - ((v >> 1) & _M1)
    v = (v & _M2) + ((v >> 2) & _M2)
    v = (v + (v >> 4)) & _M4
    out = v.view(torch.uint8)
    return (out[: x.numel()] if pad else out).reshape(x.shape)


def stored_word_u8(codes: torch.Tensor, bits: int, rep: Representation) -> torch.Tensor:
    """The non-zero stored word of int8 weights, as uint8 (same shape).

    As ``representation.encode`` in byte arithmetic: ``|q|`` for a differential pair (the
    other column set holds 0), ``q mod 2**bits`` for two's complement, ``q + 2**(bits-1)``
    shifted, ``(q < 0) << (bits-1) | |q|`` in sign-magnitude.
    """
    byte = codes.view(torch.uint8)  # q mod 256
    if rep == "differential":
        return codes.abs().view(torch.uint8)
    if rep == "twos_complement":
        return byte & (2**bits - 1)
    if rep == "shifted":
        return byte + 2 ** (bits - 1)  # wraps mod 256 onto q + 2**(bits-1), in 1 .. 2**bits - 1
    if rep == "sign_magnitude":
        return codes.abs().view(torch.uint8) | ((codes < 0).to(torch.uint8) << (bits - 1))
    raise ValueError(f"unknown representation '{rep}'")


def on_cells_u8(
    codes: torch.Tensor, bits: int, rep: Representation, cell_bits: int
) -> torch.Tensor:
    """Cells at a non-zero level of each int8 weight (uint8, same shape): the
    ``cell_bits``-bit slices of its stored word with any bit set (each slice's bits OR-ed
    onto its lowest bit, then counted)."""
    word = stored_word_u8(codes, bits, rep)
    any_bit = word
    for i in range(1, cell_bits):
        any_bit = any_bit | (word >> i)
    lowest = sum(1 << j for j in range(0, 8, cell_bits))  # 0xFF, 0x55 or 0x11
    return popcount_u8(any_bit & lowest)


def cells_by_level_u8(
    codes: torch.Tensor, bits: int, rep: Representation, cell_bits: int
) -> list[torch.Tensor]:
    """Cells at each level ``1 .. 2**cell_bits - 1`` of each int8 weight, for 1- and 2-bit
    cells: one uint8 tensor (same shape) per level. A 1-bit cell is at level 1 when its bit
    is set; a 2-bit cell is at level 1, 2 or 3 when its low bit, its high bit or both are."""
    word = stored_word_u8(codes, bits, rep)
    if cell_bits == 1:
        return [popcount_u8(word)]
    if cell_bits != 2:
        raise ValueError(f"cells_by_level_u8 covers 1- and 2-bit cells, not {cell_bits}")
    low, high = word & 0x55, (word >> 1) & 0x55  # each cell's two bits, at its low bit
    return [popcount_u8(low & ~high), popcount_u8(high & ~low), popcount_u8(low & high)]


def _u8_row_sums(values: torch.Tensor, groups: int) -> torch.Tensor:
    """:func:`row_sums` of small uint8 per-weight counts, int64 ``(groups, K)``: on the CPU
    summed by numpy in int32 (exact below 2**23 weights per row; several times faster
    than torch's int64 sum)."""
    if values.device.type != "cpu":
        return row_sums(values, groups)
    blocks = values.reshape(groups, values.shape[0] // groups, -1).numpy()
    return torch.from_numpy(blocks.sum(1, dtype=np.int32)).to(torch.int64)


def _table_row_sums(table: torch.Tensor, codes: torch.Tensor, groups: int) -> torch.Tensor:
    """``row_sums(table[codes + q_max], groups)`` for a float64 per-code table (entry ``i``
    for ``q = i - q_max``) and int8 codes: float64 ``(groups, K)``.

    On the CPU numpy's ``take`` with uint8 indices (the code's byte, ``q mod 256``),
    several times faster than torch's gather, which widens every index to int64.
    """
    m = (table.numel() - 1) // 2
    by_byte = torch.zeros(256, dtype=torch.float64)
    by_byte[torch.arange(-m, m + 1) % 256] = table
    idx = codes.view(torch.uint8)
    if idx.device.type != "cpu":
        return row_sums(by_byte.to(idx.device)[idx.long()], groups)
    return row_sums(torch.from_numpy(np.take(by_byte.numpy(), idx.numpy())), groups)


def row_energy_pj(levels: torch.Tensor, e_cell_pj: tuple[float, ...] | list[float]) -> torch.Tensor:
    """Energy of reading every cell of each row once at full input, in pJ, from cell levels
    (a reference for :meth:`LayerMapping.row_energy_pj`).

    Args:
        levels: int64 cell levels ``(..., K, cols)``.
        e_cell_pj: energy per read of one cell at each level, length ``2**cell_bits``.
    Returns:
        float64 ``(..., K)``: ``rowEnergy[r] = sum_c e_cell_pj[levels[r, c]]``.
    """
    table = torch.tensor(e_cell_pj, dtype=torch.float64, device=levels.device)
    return table[levels].sum(-1)


__all__ = [
    "ConvGeometry",
    "LayerMapping",
    "ceil_div",
    "cell_energy_table",
    "cells_by_level_u8",
    "check_storage",
    "conv_geometry",
    "map_layer",
    "map_weights",
    "on_cells_u8",
    "popcount_u8",
    "row_energy_pj",
    "row_sums",
    "stored_word_u8",
]
