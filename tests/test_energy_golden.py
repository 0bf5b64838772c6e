"""Energy of tiny layers worked out by hand; the arithmetic is in each docstring."""

from __future__ import annotations

import pytest
import torch

from hamq.hardware.estimate import layer_energy
from hamq.hardware.spec import HardwareSpec
from hamq.quantization.export import IntegerLayer

PJ = 1e-12


def hw_spec(rep: str, cell_bits: int, e_cell_pj: list[float], **sections: dict) -> HardwareSpec:
    data = {
        "name": "golden",
        "array": {"rows": 4, "cols": 4, "cell_bits": cell_bits, "representation": rep},
        "input": {"bits_per_cycle": 1},
        "adc": {"bits": 5, "col_mux": 2, "skip_zero": False},
        "timing": {"t_cycle_ns": 10.0},
        "tech": {"e_cell_pj": e_cell_pj, "e_adc_pj": 0.5, "e_adc_ref_bits": 4},
    }
    for key, value in sections.items():
        data[key] = {**data[key], **value}
    return HardwareSpec.model_validate(data)


def linear_layer(w_kn: list[list[int]], w_bits: int, a_bits: int, a_signed: bool) -> IntegerLayer:
    """A linear IntegerLayer whose crossbar matrix (K rows x N columns) is ``w_kn``."""
    w = torch.tensor(w_kn, dtype=torch.int64).T.contiguous()  # (N, K)
    return IntegerLayer(
        name="fc",
        kind="linear",
        w_int=w,
        w_scale=torch.ones(w.shape[0]),
        w_bits=w_bits,
        a_bits=a_bits,
        a_signed=a_signed,
        a_scale=1.0,
        bias=None,
    )


# 2 x 2 layer, 3-bit weights, 1-bit cells, E_cell = [0.1, 1.0] pJ (OFF, ON).
# Crossbar matrix W[r][n] = [[1, -1], [3, 0]]; one input vector x = [3, 1], unsigned 2 bits:
# row 0 is driven in both bit cycles (3 = 0b11), row 1 in one (1 = 0b01).
# Stored cells, LSB slice first (ON count / cells per weight):
#   differential (2 sets x 2 bits): 1 -> (1,0|0,0) 1/4; -1 -> (0,0|1,0) 1/4;
#                                   3 -> (1,1|0,0) 2/4;  0 -> 0/4
#     rowE0 = 2 ON + 6 OFF = 2*1.0 + 6*0.1 = 2.6; rowE1 = 2 ON + 6 OFF = 2.6
#     E_cb = 2*2.6 + 1*2.6 = 7.8 pJ
#   twos_complement (3 bits): 1 = 001 1/3; -1 = 111 3/3; 3 = 011 2/3; 0 = 000 0/3
#     rowE0 = 4 ON + 2 OFF = 4.2; rowE1 = 2 ON + 4 OFF = 2.4; E_cb = 2*4.2 + 2.4 = 10.8 pJ
#   shifted (q + 4): 5 = 101 2/3; 3 = 011 2/3; 7 = 111 3/3; 4 = 100 1/3
#     rowE0 = 4 ON + 2 OFF = 4.2; rowE1 = 4 ON + 2 OFF = 4.2; E_cb = 2*4.2 + 4.2 = 12.6 pJ
#   sign_magnitude: 1 = 001 1/3; -1 = 101 2/3; 3 = 011 2/3; 0 = 000 0/3
#     rowE0 = 3 ON + 3 OFF = 3.3; rowE1 = 2 ON + 4 OFF = 2.4; E_cb = 2*3.3 + 2.4 = 9.0 pJ
GOLDEN_2X2 = {
    "differential": (7.8, 8),
    "twos_complement": (10.8, 6),
    "shifted": (12.6, 6),
    "sign_magnitude": (9.0, 6),
}


