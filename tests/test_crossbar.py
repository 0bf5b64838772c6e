"""The crossbar simulation (hardware/crossbar.py, hardware/simulate.py) against independent
references: integer matrix products and convolutions (lossless ADCs must reproduce them
bit for bit), explicit loops over vectors, digits, tiles and columns (lossy ADCs), and
numpy percentiles / brute-force squared errors for the calibrated ranges."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.crossbar import (
    AdcTransfer,
    check_simulatable,
    crossbar_mvm,
    full_scale_transfer,
    lossless_bits,
    lossless_columns,
    place_values,
    reference_mvm,
    word_offset,
)
from hamq.hardware.energy import input_schedule
from hamq.hardware.estimate import estimate_energy
from hamq.hardware.representation import cell_levels, check_layout
from hamq.hardware.simulate import (
    conversion_mse,
    crossbar_layers,
    mse_transfer,
    percentile_transfer,
    plan_adc,
    simulating,
)
from hamq.hardware.spec import load_hardware
from hamq.quantization import QuantConfig, quantize_model
from hamq.quantization.export import capture_input_codes, export_integer_layers


def _layouts() -> list[tuple[str, int, int]]:
    out = []
    for rep, cb, bits in itertools.product(
        ("differential", "twos_complement", "shifted"), (1, 2, 4), (4, 8)
    ):
        try:
            check_layout(bits, rep, cb)
            check_simulatable(bits, rep, cb)  # type: ignore[arg-type]
        except ValueError:
            continue
        out.append((rep, cb, bits))
    return out


LAYOUTS = _layouts()


def _random_layer(bits: int, rep: str, cb: int, k: int = 13, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    qm = 2 ** (bits - 1) - 1
    w = torch.randint(-qm, qm + 1, (2, k, 3), generator=gen)
    w[0, :, 0] = 0  # an all-zero weight column
    levels = cell_levels(w, bits, rep, cb).reshape(2, k, -1)  # type: ignore[arg-type]
    return w, levels


def test_every_simulatable_layout_is_covered() -> None:
    """Differential and shifted at 1/2/4-bit cells, two's complement at 1-bit cells."""
    assert ("differential", 4, 8) in LAYOUTS and ("shifted", 2, 8) in LAYOUTS
    assert ("twos_complement", 1, 8) in LAYOUTS and ("twos_complement", 2, 8) not in LAYOUTS


@pytest.mark.parametrize("rep,cb,bits", LAYOUTS)
@pytest.mark.parametrize("signed", [False, True])
def test_lossless_crossbar_is_the_integer_product(
    rep: str, cb: int, bits: int, signed: bool
) -> None:
    """Bit for bit, for 1..8 input bits per cycle and several row tilings, both through the
    per-digit bitline sums (forced by an observer) and through the lossless shortcut."""
    w, levels = _random_layer(bits, rep, cb)
    gen = torch.Generator().manual_seed(1)
    a_bits = 8
    hi = 2 ** (a_bits - 1) - 1 if signed else 2**a_bits - 1
    x = torch.randint(-hi if signed else 0, hi + 1, (2, 5, w.shape[1]), generator=gen)
    ref = torch.bmm(x.to(torch.float64), w.to(torch.float64))
    place, offset = place_values(bits, rep, cb), word_offset(bits, rep)  # type: ignore[arg-type]
    seen = []
    for k_cycle, tile_rows in itertools.product(range(1, 9), (4, 13, 64)):
        sched = input_schedule(a_bits, signed, k_cycle)
        via_sums = crossbar_mvm(x, levels, sched, place, offset, tile_rows, None, seen.append)
        assert torch.equal(via_sums, ref), (k_cycle, tile_rows)
        full = AdcTransfer(24)
        assert torch.equal(crossbar_mvm(x, levels, sched, place, offset, tile_rows, full), ref)
    assert seen and all(s.min() >= 0 for s in seen)


