"""Row-granular LFSR masks and the index-free layout: the masks, the compacted mapping, its
energy against independent references (a dense layer of only the kept rows, and the dense
layout minus the pruned rows' level-0 reads), the crossbar simulation, the report, and the
config and stored-mask checks."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.estimate import estimate_energy, static_energy
from hamq.hardware.mapping import map_weights
from hamq.hardware.simulate import crossbar_layers, simulating
from hamq.hardware.spec import ArraySpec, HardwareSpec, TechSpec, load_hardware
from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import quantize_model, quantized_layers
from hamq.sparsity.config import SparsityConfig
from hamq.sparsity.layers import LayerMask, attach_masks, fix_masks, resolve_masks
from hamq.sparsity.masks import (
    kept_count,
    kept_total,
    lfsr_clocks,
    lfsr_kept_indices,
    lfsr_kept_rows,
    lfsr_mask,
    row_layout,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _hw(**array: object) -> HardwareSpec:
    return HardwareSpec(
        array=ArraySpec(rows=16, cols=32, **array),  # type: ignore[arg-type]
        tech=TechSpec(
            e_cell_pj=(0.05, 0.4, 0.8, 1.5), e_adc_pj=0.2, e_adc_ref_bits=4, e_lfsr_step_pj=0.01
        ),
    )


HW2 = _hw(cell_bits=2, representation="twos_complement")


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 6, 3, padding=1),
            relu=nn.ReLU(),
            flat=nn.Flatten(),
            fc=nn.Linear(6 * 5 * 5, 7),
        )
    )
    quantize_model(model, QuantConfig(w_bits=8, a_bits=6))
    return model


def _pruned(model: nn.Module, sparsity: float, granularity: str = "row") -> nn.Module:
    out = copy.deepcopy(model)
    cfg = SparsityConfig(sparsity=sparsity, granularity=granularity, seed=5)
    attach_masks(out, resolve_masks(out, cfg))
    fix_masks(out)
    return out


X = torch.randn(12, 3, 5, 5, generator=torch.Generator().manual_seed(3))


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("shape", [(6, 3, 3, 3), (7, 150), (4, 600), (3, 1)])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.7, 0.9])
def test_row_mask_keeps_the_same_rows_in_every_column(shape, sparsity) -> None:
    mask = lfsr_mask(shape, sparsity, (9, 4), 5, granularity="row")
    flat = mask.reshape(shape[0], -1)
    k = flat.shape[1]
    assert (flat == flat[0]).all()
    assert int(flat[0].sum()) == kept_count(k, sparsity) == k - math.floor(sparsity * k + 1e-9)
    assert int(mask.sum()) == kept_total(shape, sparsity, "row")
    rows = lfsr_kept_rows(shape, sparsity, (9, 4), 5)
    # the rule on one column of K rows, in LFSR order, distinct
    assert rows.tolist() == lfsr_kept_indices((1, k), sparsity, (9, 4), 5).tolist()
    assert len(set(rows.tolist())) == rows.numel()
    assert sorted(rows.tolist()) == flat[0].nonzero().flatten().tolist()


def test_row_masks_reach_every_row_over_seeds() -> None:
    seen: set[int] = set()
    for seed in range(1, 60):
        seen |= set(lfsr_kept_rows((2, 40), 0.9, (9, 4), seed).tolist())
    assert seen == set(range(40))


def test_walk_clocks_count_rejected_states() -> None:
    """Clocks = states examined: by hand, the register's offsets from the seed until the
    last kept row of each block is accepted."""
    from hamq.sparsity.lfsr import lfsr_cycle

    poly, seed, k = (4, 1), 3, 10  # period 15: offsets 0..14, rows >= 10 rejected
    cycle = [x - 1 for x in lfsr_cycle(poly, seed, "fibonacci")]
    for sparsity in (0.0, 0.5, 0.8):
        keep = kept_count(k, sparsity)
        accepted = [i for i, off in enumerate(cycle) if off < k][:keep]
        assert lfsr_clocks((3, k), sparsity, poly, seed, granularity="row") == accepted[-1] + 1
        lay = row_layout((3, k), sparsity, poly, seed)
        assert lay.clocks == accepted[-1] + 1
        assert lay.rows.tolist() == [cycle[i] for i in accepted]


def test_layer_mask_round_trip_and_old_descriptions() -> None:
    m = LayerMask("fc", (7, 150), 0.5, (9, 4), 1, "fibonacci", 7 * 75, "row")
    d = m.to_dict()
    assert d["granularity"] == "row" and LayerMask.from_dict(d, "here") == m
    w = LayerMask("fc", (7, 150), 0.5, (9, 4), 1, "fibonacci", 525)
    assert "granularity" not in w.to_dict()  # as written before row masks existed
    assert LayerMask.from_dict(w.to_dict(), "here") == w
    with pytest.raises(HamqError, match="exactly the keys"):
        LayerMask.from_dict({**w.to_dict(), "indices": [1, 2]}, "here")


def test_granularity_is_validated() -> None:
    with pytest.raises(ValidationError, match="granularity"):
        SparsityConfig(sparsity=0.5, granularity="column")
    with pytest.raises(ValidationError, match=r"sparsity\.granularity is set but every layer"):
        SparsityConfig(granularity="row")


# ---------------------------------------------------------------- mapping and energy


def test_mapping_stores_only_the_kept_rows_in_lfsr_order() -> None:
    model = _pruned(_model(), 0.6)
    model(X)
    layer = dict(quantized_layers(model))["conv"]
    codes = layer.weight_int().to(torch.int8)
    m = map_weights("conv", codes, None, 1, 8, HW2, layer.row_layout)
    rows = layer.row_layout.rows
    assert m.rows == rows.numel() == 27 - math.floor(0.6 * 27) and m.dense_rows == 27
    assert torch.equal(m.codes, codes.reshape(6, 27)[:, rows])
    assert m.row_tiles == math.ceil(m.rows / 16) and m.dense_row_tiles == 2
    dense = codes.clone()
    pruned_row = next(r for r in range(27) if r not in set(rows.tolist()))
    dense.reshape(6, 27)[0, pruned_row] = 3
    with pytest.raises(HamqError, match="rows outside its row mask hold non-zero weights"):
        map_weights("conv", dense, None, 1, 8, HW2, layer.row_layout)


def _linear_of_kept_rows(model: nn.Module, name: str) -> tuple[nn.Module, torch.Tensor]:
    """An independent reference: a dense Linear whose weights are the layer's kept rows in
    LFSR order, and the gather that feeds it."""
    layer = dict(quantized_layers(model))[name]
    rows = layer.row_layout.rows
    ref = nn.Sequential(OrderedDict(fc=nn.Linear(rows.numel(), layer.weight.shape[0])))
    quantize_model(ref, QuantConfig(w_bits=8, a_bits=6))
    with torch.no_grad():
        ref.fc.weight.copy_(layer.weight.detach()[:, rows])
        ref.fc.bias.copy_(layer.bias.detach())
    return ref, rows


@pytest.mark.parametrize("rep", ["twos_complement", "differential", "shifted"])
def test_index_free_energy_equals_a_dense_layer_of_the_kept_rows(rep) -> None:
    hw = _hw(cell_bits=2, representation=rep)
    torch.manual_seed(1)
    model = nn.Sequential(OrderedDict(fc=nn.Linear(40, 9)))
    quantize_model(model, QuantConfig(w_bits=8, a_bits=6))
    x = torch.rand(20, 40)
    model(x)
    pruned = _pruned(model, 0.7)
    ref, rows = _linear_of_kept_rows(pruned, "fc")
    # the same input scale, and per-channel weight scales from the same largest weights
    ref.fc.input_quant.load_state_dict(pruned.fc.input_quant.state_dict())
    assert torch.equal(ref.fc.weight_int(), pruned.fc.weight_int()[:, rows])
    got = estimate_energy(pruned, x, hw).layers[0]
    want = estimate_energy(ref, x[:, rows], hw).layers[0]
    for key in ("e_cb_j", "e_adc_j", "conversions", "cells_on", "tiles", "rows", "macs"):
        assert getattr(got, key) == pytest.approx(getattr(want, key), rel=1e-12), key
    # the LFSR: one regeneration per input vector, charged in E_periph
    assert got.lfsr_clocks == 20 / 20 * pruned.fc.row_layout.clocks
    assert got.e_periph_j - want.e_periph_j == pytest.approx(got.lfsr_clocks * 0.01e-12)
    assert got.dense_rows == 40 and got.csr_index_bits == rows.numel() * 6


def test_dense_layout_minus_pruned_rows_is_the_index_free_e_cb() -> None:
    """Two's complement stores weight 0 as all level-0 cells: the dense layout of the same
    pruned weights reads exactly the pruned rows' level-0 cells more, at their activity."""
    model = _model()
    model(X)
    pruned = _pruned(model, 0.5)
    dense_layout = copy.deepcopy(pruned)
    for _, layer in quantized_layers(dense_layout):
        layer.row_layout = None  # same weights, every row stored
    got = estimate_energy(pruned, X, HW2)
    dense = estimate_energy(dense_layout, X, HW2)
    probe_rows = {}
    for name, layer in quantized_layers(pruned):
        k = layer.weight[0].numel()
        gone = torch.ones(k, dtype=torch.bool)
        gone[layer.row_layout.rows] = False
        probe_rows[name] = gone
    # activity of each unroll row, from the inputs the model's layers see
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        layer.register_forward_pre_hook(
            lambda mod, args, n=name: seen.__setitem__(n, mod.input_quant.to_int(args[0]))
        )
        for name, layer in quantized_layers(pruned)
    ]
    with torch.no_grad():
        pruned.eval()(X)
    for h in hooks:
        h.remove()
    for g, d in zip(got.layers, dense.layers, strict=True):
        # bit-serial activity of an input code: the ON bits of its magnitude (a signed
        # input is applied as two passes of magnitude bits, one of them all zero)
        mag = seen[g.name].abs().to(torch.int64)
        bits = sum(((mag >> b) & 1) for b in range(6)).to(torch.float64)
        if bits.dim() == 4:
            act = F.unfold(bits, 3, padding=1).sum((0, 2))
        else:
            act = bits.sum(0)
        extra_pj = float(act[probe_rows[g.name]].sum()) * d.cols * 0.05  # all at level 0
        assert d.e_cb_j - g.e_cb_j == pytest.approx(extra_pj * 1e-12 / X.shape[0], rel=1e-9)
        assert g.tiles <= d.tiles and g.dense_tiles == d.tiles
        assert g.dense_cells == d.groups * d.rows * d.cols


