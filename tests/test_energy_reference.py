"""The fast energy path against a brute-force reference: explicit Python loops over input
vectors, passes, cycles, rows, columns and slices, with its own encoding of the words."""

from __future__ import annotations

import math
import zlib

import pytest
import torch

from hamq.hardware.estimate import layer_energy
from hamq.hardware.spec import HardwareSpec
from hamq.quantization.export import IntegerLayer

PJ = 1e-12


def ref_words(q: int, bits: int, rep: str) -> list[int]:
    """Stored words of q, written independently of representation.py."""
    if rep == "differential":
        return [max(q, 0), max(-q, 0)]
    if rep == "twos_complement":
        return [q % 2**bits]
    if rep == "shifted":
        return [q + 2 ** (bits - 1)]
    return [(2 ** (bits - 1) if q < 0 else 0) + abs(q)]  # sign_magnitude


def ref_cells(q: int, bits: int, rep: str, cell_bits: int) -> list[int]:
    """Cell levels of one weight, column order (set, slice), LSB slice first."""
    wb = bits - 1 if rep == "differential" else bits
    n = math.ceil(wb / cell_bits)
    return [
        (w >> (j * cell_bits)) & (2**cell_bits - 1)
        for w in ref_words(q, bits, rep)
        for j in range(n)
    ]


def ref_im2col(x: torch.Tensor, k: int, stride: int, pad: int, dil: int, groups: int) -> list:
    """vectors[g][v] = list of K input codes of block g (rows ordered c, i, j)."""
    b, c, h, w = x.shape
    cg = c // groups
    ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
    out = []
    for g in range(groups):
        vecs = []
        for bi in range(b):
            for oy in range(ho):
                for ox in range(wo):
                    vec = []
                    for ci in range(cg):
                        for i in range(k):
                            for j in range(k):
                                y, xx = oy * stride - pad + i * dil, ox * stride - pad + j * dil
                                inside = 0 <= y < h and 0 <= xx < w
                                vec.append(int(x[bi, g * cg + ci, y, xx]) if inside else 0)
                    vecs.append(vec)
        out.append(vecs)
    return out


def reference(
    mats: list, vectors: list, w_bits: int, a_bits: int, a_signed: bool, hw: HardwareSpec
) -> dict[str, float]:
    """Totals over all vectors: e_cb_pj, conversions (with and without skip), driven.

    mats[g][r][n]: integer weights of block g; vectors[g][v][r]: input codes.
    """
    rep, cb, k = hw.representation, hw.cell_bits, hw.input.bits_per_cycle
    e_cell = hw.tech.e_cell_pj
    m_bits = a_bits - 1 if a_signed else a_bits
    n_digits = math.ceil(m_bits / k)
    signs = (1, -1) if a_signed else (1,)
    e_cb = conv_all = conv_skip = driven = 0.0
    for g, mat in enumerate(mats):
        cells = [[c for q in row for c in ref_cells(q, w_bits, rep, cb)] for row in mat]
        n_rows, n_cols = len(cells), len(cells[0])
        for vec in vectors[g]:
            for sign in signs:
                for t in range(n_digits):
                    digits = [((max(sign * x, 0)) >> (t * k)) & (2**k - 1) for x in vec]
                    for r in range(n_rows):
                        if digits[r]:
                            driven += 1
                            for c in range(n_cols):
                                e_cb += e_cell[cells[r][c]] * digits[r] / (2**k - 1)
                    for start in range(0, n_rows, hw.array.rows):
                        tile = range(start, min(start + hw.array.rows, n_rows))
                        for c in range(n_cols):
                            conv_all += 1
                            if any(digits[r] and cells[r][c] for r in tile):
                                conv_skip += 1
    return {"e_cb_pj": e_cb, "conv_all": conv_all, "conv_skip": conv_skip, "driven": driven}