@pytest.mark.parametrize("rep", list(GOLDEN_2X2))
def test_golden_2x2_one_bit_cells(rep: str) -> None:
    """E_cb as in the table above. ADC: 2 input cycles x 1 row tile x cols conversions,
    each 0.5 pJ * 2**(5 - 4) = 1.0 pJ (5-bit ADC, reference 4 bits).
    Tiles: 1 row tile (K = 2 <= 4) x ceil(cols / 4) column tiles; utilization =
    2 * cols / (tiles * 16). Cycles: 4 columns per array / col_mux 2 = 2 ADCs, so
    ceil(min(cols, 4) / 2) = 2 mux steps per input cycle: 2 input cycles x 2 = 4.
    MACs = 2 * 2 = 4. Row activity: row 0 reads 3 = 0b11 (2 bits), row 1 reads 1 (1 bit),
    one vector: a mean of (2 + 1) / 2 = 1.5 bits per row and vector. Floor: every cell
    at 0.1 pJ, 3 row activations of ``cols`` cells each: 0.3 * cols pJ."""
    e_cb_pj, cols = GOLDEN_2X2[rep]
    layer = linear_layer([[1, -1], [3, 0]], w_bits=3, a_bits=2, a_signed=False)
    r = layer_energy(layer, torch.tensor([[3, 1]]), hw_spec(rep, 1, [0.1, 1.0]))
    assert r.e_cb_j == pytest.approx(e_cb_pj * PJ, rel=1e-12)
    assert r.cols == cols
    assert r.conversions == 2 * cols
    assert r.e_adc_j == pytest.approx(2 * cols * 1.0 * PJ, rel=1e-12)
    assert r.e_periph_j == 0.0
    assert r.tiles == -(-cols // 4)
    assert r.utilization == pytest.approx(2 * cols / (r.tiles * 16))
    assert r.cycles == 4
    assert r.latency_s == pytest.approx(4 * 10e-9)
    assert r.macs == 4
    assert r.row_activity_mean == 1.5
    assert r.e_cb_floor_j == pytest.approx(0.1 * 3 * cols * PJ, rel=1e-12)


@pytest.mark.parametrize("rep", list(GOLDEN_2X2))
def test_floor_is_the_e_cb_of_zero_weights(rep: str) -> None:
    """The floor is what weights stored as all-OFF cells draw (code 0; -4 in the shifted
    code, stored as q + 4 = 000), and no other weights draw less."""
    x = torch.tensor([[3, 1]])
    hw = hw_spec(rep, 1, [0.1, 1.0])
    q = -4 if rep == "shifted" else 0
    zero = layer_energy(linear_layer([[q, q], [q, q]], w_bits=3, a_bits=2, a_signed=False), x, hw)
    assert zero.e_cb_j == pytest.approx(zero.e_cb_floor_j, rel=1e-12)
    other = layer_energy(linear_layer([[1, -1], [3, 0]], w_bits=3, a_bits=2, a_signed=False), x, hw)
    assert other.e_cb_floor_j == pytest.approx(zero.e_cb_floor_j, rel=1e-12)
    assert other.e_cb_j > other.e_cb_floor_j


def test_floor_counts_only_mapped_columns() -> None:
    """With skip_empty_columns the all-OFF columns are not on the arrays. Differential
    columns of [[1, -1], [3, 0]] (pos s0, pos s1, neg s0, neg s1 per weight): n=0 holds
    1 and 3 (pos s0, pos s1), n=1 holds -1 and 0 (neg s0): 3 of 8 mapped, so the floor is
    0.1 pJ x 3 row activations x 3 cells = 0.9 pJ; zero weights map nothing and draw 0."""
    x = torch.tensor([[3, 1]])
    hw = hw_spec("differential", 1, [0.1, 1.0], array={"skip_empty_columns": True})
    r = layer_energy(linear_layer([[1, -1], [3, 0]], w_bits=3, a_bits=2, a_signed=False), x, hw)
    assert r.e_cb_floor_j == pytest.approx(0.9 * PJ, rel=1e-12)
    zero = layer_energy(linear_layer([[0, 0], [0, 0]], w_bits=3, a_bits=2, a_signed=False), x, hw)
    assert zero.e_cb_j == zero.e_cb_floor_j == 0.0


def test_golden_2x2_skip_zero_and_periphery() -> None:
    """Differential layer above with skip_zero, e_driver_pj 0.2, e_shift_add_pj 0.05.
    Columns per weight: (pos slice0, pos slice1, neg slice0, neg slice1).
    Cycle 0 (LSB): rows 0 and 1 driven. Weight column n=0 holds 1 (row 0) and 3 (row 1):
    non-zero cells in pos slice0 (both rows) and pos slice1 (row 1): 2 conversions.
    n=1 holds -1 (row 0) and 0: neg slice0 only: 1 conversion. Total 3.
    Cycle 1: only row 0 driven: n=0 pos slice0 (1), n=1 neg slice0 (1): 2 conversions.
    Conversions = 5 (of 16), E_adc = 5 * 1.0 = 5.0 pJ.
    Driven row-cycles = 2 + 1 = 3: E_driver = 3 * 0.2 = 0.6 pJ; shift-add = 5 * 0.05 =
    0.25 pJ; E_periph = 0.85 pJ. E_cb unchanged: 7.8 pJ."""
    hw = hw_spec(
        "differential",
        1,
        [0.1, 1.0],
        adc={"skip_zero": True},
        tech={"e_driver_pj": 0.2, "e_shift_add_pj": 0.05},
    )
    layer = linear_layer([[1, -1], [3, 0]], w_bits=3, a_bits=2, a_signed=False)
    r = layer_energy(layer, torch.tensor([[3, 1]]), hw)
    assert r.conversions == 5
    assert r.e_adc_j == pytest.approx(5.0 * PJ)
    assert r.e_periph_j == pytest.approx(0.85 * PJ)
    assert r.e_cb_j == pytest.approx(7.8 * PJ)


# 3 x 4 layer, 4-bit weights, 2-bit cells, E_cell = [0.1, 1, 2, 3] pJ for levels 0..3.
# W[r][n] = [[7, -7, 2, 0], [-3, 5, 0, 1], [0, 6, -5, -1]].
# Signed 3-bit inputs (|x| <= 3): two passes of 2 magnitude bits = 4 input cycles.
# Two inferences x = [3, -2, 1] and [0, -3, 2]: row activity (popcount |x|, both passes)
# = row 0: 2 + 0 = 2, row 1: 1 + 2 = 3, row 2: 1 + 1 = 2.
# Cost c(q) = sum of E_cell over the weight's cells (slices LSB first):
#   differential (3-bit magnitude, 2 slices per set, 4 cells):
#     7 (3,1|0,0) 4.2; -7 (0,0|3,1) 4.2; 2 (2,0|0,0) 2.3; 0 0.4; -3 (0,0|3,0) 3.3;
#     5 (1,1|0,0) 2.2; 1 (1,0|0,0) 1.3; 6 (2,1|0,0) 3.2; -5 (0,0|1,1) 2.2; -1 1.3
#     rowE = [4.2+4.2+2.3+0.4, 3.3+2.2+0.4+1.3, 0.4+3.2+2.2+1.3] = [11.1, 7.2, 7.1]
#     E_cb = 2*11.1 + 3*7.2 + 2*7.1 = 58.0 pJ for 2 inferences: 29.0 pJ each
#   twos_complement (q mod 16, 2 slices): 7=0111 (3,1) 4; -7=1001 (1,2) 3; 2 (2,0) 2.1;
#     0 0.2; -3=1101 (1,3) 4; 5=0101 (1,1) 2; 1 (1,0) 1.1; 6=0110 (2,1) 3;
#     -5=1011 (3,2) 5; -1=1111 (3,3) 6
#     rowE = [9.3, 7.3, 14.2]; E_cb = 18.6 + 21.9 + 28.4 = 68.9 pJ: 34.45 each
#   shifted (q + 8): 15 (3,3) 6; 1 (1,0) 1.1; 10=1010 (2,2) 4; 8=1000 (0,2) 2.1;
#     5 (1,1) 2; 13=1101 (1,3) 4; 9=1001 (1,2) 3; 14=1110 (2,3) 5; 3 (3,0) 3.1; 7 (3,1) 4
#     rowE = [13.2, 11.1, 14.2]; E_cb = 26.4 + 33.3 + 28.4 = 88.1 pJ: 44.05 each
#   sign_magnitude (8*(q<0) + |q|): 7 (3,1) 4; -7=1111 (3,3) 6; 2 2.1; 0 0.2;
#     -3=1011 (3,2) 5; 5 (1,1) 2; 1 1.1; 6 (2,1) 3; -5=1101 (1,3) 4; -1=1001 (1,2) 3
#     rowE = [12.3, 8.3, 10.2]; E_cb = 24.6 + 24.9 + 20.4 = 69.9 pJ: 34.95 each
GOLDEN_3X4 = {
    "differential": (29.0, 16),
    "twos_complement": (34.45, 8),
    "shifted": (44.05, 8),
    "sign_magnitude": (34.95, 8),
}


@pytest.mark.parametrize("rep", list(GOLDEN_3X4))
def test_golden_3x4_two_bit_cells_signed_inputs(rep: str) -> None:
    """E_cb per inference as in the table above. Array 2 rows x 4 cols: K = 3 gives 2 row
    tiles. Conversions per inference (one input vector): 4 input cycles x 2 row tiles x
    cols (16 differential, 8 otherwise) = 128 or 64; E_adc = conversions * 1.0 pJ."""
    e_cb_pj, cols = GOLDEN_3X4[rep]
    w = [[7, -7, 2, 0], [-3, 5, 0, 1], [0, 6, -5, -1]]
    layer = linear_layer(w, w_bits=4, a_bits=3, a_signed=True)
    hw = hw_spec(rep, 2, [0.1, 1.0, 2.0, 3.0], array={"rows": 2})
    r = layer_energy(layer, torch.tensor([[3, -2, 1], [0, -3, 2]]), hw)
    assert r.e_cb_j == pytest.approx(e_cb_pj * PJ, rel=1e-12)
    assert r.input_cycles == 4
    assert r.row_tiles == 2
    assert r.conversions == 4 * 2 * cols
    assert r.e_adc_j == pytest.approx(4 * 2 * cols * PJ, rel=1e-12)
    assert r.macs == 12


def test_golden_dac_two_bits_per_cycle() -> None:
    """2 x 2 differential layer above, 4-bit unsigned input x = [13, 2] through a 2-bit
    DAC (pulse width d / 3 of the cycle). 13 = digits (1, 3) LSB first, 2 = (2, 0).
    Activity: row 0 = (1 + 3) / 3 = 4/3, row 1 = 2/3. rowE = [2.6, 2.6]:
    E_cb = 4/3 * 2.6 + 2/3 * 2.6 = 5.2 pJ. Input cycles = ceil(4 / 2) = 2."""
    layer = linear_layer([[1, -1], [3, 0]], w_bits=3, a_bits=4, a_signed=False)
    hw = hw_spec("differential", 1, [0.1, 1.0], input={"bits_per_cycle": 2})
    r = layer_energy(layer, torch.tensor([[13, 2]]), hw)
    assert r.e_cb_j == pytest.approx(5.2 * PJ, rel=1e-12)
    assert r.input_cycles == 2
    assert r.conversions == 2 * 8
