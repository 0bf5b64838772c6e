"""Clearing nearly empty cell columns (``hamq.sparsity.column_clear``): checked against the
mapping's own per-tile column sums, a brute-force nearest-code search, hand examples, and
on models (dense and row-pruned) whose codes, steps and energy it must change as stated."""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.estimate import estimate_energy
from hamq.hardware.mapping import map_weights
from hamq.hardware.representation import cell_levels, integer_range
from hamq.hardware.spec import ArraySpec, HardwareSpec, TechSpec
from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import quantize_model, quantized_layers
from hamq.sparsity.column_clear import clear_model_columns, clear_sparse_columns
from hamq.sparsity.config import SparsityConfig
from hamq.sparsity.layers import attach_masks, fix_masks, resolve_masks
from hamq.training.config import load_config
from hamq.training.runs import load_run
from hamq.training.trainer import hardware_of, train_run

pytestmark = pytest.mark.usefixtures("single_thread")


def _hw(rep: str = "differential", cell_bits: int = 2, rows: int = 8) -> HardwareSpec:
    return HardwareSpec(
        array=ArraySpec(rows=rows, cols=64, cell_bits=cell_bits, representation=rep,
                        skip_empty_columns=True),  # type: ignore[arg-type]
        tech=TechSpec(e_cell_pj=(0.079, 0.36, 0.73, 1.49) if cell_bits == 2 else (0.05, 1.0),
                      e_adc_pj=0.208, e_adc_ref_bits=4),
    )  # fmt: skip


def _on_counts(mat: torch.Tensor, tile_rows: int, rep: str, cell_bits: int) -> torch.Tensor:
    """ON cells per (group, row tile, physical column), from the cell levels directly."""
    g, k, _ = mat.shape
    lv = (cell_levels(mat, 8, rep, cell_bits) > 0).reshape(g, k, -1)  # type: ignore[arg-type]
    tiles = [lv[:, r : r + tile_rows].sum(1) for r in range(0, k, tile_rows)]
    return torch.stack(tiles, 1)  # (G, T, cols)


