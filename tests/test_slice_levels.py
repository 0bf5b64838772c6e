"""``array.slice_levels: spread``: a slice narrower than its cell spread over the cell's whole
range. Checked against hand-computed stretches, energies and conductances, against the
ladder mapping where nothing is narrow, and for exact integer read-out without noise."""

from __future__ import annotations

import math

import pytest
import torch

from hamq.hardware.mapping import cell_energy_table, map_weights
from hamq.hardware.noise import (
    pcm_drift_exponents,
    pcm_program,
    program,
    read_weights,
    target_conductances,
)
from hamq.hardware.representation import cell_levels, slice_bits, spread_factors
from hamq.hardware.spec import DeviceSpec, load_hardware
from quant_layers import calibrated_conv

LINEAR_E = tuple(0.01 * i + 0.001 for i in range(16))  # linear in the level, as PCM's V^2 G t


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("bits", "rep", "cell_bits", "want"),
    [
        (8, "differential", 4, [1, 15 / 7, 1, 15 / 7]),  # 7-bit magnitude: slices 4 + 3
        (8, "twos_complement", 4, [1, 1]),  # 8 bits fill two cells
        (8, "differential", 2, [1, 1, 1, 3, 1, 1, 1, 3]),  # slices 2 2 2 1
        (6, "shifted", 4, [1, 5]),  # slices 4 + 2: 15 / 3
        (8, "differential", 1, [1.0] * 14),
    ],
)
def test_spread_factors(bits, rep, cell_bits, want) -> None:
    assert spread_factors(bits, rep, cell_bits, True).tolist() == pytest.approx(want)
    assert spread_factors(bits, rep, cell_bits, False).tolist() == [1.0] * len(want)
    assert sum(slice_bits(bits, rep, cell_bits)) == (bits - 1 if rep == "differential" else bits)


def test_energy_of_a_spread_top_slice_by_hand() -> None:
    """+127 differential in 4-bit cells: positive word 127 = slices (15, 7), negative word
    0. Ladder: e[15] + e[7] + 2 e[0]. Spread: the 3-bit slice's 7 is read at level 15."""
    e = LINEAR_E
    ladder = cell_energy_table(8, "differential", 4, e)
    spread = cell_energy_table(8, "differential", 4, e, spread=True)
    i = 127 + 127  # index of q = +127
    assert float(ladder[i]) == pytest.approx(e[15] + e[7] + 2 * e[0])
    assert float(spread[i]) == pytest.approx(2 * e[15] + 2 * e[0])
    # q = 16: slices (0, 1); the top slice's 1 is level 15/7, between e[2] and e[3]
    j = 127 + 16
    frac = 15 / 7
    between = e[2] + (frac - 2) * (e[3] - e[2])
    assert float(spread[j]) == pytest.approx(e[0] + between + 2 * e[0])
    # two's complement fills both cells: nothing to spread
    assert torch.equal(cell_energy_table(8, "twos_complement", 4, e, spread=True),
                       cell_energy_table(8, "twos_complement", 4, e))  # fmt: skip


def test_row_energies_of_two_bit_cells_take_the_spread_table() -> None:
    """2-bit cells (slices 2 2 2 1): the 1-bit top slice's ON cell reads at level 3."""
    hw = load_hardware("rram-2b-40nm", **{"array.slice_levels": "spread"})
    codes = torch.randint(-127, 128, (6, 20), generator=gen(1))
    m = map_weights("fc", codes, None, 1, 8, hw)
    e = torch.tensor(hw.tech.e_cell_pj, dtype=torch.float64)
    levels = cell_levels(codes.T.to(torch.int64), 8, "differential", 2)  # (K, N, sets, slices)
    stretched = levels.to(torch.float64) * torch.tensor([1.0, 1.0, 1.0, 3.0])
    want = e[stretched.long()].sum((1, 2, 3))  # stretched levels are whole here
    assert torch.allclose(m.row_energy_pj(hw.tech.e_cell_pj)[0], want)
    ladder = map_weights("fc", codes, None, 1, 8, load_hardware("rram-2b-40nm"))
    e_cell = hw.tech.e_cell_pj
    assert bool((m.row_energy_pj(e_cell) >= ladder.row_energy_pj(e_cell)).all())


def test_spread_targets_and_noise_draws() -> None:
    """A 3-bit slice's code 7 targets the top conductance; programming draws the same noise
    as an unstretched cell at that target."""
    dev = DeviceSpec(model="pcm", g_levels_us=tuple(25 * i / 15 for i in range(16)))
    levels = torch.tensor([[0, 7], [3, 7], [15, 2]])
    stretch = torch.tensor([1.0, 15 / 7])
    g = target_conductances(levels, dev, stretch)
    assert g[0, 1] == pytest.approx(25.0) and g[2, 1] == pytest.approx(2 * 25 / 7)
    a = program(levels, dev, gen(5), stretch)
    b = pcm_program(g, dev.g_top_us, gen(5))  # the noise law at the stretched targets
    assert torch.equal(a.programmed_us(), b)
    nu = pcm_drift_exponents(g, dev.g_top_us, torch.Generator().manual_seed(5), 1.0)
    assert a.nu is not None and a.nu.shape == (*nu.shape, 1)


def test_noiseless_spread_reads_the_integers_and_noise_shrinks() -> None:
    quiet = DeviceSpec(model="pcm", g_levels_us=tuple(25 * i / 15 for i in range(16)),
                       prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0)  # fmt: skip
    codes = torch.randint(-127, 128, (64, 50), generator=gen(2))
    w = read_weights(codes, 8, "differential", 4, quiet, 86400.0, gen(), spread=True)
    assert torch.allclose(w, codes.to(torch.float64), atol=1e-9)
    noisy = DeviceSpec(model="pcm", g_levels_us=quiet.g_levels_us)
    big = torch.full((4000,), 100)  # top slice 6 of 7 levels: where spreading matters
    err = {
        s: float((read_weights(big, 8, "differential", 4, noisy, 86400.0, gen(3), spread=s)
                  - 100).std())
        for s in (False, True)
    }  # fmt: skip
    # the same conductance noise against a step 15/7 wider in the top slice (place 16)
    assert err[True] < 0.75 * err[False]
    assert math.isfinite(err[True])


def test_simulated_layer_with_spread_slices_is_exact_without_noise() -> None:
    from hamq.hardware.simulate import LayerSim

    conv, codes = calibrated_conv(4, 5, batch=3, side=6)
    quiet = {f"device.{k}_scale": 0.0 for k in ("prog_noise", "read_noise", "drift")}
    hw = load_hardware("pcm-14nm", **{"array.slice_levels": "spread"}, **quiet)
    sim = LayerSim("conv", conv, hw)
    assert sim.mapping.stretched
    exact = torch.nn.functional.conv2d(codes.double(), conv.weight_int().double(), None, 1, 1)
    sim.program(hw.device, gen(1))
    sim.read_at(3600.0, hw.device, gen(2))
    assert torch.equal(sim.accumulate(codes).round(), exact)  # float32 levels: exact once rounded
