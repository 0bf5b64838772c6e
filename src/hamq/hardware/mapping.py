"""Mapping a quantized layer onto crossbar tiles.

A layer unrolls to ``groups`` blocks of ``K`` rows (``C_in/groups * kh * kw``, in the
channel-major order of the conv weight) by ``N`` logical columns (``C_out/groups``). Each
weight occupies ``cells_per_weight`` physical columns (column sets x slices, see
``representation.py``), so a block has ``N * cells_per_weight`` physical columns, ordered
weight-major: column ``n * cells_per_weight + s * slices + j`` holds slice ``j`` of set
``s`` of weight ``n``.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hamq.errors import HamqError
from hamq.hardware.representation import (
    Representation,
    cell_levels,
    cells_per_weight,
    check_layout,
    level_table,
    on_cell_table,
    q_max,
)
from hamq.hardware.spec import HardwareSpec
from hamq.quantization.export import IntegerLayer


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class LayerMapping:
    """Where one layer's cells sit on the arrays.

    Attributes:
        name: layer name.
        groups: group blocks (1 for a dense layer, C_in for depthwise).
        rows: crossbar rows of one block, K.
        weights: logical columns (weights per row) of one block, N.
        cells_per_weight: physical columns per weight.
        cols: physical columns of one block, ``N * cells_per_weight``.
        tile_rows, tile_cols: array size R x C.
        row_tiles, col_tiles: tiles of one block along rows and columns.
        matrices: int64 integer weights ``(groups, K, N)``.
        w_bits, representation, cell_bits: how the weights are stored.
    """

    name: str
    groups: int
    rows: int
    weights: int
    cells_per_weight: int
    cols: int
    tile_rows: int
    tile_cols: int
    row_tiles: int
    col_tiles: int
    matrices: torch.Tensor
    w_bits: int
    representation: Representation
    cell_bits: int

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

    @property
    def cells_on(self) -> int:
        """Cells at a non-zero level."""
        table = on_cell_table(self.w_bits, self.representation, self.cell_bits)
        return int(table[self.matrices + q_max(self.w_bits)].sum())

    def row_energy_pj(self, e_cell_pj: tuple[float, ...] | list[float]) -> torch.Tensor:
        """Energy of reading every cell of each row once at full input: float64 ``(G, K)``,
        pJ; ``rowEnergy[r] = sum_c e_cell_pj[level(r, c)]``, through a per-integer table."""
        table = cell_energy_table(self.w_bits, self.representation, self.cell_bits, e_cell_pj)
        return table[self.matrices + q_max(self.w_bits)].sum(-1)

    @property
    def row_tile_index(self) -> torch.Tensor:
        """Row tile of each row of a block, int64 ``(K,)``."""
        return torch.arange(self.rows) // self.tile_rows


def map_layer(layer: IntegerLayer, hw: HardwareSpec) -> LayerMapping:
    """Cell levels and tiling of ``layer`` on the arrays of ``hw``.

    Raises :class:`HamqError` naming ``array.cell_bits`` / ``array.representation`` when the
    layer's weight bits cannot be stored that way (see ``representation.check_layout``).
    """
    rep, cell_bits = hw.representation, hw.cell_bits
    try:
        check_layout(layer.w_bits, rep, cell_bits)
    except ValueError as err:
        raise HamqError(
            f"hardware {hw.name}: array.cell_bits = {cell_bits} with array.representation = "
            f"{rep} cannot store the {layer.w_bits}-bit weights of layer '{layer.name}': {err}"
        ) from None
    mats = layer.matrices()  # (G, K, N)
    g, k, n = mats.shape
    cpw = cells_per_weight(layer.w_bits, rep, cell_bits)
    r, c = hw.array.rows, hw.array.cols
    return LayerMapping(
        name=layer.name,
        groups=g,
        rows=k,
        weights=n,
        cells_per_weight=cpw,
        cols=n * cpw,
        tile_rows=r,
        tile_cols=c,
        row_tiles=ceil_div(k, r),
        col_tiles=ceil_div(n * cpw, c),
        matrices=mats,
        w_bits=layer.w_bits,
        representation=rep,
        cell_bits=cell_bits,
    )


def cell_energy_table(
    bits: int, rep: Representation, cell_bits: int, e_cell_pj: tuple[float, ...] | list[float]
) -> torch.Tensor:
    """Read energy (pJ) of all cells storing each integer ``-q_max .. q_max``.

    Returns float64 ``(2**bits - 1,)``: entry ``i`` is ``sum over the cells of q = i - q_max
    of e_cell_pj[level]`` (column sets and slices, see ``representation.level_table``).
    """
    table = torch.tensor(e_cell_pj, dtype=torch.float64)
    return table[level_table(bits, rep, cell_bits)].sum((-1, -2))


def row_energy_pj(levels: torch.Tensor, e_cell_pj: tuple[float, ...] | list[float]) -> torch.Tensor:
    """Energy of reading every cell of each row once at full input, in pJ.

    Args:
        levels: int64 cell levels ``(..., K, cols)``.
        e_cell_pj: energy per read of one cell at each level, length ``2**cell_bits``.
    Returns:
        float64 ``(..., K)``: ``rowEnergy[r] = sum_c e_cell_pj[levels[r, c]]``.
    """
    table = torch.tensor(e_cell_pj, dtype=torch.float64, device=levels.device)
    return table[levels].sum(-1)