def make_hw(rep: str, cell_bits: int, rows: int, k: int, skip: bool) -> HardwareSpec:
    levels = 2**cell_bits
    return HardwareSpec.model_validate(
        {
            "name": "ref",
            "array": {"rows": rows, "cols": 8, "cell_bits": cell_bits, "representation": rep},
            "input": {"bits_per_cycle": k},
            "adc": {"bits": 6, "col_mux": 4, "skip_zero": skip},
            "tech": {
                # Irregular, increasing energies so every level counts differently.
                "e_cell_pj": [0.013 + 0.37 * lv + 0.05 * lv * lv for lv in range(levels)],
                "e_adc_pj": 0.7,
                "e_adc_ref_bits": 6,
                "e_driver_pj": 0.11,
                "e_shift_add_pj": 0.03,
            },
        }
    )


def check(layer: IntegerLayer, codes: torch.Tensor, mats: list, vectors: list, hw: HardwareSpec):
    ref = reference(mats, vectors, layer.w_bits, layer.a_bits, layer.a_signed, hw)
    r = layer_energy(layer, codes, hw)
    b = codes.shape[0]
    assert r.e_cb_j == pytest.approx(ref["e_cb_pj"] / b * PJ, rel=1e-9, abs=1e-30)
    conv = ref["conv_skip"] if hw.adc.skip_zero else ref["conv_all"]
    assert r.conversions == pytest.approx(conv / b, rel=1e-12)
    assert r.e_adc_j == pytest.approx(conv / b * 0.7 * PJ, rel=1e-9)
    periph = (ref["driven"] * 0.11 + conv * 0.03) / b * PJ
    assert r.e_periph_j == pytest.approx(periph, rel=1e-9)


REPS = ["differential", "twos_complement", "shifted", "sign_magnitude"]


@pytest.mark.parametrize("rep", REPS)
@pytest.mark.parametrize("cell_bits", [1, 2, 4])
@pytest.mark.parametrize("rows", [3, 16])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("signed", [False, True])
def test_linear_matches_reference(rep: str, cell_bits: int, rows: int, k: int, signed: bool):
    gen = torch.Generator().manual_seed(
        zlib.crc32(repr((rep, cell_bits, rows, k, signed)).encode())
    )
    w_bits, a_bits, n_in, n_out, batch = 4, 5, 7, 3, 3
    w = torch.randint(-7, 8, (n_out, n_in), generator=gen)
    w[0, :2] = torch.tensor([-7, 0])  # extremes always present
    lo = -(2 ** (a_bits - 1) - 1) if signed else 0
    hi = 2 ** (a_bits - 1) - 1 if signed else 2**a_bits - 1
    codes = torch.randint(lo, hi + 1, (batch, n_in), generator=gen)
    codes[0, 0] = 0
    layer = IntegerLayer("fc", "linear", w, torch.ones(n_out), w_bits, a_bits, signed, 1.0, None)
    mats = [w.T.tolist()]
    vectors = [codes.tolist()]
    for skip in (False, True):
        check(layer, codes, mats, vectors, make_hw(rep, cell_bits, rows, k, skip))


@pytest.mark.parametrize("rep", REPS)
@pytest.mark.parametrize("cell_bits", [1, 2])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize(("groups", "stride", "pad", "dil"), [(1, 1, 1, 1), (2, 2, 1, 2)])
def test_conv_matches_reference(rep, cell_bits, signed, groups, stride, pad, dil):
    gen = torch.Generator().manual_seed(zlib.crc32(repr((rep, cell_bits, signed, groups)).encode()))
    c_in, c_out, ksz, a_bits = 2, 4, 3, 4
    w = torch.randint(-7, 8, (c_out, c_in // groups, ksz, ksz), generator=gen)
    lo, hi = (-7, 7) if signed else (0, 15)
    codes = torch.randint(lo, hi + 1, (2, c_in, 4, 4), generator=gen)
    layer = IntegerLayer(
        "conv", "conv2d", w, torch.ones(c_out), 4, a_bits, signed, 1.0, None,
        (stride, stride), (pad, pad), (dil, dil), groups,
    )  # fmt: skip
    n = c_out // groups
    mats = [w[g * n : (g + 1) * n].reshape(n, -1).T.tolist() for g in range(groups)]
    vectors = ref_im2col(codes, ksz, stride, pad, dil, groups)
    for skip in (False, True):
        check(layer, codes, mats, vectors, make_hw(rep, cell_bits, 5, 1, skip))
