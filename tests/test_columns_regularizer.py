"""The ``columns`` regularizer: group norms over (row tile, physical column) cells, checked
against the mapping's own cell levels, and what descending it does to the columns."""

from __future__ import annotations

import pytest
import torch

from hamq.hardware.mapping import map_weights
from hamq.hardware.representation import cell_levels, integer_range
from hamq.hardware.spec import load_hardware
from hamq.regularizers import RegularizerConfig, build_regularizer
from hamq.regularizers.columns import slot_tables


@pytest.mark.parametrize("rep,cb", [("differential", 1), ("shifted", 2), ("twos_complement", 1)])
def test_slot_tables_are_the_cells_of_each_code(rep: str, cb: int) -> None:
    q = integer_range(8)
    want = (cell_levels(q, 8, rep, cb).reshape(q.numel(), -1) > 0).T  # type: ignore[arg-type]
    assert torch.equal(slot_tables(8, rep, cb).bool(), want)


def test_penalty_at_integers_is_the_group_norm_of_on_cells() -> None:
    """With the exact table (interp, smooth 0) at integer codes, the penalty is the mean
    over (block, tile, column) of sqrt(ON cells / rows in the tile), from the mapping."""
    hw = load_hardware("rram-1b", **{"array.rows": 4})
    reg = build_regularizer(
        RegularizerConfig(name="columns", **{"lambda": 1.0}, surrogate="interp", smooth=0), hw
    )
    assert reg is not None
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(-30, 31, (6, 5), generator=gen)
    codes[:, 4] = 0  # a short last tile (rows 4 of 5 -> tiles of 4 and 1)
    got = reg.layer_penalty(codes.double(), 8, 2, 127)  # type: ignore[attr-defined]
    m = map_weights("l", codes, None, 2, 8, hw)
    lv = m.levels  # (G, K, cols)
    norms = []
    for g in range(2):
        for start, size in ((0, 4), (4, 1)):
            on = (lv[g, start : start + size] > 0).double().sum(0)  # (cols,)
            norms += (torch.sqrt(on + 1e-8) / size**0.5).tolist()  # the penalty's eps
    assert float(got) == pytest.approx(sum(norms) / len(norms), rel=1e-6)


def _descend(name: str, lr: float) -> tuple[int, int, float]:
    """300 SGD steps on one regularizer alone from the same random 8-bit codes: (non-empty
    (tile, column) pairs before, after, mean move in integer units)."""
    hw = load_hardware("rram-1b", **{"array.rows": 8})
    reg = build_regularizer(RegularizerConfig(name=name, **{"lambda": 1.0}), hw)
    assert reg is not None
    t0 = (torch.randn(4, 16, generator=torch.Generator().manual_seed(1)) * 20).clamp(-126, 126)
    t = t0.clone().requires_grad_(True)
    opt = torch.optim.SGD([t], lr=lr)
    for _ in range(300):
        opt.zero_grad()
        cost = reg.layer_penalty(t, 8, 1, 127) if name == "columns" else reg.layer_cost(t, 8).mean()  # type: ignore[attr-defined]
        cost.backward()
        opt.step()
        with torch.no_grad():
            t.clamp_(-127, 127)
    cols = [map_weights("l", w.round().long(), None, 1, 8, hw).nonempty_tile_columns
            for w in (t0, t.detach())]  # fmt: skip
    return cols[0], cols[1], float((t.detach() - t0).abs().mean())


def test_descending_the_penalty_empties_whole_columns() -> None:
    """For about the same mean move of the weights (~0.9 integer units), the column penalty
    empties several times more (tile, column) pairs than HamQ's per-weight Hamming weight."""
    before, cols, moved = _descend("columns", lr=30.0)
    _, ham, ham_moved = _descend("hamming", lr=2.0)
    assert moved <= 1.2 * ham_moved
    assert cols <= 0.75 * before, (before, cols)
    assert before - cols >= 2 * (before - ham), (before, cols, ham)


def test_sin_surrogate_is_refused() -> None:
    with pytest.raises(ValueError, match="sin"):
        RegularizerConfig(name="columns", surrogate="sin")