@pytest.mark.parametrize(
    "rep,cb,bits",
    [("differential", 1, 8), ("shifted", 2, 8), ("twos_complement", 1, 4), ("differential", 4, 8)],
)
@pytest.mark.parametrize("k_cycle", [1, 3])
def test_lossy_adc_matches_explicit_loops(rep: str, cb: int, bits: int, k_cycle: int) -> None:
    """Clipping and coarse steps, every conversion done one by one in Python."""
    w, levels = _random_layer(bits, rep, cb, k=10, seed=3)
    x = torch.randint(-127, 128, (2, 3, 10), generator=torch.Generator().manual_seed(4))
    sched = input_schedule(8, True, k_cycle)
    place, offset = place_values(bits, rep, cb), word_offset(bits, rep)  # type: ignore[arg-type]
    for adc in (AdcTransfer(3), AdcTransfer(2, 2.5), AdcTransfer(4, 7.0), AdcTransfer(3, 10 / 3)):
        got = crossbar_mvm(x, levels, sched, place, offset, 4, adc)
        want = reference_mvm(x, levels, sched, place, offset, 4, adc)
        assert torch.allclose(got, want, rtol=0, atol=1e-9)
    assert not torch.equal(
        crossbar_mvm(x, levels, sched, place, offset, 4, AdcTransfer(1, 3.0)),
        torch.bmm(x.double(), w.double()),
    )


def test_lossless_columns_are_the_ones_that_fit() -> None:
    levels = torch.zeros(1, 6, 3)
    levels[0, :, 0] = 1  # 6 ON cells: sum 6
    levels[0, :2, 1] = 1  # 2 ON cells: sum 2
    sched = input_schedule(4, False, 1)
    assert lossless_columns(levels, sched, 8, AdcTransfer(2)).tolist() == [False, True, True]
    assert lossless_columns(levels, sched, 3, AdcTransfer(2)).tolist() == [True, True, True]
    assert lossless_columns(levels, sched, 8, AdcTransfer(2, 2.0)).tolist() == [False, False, True]
    assert lossless_bits(6) == 3 and lossless_bits(7) == 3 and lossless_bits(8) == 4


def test_refused_layouts_name_the_field_and_the_fix() -> None:
    with pytest.raises(ValueError, match=r"sign_magnitude.*differential"):
        check_simulatable(8, "sign_magnitude", 1)
    with pytest.raises(ValueError, match=r"cell_bits = 2.*cell_bits: 1"):
        check_simulatable(8, "twos_complement", 2)


def test_adc_transfer_rounds_and_clips() -> None:
    adc = AdcTransfer(2, 2.0)  # codes 0..3 -> 0, 2, 4, 6
    p = torch.tensor([0.0, 0.9, 1.0, 3.0, 5.0, 7.0, 100.0])
    assert adc.convert(p).tolist() == [0.0, 0.0, 0.0, 4.0, 4.0, 6.0, 6.0]
    assert full_scale_transfer(3, 5).step == 1.0 and full_scale_transfer(3, 70).step == 10.0
    with pytest.raises(ValueError, match="step"):
        AdcTransfer(3, 0.5)


def test_calibrated_ranges_against_numpy() -> None:
    """The percentile range is numpy's percentile (inverted CDF) of the same sums; the MSE
    step is no worse than any step of a fine brute-force grid."""
    rng = np.random.default_rng(0)
    sums = rng.poisson(9, 20_000)
    hist = torch.bincount(torch.from_numpy(sums), minlength=64)
    t = percentile_transfer(hist, 3, 99.0)
    top = np.percentile(sums[sums > 0], 99.0, method="inverted_cdf")  # zero sums excluded
    assert t.full_scale == pytest.approx(top)
    best = mse_transfer(hist, 3)
    grid = np.linspace(1.0, sums.max() / 7, 400)
    brute = min(conversion_mse(hist, AdcTransfer(3, float(s))) for s in grid)
    assert conversion_mse(hist, best) <= brute * 1.02
    direct = float(np.mean((best.convert(torch.from_numpy(sums).double()).numpy() - sums) ** 2))
    assert conversion_mse(hist, best) == pytest.approx(direct)


# ---------------------------------------------------------------- whole models


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),  # depthwise
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=2, dilation=2, groups=2),  # grouped, dilated
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 5),
    )
    quantize_model(m, QuantConfig(w_bits=8, a_bits=8))
    m.train()
    m(torch.randn(32, 2, 6, 6))
    return m.eval()


