"""Tiling and utilization of layers on arrays, counted by hand."""

from __future__ import annotations

import pytest
import torch

from hamq.hardware.mapping import map_layer, row_energy_pj
from hamq.hardware.spec import load_hardware
from hamq.quantization.export import IntegerLayer


def conv(c_in: int, c_out: int, k: int, groups: int, w_bits: int = 8) -> IntegerLayer:
    w = torch.ones(c_out, c_in // groups, k, k, dtype=torch.int64)
    return IntegerLayer(
        "c", "conv2d", w, torch.ones(c_out), w_bits, 8, False, 1.0, None,
        (1, 1), (1, 1), (1, 1), groups,
    )  # fmt: skip


def test_dense_conv_tiles() -> None:
    """64 -> 64 3x3, 8-bit weights, differential on 1-bit cells: 14 cells per weight.
    K = 64*9 = 576 rows -> ceil(576/128) = 5 row tiles; 64*14 = 896 columns -> 7 column
    tiles; 35 arrays; utilization = 576*896 / (35*128*128) = 0.9."""
    m = map_layer(conv(64, 64, 3, 1), load_hardware("rram-1b"))
    assert (m.rows, m.cols, m.row_tiles, m.col_tiles, m.tiles) == (576, 896, 5, 7, 35)
    assert m.utilization == pytest.approx(576 * 896 / (35 * 128 * 128))
    assert m.cells_on == 576 * 64  # q = 1: one ON cell (LSB of the positive set) each


def test_depthwise_gets_one_block_per_group() -> None:
    """Depthwise 64 channels 3x3: 64 blocks of 9 rows x 14 columns, one array each:
    utilization = 64*9*14 / (64*128*128) = 0.77%."""
    m = map_layer(conv(64, 64, 3, 64), load_hardware("rram-1b"))
    assert (m.groups, m.rows, m.cols, m.tiles) == (64, 9, 14, 64)
    assert m.utilization == pytest.approx(9 * 14 / 128**2)


def test_row_energy_sums_levels() -> None:
    levels = torch.tensor([[[0, 1, 3], [2, 2, 0]]])
    e = row_energy_pj(levels, [0.1, 1.0, 2.0, 4.0])
    assert e[0].tolist() == pytest.approx([0.1 + 1.0 + 4.0, 2.0 + 2.0 + 0.1])