def _sparse_codes(seed: int, shape: tuple[int, int, int], rc: int = 112) -> torch.Tensor:
    """HamQ-like codes: mostly multiples of 16 with a few stragglers, one range weight per
    output column."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(-6, 7, shape, generator=gen) * 16
    stray = torch.rand(shape, generator=gen) < 0.04
    q = torch.where(stray, q + torch.randint(-5, 6, shape, generator=gen), q)
    q = q.clamp(-rc + 1, rc - 1)
    q[:, 0, :] = rc  # the range-setting weight of every output column
    return q


@pytest.mark.parametrize("rep,cb", [("differential", 2), ("differential", 1),
                                    ("twos_complement", 1), ("shifted", 2)])  # fmt: skip
@pytest.mark.parametrize("max_on", [1, 2, 3])
def test_columns_of_few_on_cells_empty_and_no_empty_column_fills(rep, cb, max_on) -> None:
    rows = 8
    mat = _sparse_codes(0, (2, 20, 5))
    new, counts = clear_sparse_columns(mat, rows, 8, rep, cb, max_on, 112)
    before = _on_counts(mat, rows, rep, cb)
    after = _on_counts(new, rows, rep, cb)
    held = torch.zeros_like(before, dtype=torch.bool)
    # a column holding a range-setting weight (|q| >= 112) may stay sparse
    lv = (cell_levels(mat, 8, rep, cb) > 0).reshape(2, 20, -1)  # type: ignore[arg-type]
    rng = (mat.abs() >= 112).repeat_interleave(lv.shape[-1] // 5, dim=2)
    for t, r in enumerate(range(0, 20, rows)):
        held[:, t] = (lv[:, r : r + rows] & rng[:, r : r + rows]).any(1)
    if rep != "shifted":  # (shifted stores 0 with its top bit ON: some cannot empty)
        assert not bool(((after > 0) & (after <= max_on) & ~held).any())
    assert not bool(((before == 0) & (after > 0)).any())  # no empty column fills
    assert bool((new.abs() <= 112).all())
    assert torch.equal(new.abs() >= 112, mat.abs() >= 112)  # no weight becomes a range weight
    assert torch.equal(new[mat.abs() >= 112], mat[mat.abs() >= 112])
    # the counts agree with the mapping's own per-tile column sums
    hw = _hw(rep, cb, rows)

    def sums(m: torch.Tensor) -> torch.Tensor:
        codes = m.transpose(1, 2).reshape(10, 20)  # (G, K, N) -> (C_out, K)
        return map_weights("l", codes, None, 2, 8, hw).tile_column_sums

    assert counts.nonempty_before == int((sums(mat) > 0).sum())
    assert counts.nonempty_after == int((sums(new) > 0).sum())
    assert counts.weights_changed == int((new != mat).sum())
    assert counts.abs_change == int((new - mat).abs().sum())
    if rep != "shifted":
        assert counts.columns_cleared > 0  # the stragglers' columns do empty


def test_a_weight_moves_to_the_nearest_code_that_fills_no_empty_column() -> None:
    """Differential 2-bit cells, one row tile, positive weights (one column set): 19 =
    0b1_00_11 holds slots 0 (3) and 2 (1). With slot 1's column empty the nearest code with
    slots 0 and 1 OFF is 16; with slot 1's column kept (two weights at 4) it is 20 =
    0b1_01_00. Slot 3's column holds only the range weight's cell, so it stays."""
    col = torch.tensor([[19], [32], [48], [112]])  # (K=4, N=1)
    new, c = clear_sparse_columns(col[None], 4, 8, "differential", 2, 1, 112)
    assert new[0, :, 0].tolist() == [16, 32, 48, 112]
    assert (c.nonempty_before, c.nonempty_after, c.weights_changed, c.abs_change) == (3, 2, 1, 3)
    # a move of 3 past a limit of 2 leaves the column
    new, c = clear_sparse_columns(col[None], 4, 8, "differential", 2, 1, 112, max_move=2)
    assert torch.equal(new[0], col) and c.columns_cleared == 0
    col = torch.tensor([[19], [4], [4], [112]])
    new, _ = clear_sparse_columns(col[None], 4, 8, "differential", 2, 1, 112)
    assert new[0, :, 0].tolist() == [20, 4, 4, 112]
    # with max_on 3 slot 1's column is cleared too, so 19 takes the code OFF in both
    new, c = clear_sparse_columns(col[None], 4, 8, "differential", 2, 3, 112)
    assert new[0, :, 0].tolist() == [16, 0, 0, 112]
    assert (c.weights_changed, c.abs_change) == (3, 11)
    # a weight ON in two columns of one cell goes to the code nearest it with both OFF:
    # 57 = 0b11_10_01 -> 64 (not 56 then 48, clearing one column after the other)
    col = torch.tensor([[57], [112]])
    new, _ = clear_sparse_columns(col[None], 2, 8, "differential", 2, 1, 112)
    assert new[0, :, 0].tolist() == [64, 112]
    # a column whose only ON cell is a range-setting weight's is left
    col = torch.tensor([[0], [0], [0], [127]])
    new, c = clear_sparse_columns(col[None], 4, 8, "differential", 2, 1, 127)
    assert torch.equal(new[0], col) and c.columns_cleared == 0


def test_each_moved_weight_takes_the_brute_force_nearest_allowed_code() -> None:
    """max_on 1 on tiles of one straggler and the range weight: every move is checked
    against a search over every code for the nearest one (ties to the smaller |q|) that is
    OFF in all the straggler's columns of one ON cell and in each column empty before."""
    rep, cb = "differential", 2
    q_all = integer_range(8)
    on_all = (cell_levels(q_all, 8, rep, cb) > 0).reshape(q_all.numel(), -1)
    gen = torch.Generator().manual_seed(4)
    for _ in range(40):
        q = int(torch.randint(-111, 112, (1,), generator=gen))
        col = torch.tensor([[q], [112]])  # one straggler beside the range weight
        new, _ = clear_sparse_columns(col[None], 2, 8, rep, cb, 1, 112)
        mine = on_all[q + 127]
        rng = on_all[112 + 127]
        single = mine & ~rng  # this weight's columns of one ON cell: all cleared
        empty = ~mine & ~rng
        want = q
        if bool(single.any()):
            ok = [v for v in q_all.tolist() if abs(v) < 112
                  and not bool((on_all[v + 127] & (single | empty)).any())]  # fmt: skip
            want = min(ok, key=lambda v: (abs(v - q), abs(v)))
        assert int(new[0, 0, 0]) == want, q


X = torch.randn(16, 4, 5, 5, generator=torch.Generator().manual_seed(3))


def _model(seed: int = 0, rc: int = 112) -> nn.Module:
    """A quantized conv + linear model with HamQ-like codes: multiples of 16 in -96 .. 96,
    5% of them 3 above (stragglers), one weight per channel at the range code."""
    torch.manual_seed(seed)
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(4, 6, 3, padding=1), relu=nn.ReLU(),
                                      flat=nn.Flatten(), fc=nn.Linear(6 * 5 * 5, 7)))  # fmt: skip
    quantize_model(model, QuantConfig(w_bits=8, a_bits=6, range_code=rc))
    with torch.no_grad():
        for _, layer in quantized_layers(model):
            w = layer.weight
            codes = torch.randint(-6, 7, w.shape) * 16 + (torch.rand(w.shape) < 0.05) * 3
            codes.reshape(w.shape[0], -1)[:, 0] = rc
            step = 0.01 * (1 + torch.rand(w.shape[0])).reshape((-1,) + (1,) * (w.dim() - 1))
            w.copy_(codes * step)
    model(X)  # calibrate the input quantizers
    return model