@pytest.mark.parametrize(
    "preset,rep",
    [
        ("rram-1b", "differential"),
        ("rram-2b-40nm", "shifted"),
        ("sram-acim", "twos_complement"),
        ("pcm-14nm", "differential"),
    ],
)
def test_lossless_model_reproduces_integer_layers(preset: str, rep: str) -> None:
    """Each simulated layer's accumulation equals the integer convolution of its captured
    input codes and exported weights, and its output the exported layer's, bit for bit."""
    m = _model()
    x = torch.randn(7, 2, 6, 6)
    hw = load_hardware(preset, **{"array.representation": rep, "array.rows": 16})
    sims = crossbar_layers(m, hw)
    with capture_input_codes(m) as codes, torch.no_grad():
        ideal = m(x)
    for sim in sims:
        sim.start_histogram()  # forces every column through the bitline sums
    with simulating(m, sims):
        logits = m(x)
    for sim, layer in zip(sims, export_integer_layers(m), strict=True):
        c = torch.cat(codes[layer.name])
        want = (
            F.conv2d(c.double(), layer.w_int.double(), None, layer.stride, layer.padding,
                     layer.dilation, layer.groups)
            if layer.kind == "conv2d"
            else F.linear(c.double(), layer.w_int.double())
        )  # fmt: skip
        assert torch.equal(sim.accumulate(c), want), layer.name
        assert sim.histogram is not None and int(sim.histogram.sum()) > 0
    assert torch.allclose(logits, ideal, atol=1e-4)


def test_coarse_adc_changes_outputs_and_full_policy_does_not() -> None:
    m = _model()
    x = torch.randn(16, 2, 6, 6)
    with torch.no_grad():
        ideal = m(x)
    full = load_hardware("rram-1b", **{"adc.policy": "full"})
    sims = crossbar_layers(m, full)
    plan = plan_adc(m, sims, full, None)
    assert all(
        p.bits == s.lossless_bits and p.range_from == "lossless"
        for p, s in zip(plan, sims, strict=True)
    )
    with simulating(m, sims):
        assert torch.allclose(m(x), ideal, atol=1e-4)
    coarse = load_hardware("rram-1b", **{"adc.bits": 2})
    sims = crossbar_layers(m, coarse)
    plan = plan_adc(m, sims, coarse, [(x, torch.zeros(16, dtype=torch.long))])
    assert any(p.range_from == "mse" for p in plan)
    with simulating(m, sims):
        assert not torch.allclose(m(x), ideal, atol=1e-3)


