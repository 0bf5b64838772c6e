"""Property tests of the energy model (hypothesis)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hamq.hardware.estimate import layer_energy
from hamq.hardware.representation import REPRESENTATIONS, cell_levels, decode, q_max, unslice
from hamq.hardware.spec import load_hardware
from hamq.quantization.export import IntegerLayer

W_BITS = 4


def fc(w: torch.Tensor, a_signed: bool = False) -> IntegerLayer:
    return IntegerLayer("fc", "linear", w, torch.ones(w.shape[0]), W_BITS, 3, a_signed, 1.0, None)


def hw(rep: str, cell_bits: int, skip: bool = False):
    levels = 2**cell_bits
    return load_hardware(
        "rram-1b",
        **{
            "array.representation": rep,
            "array.cell_bits": cell_bits,
            "array.rows": 3,
            "adc.skip_zero": skip,
            "tech.e_cell_pj": [0.01 + 0.3 * lv for lv in range(levels)],
        },
    )


weights = st.lists(st.integers(-q_max(W_BITS), q_max(W_BITS)), min_size=12, max_size=12).map(
    lambda v: torch.tensor(v).reshape(2, 6)
)
codes = st.lists(st.integers(0, 7), min_size=6, max_size=30).map(
    lambda v: torch.tensor(v[: len(v) // 6 * 6]).reshape(-1, 6)
)
layouts = st.sampled_from([(r, c) for r in REPRESENTATIONS for c in (1, 2, 4)])


@settings(max_examples=30, deadline=None)
@given(w=weights, a=codes, b=codes, layout=layouts)
def test_additive_over_samples(w, a, b, layout) -> None:
    """Sums over a+b samples = sums over a + sums over b (energies are per-sample means)."""
    h = hw(*layout, skip=True)
    ea, eb, eab = (layer_energy(fc(w), x, h) for x in (a, b, torch.cat((a, b))))
    na, nb = a.shape[0], b.shape[0]
    for key in ("e_cb_j", "e_adc_j", "e_periph_j", "conversions", "cycles"):
        both = getattr(ea, key) * na + getattr(eb, key) * nb
        assert getattr(eab, key) * (na + nb) == pytest.approx(both, rel=1e-9, abs=1e-30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    w=weights,
    layout=layouts,
    pos=st.integers(0, 11),
    cell=st.integers(0, 7),
    up=st.integers(1, 15),
)
def test_e_cb_rises_with_a_cell_level(w, layout, pos, cell, up) -> None:
    """Raise one stored cell's level (weight re-decoded from the raised cells): with
    increasing per-level energies and every row driven, E_cb strictly rises."""
    rep, cb = layout
    flat = w.reshape(-1).clone()
    lv = cell_levels(flat[pos], W_BITS, rep, cb)  # (sets, slices)
    below = (lv < 2**cb - 1).nonzero().tolist()  # cells that can rise
    assume(below)
    s, j = below[cell % len(below)]
    lv = lv.clone()
    lv[s, j] += 1 + up % (2**cb - 1 - int(lv[s, j]))
    q = int(decode(unslice(lv, cb), W_BITS, rep))
    assume(abs(q) <= q_max(W_BITS))
    assume(torch.equal(cell_levels(torch.tensor(q), W_BITS, rep, cb), lv))  # representable
    raised = flat.clone()
    raised[pos] = q
    x = torch.full((1, 6), 7)
    before = layer_energy(fc(w), x, hw(rep, cb)).e_cb_j
    after = layer_energy(fc(raised.reshape(2, 6)), x, hw(rep, cb)).e_cb_j
    assert after > before


@settings(max_examples=30, deadline=None)
@given(w1=weights, w2=weights, a=codes, layout=layouts)
def test_adc_conversions_ignore_weights_unless_skip_zero(w1, w2, a, layout) -> None:
    h = hw(*layout)
    assert layer_energy(fc(w1), a, h).conversions == layer_energy(fc(w2), a, h).conversions


def test_skip_zero_depends_on_weights() -> None:
    """The counterpart: with skip_zero, all-zero weights in a differential layer (all cells
    at level 0) convert nothing, while non-zero weights do."""
    h = hw("differential", 1, skip=True)
    x = torch.full((2, 6), 5)
    assert layer_energy(fc(torch.zeros(2, 6, dtype=torch.int64)), x, h).conversions == 0
    assert layer_energy(fc(torch.ones(2, 6, dtype=torch.int64)), x, h).conversions > 0