@pytest.mark.parametrize("sparsity", [0.0, 0.5])
def test_model_clearing_sets_the_codes_keeps_the_steps_and_lowers_the_energy(sparsity) -> None:
    hw = _hw(rows=16)
    model = _model()
    if sparsity:
        cfg = SparsityConfig(sparsity=sparsity, granularity="row", seed=5)
        attach_masks(model, resolve_masks(model, cfg))
        fix_masks(model)
    before = copy.deepcopy(model)
    layers0 = dict(quantized_layers(before))
    counts = clear_model_columns(model, hw, 2)
    e0 = estimate_energy(before, X, hw).to_dict()["totals"]
    e1 = estimate_energy(model, X, hw).to_dict()["totals"]
    for name, layer in quantized_layers(model):
        old = layers0[name]
        assert torch.equal(layer.weight_scale(), old.weight_scale())
        m_old = map_weights(name, old.weight_int(), None, 1, 8, hw, old.row_layout)
        want, c = clear_sparse_columns(m_old.matrices, 16, 8, "differential", 2, 2, 112)
        m_new = map_weights(name, layer.weight_int(), None, 1, 8, hw, layer.row_layout)
        assert torch.equal(m_new.matrices, want) and c == counts[name]
        # weights whose codes did not change keep their exact values
        same = layer.weight_int() == old.weight_int()
        assert torch.equal(layer.weight[same], old.weight[same])
    assert sum(c.columns_cleared for c in counts.values()) > 0
    assert e1["conversions"] < e0["conversions"] and e1["e_cb_j"] < e0["e_cb_j"]
    assert e1["tiles"] <= e0["tiles"]
    # clearing a cleared model again finds nothing below the threshold to clear
    again = clear_model_columns(model, hw, 2)
    assert sum(c.weights_changed for c in again.values()) == 0


def test_bad_arguments_are_refused() -> None:
    mat = torch.zeros(1, 4, 2, dtype=torch.int64)
    with pytest.raises(ValueError, match="max_on = -1"):
        clear_sparse_columns(mat, 4, 8, "differential", 2, -1, 112)
    with pytest.raises(ValueError, match="max_move = 0"):
        clear_sparse_columns(mat, 4, 8, "differential", 2, 1, 112, max_move=0)
    with pytest.raises(ValueError, match="range_code = 200"):
        clear_sparse_columns(mat, 4, 8, "differential", 2, 1, 200)


def test_a_run_with_clear_columns_stores_cleared_weights_and_says_what_changed(
    tmp_path: Path,
) -> None:
    """A tiny row-pruned run on the embedded data: the saved weights have no column of a
    row tile with 1 or 2 ON cells (counted from the mapping's cell levels, the run's own
    hardware and index-free layout) but those of range-setting weights, and the record
    states the counts and the validation accuracy before and after."""
    cfg = load_config(None, ["train.float_epochs=1", "train.qat_epochs=2",
                             "sparsity.sparsity=0.5", "sparsity.granularity=row",
                             "sparsity.from_float=true", "sparsity.clear_columns=2",
                             "sparsity.clear_max_move=255", "quant.range_code=112"])  # fmt: skip
    out = tmp_path / "run"
    record = train_run(cfg, out, progress=False)
    assert record is not None
    cleared = record["cleared_columns"]
    assert cleared["max_on_cells"] == 2 and cleared["max_move"] == 255
    assert cleared["columns_cleared"] > 0
    assert cleared["columns_cleared"] == cleared["nonempty_before"] - cleared["nonempty_after"]
    assert cleared["val_accuracy_before"] == record["history"][
        record["evaluation"]["selected_epoch"]]["val_accuracy"]  # fmt: skip
    assert record["evaluation"]["val_accuracy"] == cleared["val_accuracy_after"]
    run = load_run(out)
    hw = hardware_of(cfg)
    nonempty = 0
    for name, layer in quantized_layers(run.model):
        m = map_weights(name, layer.weight_int(), None, 1, 8, hw, layer.row_layout)
        on = m.levels > 0  # (1, K', cols)
        rng = (m.matrices.abs() >= 112).repeat_interleave(m.cells_per_weight, dim=2)
        for r in range(0, m.rows, hw.array.rows):
            count = on[:, r : r + hw.array.rows].sum(1)
            held = (on & rng)[:, r : r + hw.array.rows].any(1)
            assert not bool(((count > 0) & (count <= 2) & ~held).any()), name
            nonempty += int((count > 0).sum())
        assert cleared["layers"][name]["nonempty_after"] == int(
            (m.tile_column_sums > 0).sum())  # fmt: skip
    assert nonempty == cleared["nonempty_after"]
    # a finished run is reused as it is; a bad value names the field
    assert train_run(cfg, out, resume=True, progress=False) == record
    with pytest.raises(HamqError, match="clear_columns"):
        load_config(None, ["sparsity.clear_columns=-1"])
    with pytest.raises(HamqError, match="clear_max_move = 5 with clear_columns = 0"):
        load_config(None, ["sparsity.clear_max_move=5"])
