"""Tiling and utilization of layers on arrays, counted by hand; stored cells and per-row
energies against loops over every cell."""

from __future__ import annotations

import pytest
import torch

from hamq.hardware import mapping
from hamq.hardware.mapping import (
    cells_by_level_u8,
    map_layer,
    on_cells_u8,
    popcount_u8,
    row_energy_pj,
)
from hamq.hardware.representation import REPRESENTATIONS
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


def ref_stored_cells(q: int, bits: int, rep: str, cell_bits: int) -> list[int]:
    """Cell levels of one weight, written from the representation table in plain Python."""
    if rep == "differential":
        words, width = [max(q, 0), max(-q, 0)], bits - 1
    elif rep == "twos_complement":
        words, width = [q % 2**bits], bits
    elif rep == "shifted":
        words, width = [q + 2 ** (bits - 1)], bits
    else:
        words, width = [(2 ** (bits - 1) if q < 0 else 0) + abs(q)], bits
    n = -(-width // cell_bits)
    return [(w >> (j * cell_bits)) & (2**cell_bits - 1) for w in words for j in range(n)]


LAYOUTS = [
    (bits, rep, cb)
    for bits in range(2, 9)
    for rep in REPRESENTATIONS
    for cb in (1, 2, 4)
    if not (rep in ("twos_complement", "sign_magnitude") and bits % cb)
]


@pytest.mark.parametrize(("bits", "rep", "cell_bits"), LAYOUTS)
def test_cells_of_every_code(bits: int, rep: str, cell_bits: int) -> None:
    """The byte arithmetic of on_cells_u8 / cells_by_level_u8 counts the non-zero cells and
    the cells at each level of every code."""
    m = 2 ** (bits - 1) - 1
    codes = torch.arange(-m, m + 1, dtype=torch.int8)
    cells = [ref_stored_cells(q, bits, rep, cell_bits) for q in range(-m, m + 1)]
    got = on_cells_u8(codes, bits, rep, cell_bits).tolist()  # type: ignore[arg-type]
    assert got == [sum(lv > 0 for lv in c) for c in cells]
    if cell_bits <= 2:
        by_level = cells_by_level_u8(codes, bits, rep, cell_bits)  # type: ignore[arg-type]
        assert len(by_level) == 2**cell_bits - 1
        for level, got_level in enumerate(by_level, start=1):
            assert got_level.tolist() == [c.count(level) for c in cells], level


@pytest.mark.parametrize("rep", REPRESENTATIONS)
@pytest.mark.parametrize("cell_bits", [1, 2, 4])
def test_row_energy_and_cells_on_against_cell_loops(rep: str, cell_bits: int) -> None:
    """A grouped conv with 8-bit weights: per-row energies and ON cells of the mapping equal
    a loop over every weight's cells (written from the representation table)."""
    if rep in ("twos_complement", "sign_magnitude") and 8 % cell_bits:
        pytest.skip("layout not storable")
    gen = torch.Generator().manual_seed(cell_bits * 10 + REPRESENTATIONS.index(rep))
    w = torch.randint(-127, 128, (6, 2, 3, 3), generator=gen)
    w[0, 0, 0, 0], w[1, 0, 0, 0] = 127, -127
    layer = IntegerLayer(
        "c", "conv2d", w, torch.ones(6), 8, 8, False, 1.0, None, (1, 1), (1, 1), (1, 1), 2
    )
    e_cell = [0.05 + 0.3 * lv + 0.01 * lv * lv for lv in range(2**cell_bits)]
    hw = load_hardware(
        "rram-1b",
        **{"array.representation": rep, "array.cell_bits": cell_bits, "tech.e_cell_pj": e_cell},
    )
    m = map_layer(layer, hw)
    want_e = torch.zeros(2, 18, dtype=torch.float64)
    want_on = 0
    for c_out in range(6):
        g = c_out // 3
        for r, q in enumerate(w[c_out].reshape(-1).tolist()):
            cells = ref_stored_cells(q, 8, rep, cell_bits)
            want_e[g, r] += sum(e_cell[lv] for lv in cells)
            want_on += sum(lv > 0 for lv in cells)
    assert torch.allclose(m.row_energy_pj(e_cell), want_e, rtol=1e-12, atol=0)
    assert m.cells_on == want_on
    assert torch.allclose(row_energy_pj(m.levels, e_cell), want_e, rtol=1e-12, atol=0)


def test_popcount_fallback_matches_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SWAR popcount used where numpy has no bitwise_count (or off the CPU)."""
    monkeypatch.setattr(mapping, "_NP_POPCOUNT", False)
    x = torch.arange(256, dtype=torch.int64).to(torch.uint8)
    assert popcount_u8(x).tolist() == [bin(v).count("1") for v in range(256)]
    odd = torch.tensor([255, 7, 1], dtype=torch.uint8)  # length not a multiple of 8
    assert popcount_u8(odd).tolist() == [8, 3, 1]