def test_static_mode_and_skip_zero_use_the_stored_rows() -> None:
    model = _model()
    model(X)
    pruned = _pruned(model, 0.6)
    hw = _hw(cell_bits=2, representation="differential")
    hw_skip = hw.model_copy(update={"adc": hw.adc.model_copy(update={"skip_zero": True})})
    rows = {n: x.row_layout.rows.numel() for n, x in quantized_layers(pruned)}
    for report in (static_energy(pruned, hw, (3, 5, 5)), estimate_energy(pruned, X, hw_skip)):
        for r in report.layers:
            assert r.rows == rows[r.name] and r.dense_rows > r.rows
            assert r.e_cb_j > 0
    # skip_zero never converts more than every conversion of the stored rows
    full = estimate_energy(pruned, X, hw).layers
    skip = estimate_energy(pruned, X, hw_skip).layers
    for a, b in zip(full, skip, strict=True):
        assert b.conversions <= a.conversions


def test_weight_granular_masks_map_dense() -> None:
    model = _model()
    model(X)
    report = estimate_energy(_pruned(model, 0.6, "weight"), X, HW2)
    for r in report.layers:
        assert r.rows == r.dense_rows and r.csr_index_bits == 0 and r.lfsr_clocks == 0
    assert "index-free" not in report.format_table()