def test_optimized_policy_stays_within_tolerance() -> None:
    """Labels are the ideal model's own predictions, so the lossless crossbar scores 100%;
    the plan must keep at least 100 - tolerance on that split with fewer bits."""
    m = _model(1)
    x = torch.randn(200, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = m(x).argmax(-1)
    batches = [(x[:100], y[:100]), (x[100:], y[100:])]
    hw = load_hardware("rram-1b", **{"adc.policy": "optimized", "adc.tolerance_pp": 2.0})
    sims = crossbar_layers(m, hw)
    plan = plan_adc(m, sims, hw, batches)
    assert all(p.policy == "optimized" and p.bits <= p.lossless_bits for p in plan)
    assert sum(p.bits for p in plan) < sum(p.lossless_bits for p in plan)
    with simulating(m, sims):
        correct = sum(int((m(a).argmax(-1) == b).sum()) for a, b in batches)
    assert correct >= 200 * (1 - 0.02)
    with pytest.raises(HamqError, match="calibration data"):
        plan_adc(m, crossbar_layers(m, hw), hw, None)


def test_memoized_search_gives_the_same_plan_with_fewer_simulations(monkeypatch) -> None:
    """The ADC search reuses each layer's outputs for inputs it has seen at its current
    transfer: the plan is identical, and far fewer layer simulations run."""
    from hamq.hardware import simulate

    m = _model(1)
    x = torch.randn(120, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = m(x).argmax(-1)
    batches = [(x[:60], y[:60]), (x[60:], y[60:])]
    hw = load_hardware("rram-1b", **{"adc.policy": "optimized", "adc.tolerance_pp": 2.0})
    runs = {}
    calls = {"n": 0}
    real = simulate.LayerSim._simulate

    def counting(self, codes):
        calls["n"] += 1
        return real(self, codes)

    monkeypatch.setattr(simulate.LayerSim, "_simulate", counting)
    for memo in (False, True):
        monkeypatch.setattr(simulate, "MEMOIZE_SEARCH", memo)
        calls["n"] = 0
        sims = crossbar_layers(m, hw)
        plan = plan_adc(m, sims, hw, batches)
        assert all(s.memo is None for s in sims)  # cleared after the search
        runs[memo] = ([(p.bits, p.transfer) for p in plan], calls["n"])
    assert runs[True][0] == runs[False][0]
    assert runs[True][1] < runs[False][1]


def test_unknown_layer_in_adc_layers_is_refused() -> None:
    m = _model()
    hw = load_hardware("rram-1b", **{"adc.layers": {"9": {"bits": 3}, "nope": {"bits": 3}}})
    with pytest.raises(HamqError, match=r"'nope'.*not a quantized layer"):
        plan_adc(m, crossbar_layers(m, hw), hw, None)


def test_sign_magnitude_model_is_refused_with_the_field() -> None:
    hw = load_hardware("rram-1b", **{"array.representation": "sign_magnitude"})
    with pytest.raises(HamqError, match=r"layer '0'.*sign_magnitude"):
        crossbar_layers(_model(), hw)


# ---------------------------------------------------------------- energy of what is computed


def test_energy_charges_each_layers_bits() -> None:
    m = _model()
    x = torch.randn(8, 2, 6, 6)
    hw = load_hardware("rram-1b", **{"adc.bits": 5})
    base = estimate_energy(m, x, hw)
    full = estimate_energy(m, x, load_hardware("rram-1b", **{"adc.policy": "full"}))
    for b, f in zip(base.layers, full.layers, strict=True):
        assert b.adc_bits == 5
        assert f.e_adc_j == pytest.approx(b.e_adc_j * 2.0 ** (f.adc_bits - 5))
        assert f.e_cb_j == b.e_cb_j
    named = estimate_energy(m, x, hw, adc_bits={"0": 3})
    assert named.layers[0].adc_bits == 3 and named.layers[1].adc_bits == 5


def test_unmapped_columns_draw_no_read_energy() -> None:
    """With every level at the same read energy, a dense layer's E_cb is proportional to
    its physical columns: skipping the all-OFF ones scales it by mapped / all columns."""
    m = _model()
    with torch.no_grad():
        m[0].weight[:3] = 0  # three empty output channels of the first (dense) conv
    x = torch.randn(4, 2, 6, 6)
    flat = {"tech.e_cell_pj": [1.0, 1.0], "array.rows": 16}
    base = estimate_energy(m, x, load_hardware("rram-1b", **flat))
    skip = estimate_energy(
        m, x, load_hardware("rram-1b", **flat, **{"array.skip_empty_columns": True})
    )
    for i in (0, 3):  # the dense conv and the linear layer (one group block each)
        b, k = base.layers[i], skip.layers[i]
        assert k.e_cb_j == pytest.approx(b.e_cb_j * k.mapped_cols / (b.groups * b.cols))
    assert skip.layers[0].mapped_cols < base.layers[0].mapped_cols


def test_percentile_range_ignores_zero_sums() -> None:
    hist = torch.zeros(50, dtype=torch.long)
    hist[0], hist[10], hist[40] = 10_000, 99, 1
    assert percentile_transfer(hist, 2, 99.0).full_scale == pytest.approx(10.0)


def test_skip_empty_columns_matches_brute_force() -> None:
    """Conversions, mapped columns and arrays counted by loops over the cell levels."""
    m = _model()
    with torch.no_grad():  # empty whole output channels and a row tile of one layer
        m[0].weight[:3] = 0
        m[6].weight[:, :16] = 0
    x = torch.randn(4, 2, 6, 6)
    hw = load_hardware("rram-1b", **{"array.rows": 16, "array.cols": 32,
                                     "array.skip_empty_columns": True})  # fmt: skip
    dense = load_hardware("rram-1b", **{"array.rows": 16, "array.cols": 32})
    got, ref = estimate_energy(m, x, hw), estimate_energy(m, x, dense)
    sims = crossbar_layers(m, hw)
    for row, base, sim in zip(got.layers, ref.layers, sims, strict=True):
        lv = sim.mapping.levels
        g, k, cols = lv.shape
        nonempty = mapped = 0
        tiles = 0
        for gi in range(g):
            used = [any(lv[gi, r, c] > 0 for r in range(k)) for c in range(cols)]
            mapped += sum(used)
            tiles += max(1, -(-sum(used) // 32)) * -(-k // 16)
            for start in range(0, k, 16):
                for c in range(cols):
                    nonempty += any(lv[gi, r, c] > 0 for r in range(start, min(start + 16, k)))
        per_vector = sim.schedule.cycles * nonempty
        assert row.conversions == pytest.approx(row.vectors * per_vector)
        assert row.mapped_cols == mapped and row.tiles == tiles
        assert row.conversions <= base.conversions
    assert got.layers[0].mapped_cols < ref.layers[0].mapped_cols
    assert sum(r.conversions for r in got.layers) < sum(r.conversions for r in ref.layers)


@pytest.mark.parametrize(
    ("rep", "cb", "k_cycle", "signed", "groups", "stride", "dilation", "noisy"),
    [
        ("differential", 1, 1, False, 1, 1, 1, False),
        ("differential", 4, 8, True, 1, 2, 1, False),
        ("shifted", 2, 2, True, 2, 1, 2, False),
        ("twos_complement", 1, 3, False, 4, 2, 1, False),
        ("differential", 2, 4, True, 4, 1, 1, True),
        ("shifted", 4, 8, False, 1, 1, 1, True),
    ],
)
def test_convolution_path_matches_the_unfolded_one(
    rep: str,
    cb: int,
    k_cycle: int,
    signed: bool,
    groups: int,
    stride: int,
    dilation: int,
    noisy: bool,
) -> None:
    """``crossbar_conv2d`` (one row tile, bitline sums by convolution) equals
    ``crossbar_mvm`` on the unfolded inputs, through a lossy ADC, with noisy levels too."""
    from hamq.hardware.crossbar import crossbar_conv2d
    from hamq.hardware.energy import input_vectors
    from hamq.hardware.mapping import ConvGeometry, conv_geometry, map_weights

    gen = torch.Generator().manual_seed(groups * 7 + stride)
    conv = nn.Conv2d(8, 8, 3, stride=stride, padding=1, dilation=dilation, groups=groups)
    codes_w = torch.randint(-127, 128, conv.weight.shape, generator=gen)
    preset = {1: "rram-1b", 2: "rram-2b-40nm", 4: "pcm-14nm"}[cb]
    sets = {"array.representation": rep, "array.rows": 512, "input.bits_per_cycle": k_cycle}
    hw = load_hardware(preset, **sets)
    m = map_weights("c", codes_w, conv_geometry(conv), groups, 8, hw)
    assert m.row_tiles == 1
    levels = m.levels.to(torch.float32)
    if noisy:
        levels = levels + 0.3 * torch.randn(levels.shape, generator=gen)
    sched = input_schedule(8, signed, k_cycle)
    lo = -127 if signed else 0
    x = torch.randint(lo, 128 if signed else 256, (3, 8, 7, 6), generator=gen)
    place, offset = place_values(8, rep, cb), word_offset(8, rep)  # type: ignore[arg-type]
    geo = ConvGeometry((3, 3), (stride, stride), (1, 1), (dilation, dilation))
    for adc in (None, AdcTransfer(6, 3.0), AdcTransfer(4)):
        direct = crossbar_conv2d(x, levels, sched, place, offset, geo, groups, adc)
        y = crossbar_mvm(input_vectors(x, m), levels, sched, place, offset, 512, adc,
                         noisy=noisy)  # fmt: skip
        g, _, n = y.shape
        b = x.shape[0]
        unfolded = y.reshape(g, b, -1, n).permute(1, 0, 3, 2).reshape(b, g * n, *direct.shape[2:])
        tol = 1e-3 * float(unfolded.abs().max()) if noisy else 0.0
        assert torch.allclose(direct, unfolded, rtol=0, atol=tol), adc