def test_report_shows_arrays_and_cells_against_dense_and_csr() -> None:
    model = _model()
    model(X)
    hw = load_hardware("rram-2b-40nm")
    report = estimate_energy(_pruned(model, 0.9), X, hw)
    text = report.format_table()
    assert "index-free layer" in text and "CSR-style layout" in text
    t = report.totals()
    assert t["cells"] < t["dense_cells"] and t["tiles"] <= t["dense_tiles"]
    assert t["e_lfsr_j"] > 0 and t["csr_index_bits"] > 0
    js = report.to_dict()
    assert js["layers"][0]["csr_index_bits"] == js["layers"][0]["rows"] * 5  # ceil(log2 27)


@pytest.mark.parametrize("rep", ["differential", "shifted"])
def test_crossbar_simulation_of_the_index_free_layout_is_exact_with_an_ideal_adc(rep) -> None:
    model = _model()
    model(X)
    pruned = _pruned(model, 0.5)
    with torch.no_grad():
        want = pruned.eval()(X)
    hw = _hw(cell_bits=2, representation=rep)
    sims = crossbar_layers(pruned, hw)
    assert [s.mapping.rows for s in sims] == [x.row_layout.rows.numel()
                                               for _, x in quantized_layers(pruned)]  # fmt: skip
    for s in sims:
        s._lossless = {}  # force the crossbar path, not the integer shortcut
        s.provably_lossless = lambda: False  # type: ignore[method-assign]
    with simulating(pruned, sims):
        got = pruned(X)
    assert torch.allclose(got, want, atol=1e-4)
