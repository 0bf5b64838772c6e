"""Cells of several devices (``array.devices_per_cell``): each device draws its own noise,
the cell reads their mean, and a cell read costs that many devices' energy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hamq.errors import HamqError
from hamq.hardware.noise import (
    conductances_at,
    pcm_at,
    pcm_drift_exponents,
    pcm_program,
    program,
    read_weights,
)
from hamq.hardware.spec import load_hardware
from quant_layers import calibrated_conv

PCM = load_hardware("pcm-14nm").device
assert PCM is not None
N = 40_000
DAY_S = 86_400.0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_one_device_per_cell_draws_what_one_draw_per_cell_did() -> None:
    """The device dimension does not reorder the draws: 1 device per cell is the model
    written out directly (the programming noise law, then the drift exponents)."""
    levels = torch.randint(0, 16, (50, 7), generator=gen(0))
    cells = program(levels, PCM, gen(1))
    assert cells.g_prog_us.shape == (50, 7, 1) and cells.nu is not None
    g_t = torch.tensor(PCM.g_levels_us, dtype=torch.float64)[levels]
    g = gen(1)
    g_prog = pcm_program(g_t, PCM.g_top_us, g)
    nu = pcm_drift_exponents(g_t, PCM.g_top_us, g)
    assert torch.equal(cells.programmed_us(), g_prog) and torch.equal(cells.nu[..., 0], nu)
    read = conductances_at(cells, DAY_S, PCM, gen(9))
    assert torch.equal(read, pcm_at(g_prog, nu, DAY_S, PCM, gen(9)))


def test_stuck_rram_devices_move_their_cell_by_a_share() -> None:
    """RRAM stuck rates are shares of devices: a cell of 4 devices with k stuck ON reads
    k/4 of the way from level 0 to the top, k binomial(4, rate)."""
    from hamq.hardware.spec import DeviceSpec

    dev = DeviceSpec(model="rram", g_levels_us=(1.0, 100.0), stuck_on_rate=0.1)
    cells = program(torch.zeros(N, dtype=torch.int64), dev, gen(8), devices_per_cell=4)
    g = conductances_at(cells, DAY_S, dev, gen(9))
    k = ((g - 1.0) / 99.0 * 4).round()
    assert torch.allclose(g, 1.0 + 99.0 * k / 4)
    for stuck, p in [(0, 0.9**4), (1, 4 * 0.1 * 0.9**3), (2, 6 * 0.01 * 0.81)]:
        assert float((k == stuck).double().mean()) == pytest.approx(p, abs=0.01)


@pytest.mark.parametrize("level", [3, 9, 15])
def test_the_cell_reads_the_mean_of_independent_devices(level: int) -> None:
    """n devices at one level: the cell's programmed and drifted conductance keep the
    one-device mean, and their spread falls as 1/sqrt(n) (the devices are independent)."""
    levels = torch.full((N,), level, dtype=torch.int64)
    one, four = program(levels, PCM, gen(2)), program(levels, PCM, gen(2), devices_per_cell=4)
    assert four.g_prog_us.shape == (N, 4)
    for t_s in (None, DAY_S):
        if t_s is None:
            g1, g4 = one.programmed_us(), four.programmed_us()
        else:
            g1, g4 = (conductances_at(c, t_s, PCM, gen(3)) for c in (one, four))
        assert g4.shape == (N,)
        assert float(g4.mean()) == pytest.approx(float(g1.mean()), abs=4 * float(g1.std()) / N**0.5)
        assert float(g1.std() / g4.std()) == pytest.approx(2.0, rel=0.03)
    # the four devices of a cell are distinct draws, not one draw repeated
    assert bool((four.g_prog_us[:, 0] != four.g_prog_us[:, 1]).all())


def test_noise_aware_reads_shrink_with_more_devices() -> None:
    """``read_weights`` (what noise-aware training injects): the weight error of 16 devices
    per cell is about a quarter of one device's."""
    codes = torch.randint(-127, 128, (64, 64), generator=gen(4))
    err = {
        n: read_weights(codes, 8, "differential", 4, PCM, DAY_S, gen(5), devices_per_cell=n) - codes
        for n in (1, 16)
    }
    ratio = float(err[1].std() / err[16].std())
    assert 3.5 < ratio < 4.5


def test_the_simulated_layer_is_less_noisy_with_more_devices() -> None:
    from hamq.hardware.simulate import LayerSim

    conv, codes = calibrated_conv(16, 8, batch=4, side=7)
    exact = F.conv2d(codes.double(), conv.weight_int().double(), None, 1, 1)
    rms = {}
    for n in (1, 9):
        hw = load_hardware("pcm-14nm", **{"array.devices_per_cell": n})
        assert hw.device is not None
        sim = LayerSim("conv", conv, hw)
        sim.program(hw.device, gen(6))
        sim.read_at(DAY_S, hw.device, gen(7))
        rms[n] = float((sim.accumulate(codes) - exact).pow(2).mean().sqrt())
    assert 2.3 < rms[1] / rms[9] < 3.7  # about sqrt(9) = 3


@pytest.mark.parametrize("skip_empty", [False, True])
def test_a_cell_read_costs_every_devices_energy(skip_empty: bool) -> None:
    """E_cb is n times one device's; conversions, ADC energy and the layout do not change."""
    from hamq.hardware.estimate import estimate_energy
    from hamq.quantization import QuantConfig, quantize_model

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 4))  # fmt: skip
    quantize_model(m, QuantConfig(w_bits=8, a_bits=8))
    m.train()
    m(torch.randn(8, 3, 6, 6))
    m.eval()
    x = torch.randn(6, 3, 6, 6)
    one_report = estimate_energy(
        m, x, load_hardware("rram-2b-40nm", **{"array.skip_empty_columns": skip_empty})
    )
    three_hw = load_hardware(
        "rram-2b-40nm",
        **{"array.devices_per_cell": 3, "array.skip_empty_columns": skip_empty},
    )
    assert three_hw.e_cell_read_pj == pytest.approx([3 * e for e in three_hw.tech.e_cell_pj])
    three_report = estimate_energy(m, x, three_hw)
    one, three = one_report.totals(), three_report.totals()
    assert one["e_cb_j"] > 0
    assert three["e_cb_j"] == pytest.approx(3 * one["e_cb_j"], rel=1e-12)
    for key in ("e_adc_j", "conversions", "cycles", "tiles", "cells"):
        assert three[key] == one[key], key
    assert [r.cells_on for r in three_report.layers] == [r.cells_on for r in one_report.layers]


@pytest.mark.parametrize("bad", [0, -2, 65])
def test_a_device_count_outside_1_to_64_is_refused(bad: int) -> None:
    with pytest.raises(HamqError, match="devices_per_cell"):
        load_hardware("pcm-14nm", **{"array.devices_per_cell": bad})


def test_a_run_config_sets_the_devices_of_its_hardware() -> None:
    """``hardware.devices_per_cell`` in a run config reaches the run's hardware (what
    noise-aware training draws and the energy regularizer prices); 0 is refused."""
    from hamq.training.config import load_config
    from hamq.training.trainer import hardware_of

    cfg = load_config(None, ["hardware.preset=pcm-14nm", "hardware.devices_per_cell=4"])
    assert hardware_of(cfg).array.devices_per_cell == 4
    assert hardware_of(load_config(None, ["hardware.preset=pcm-14nm"])).array.devices_per_cell == 1
    with pytest.raises(HamqError, match=r"hardware\.devices_per_cell"):
        load_config(None, ["hardware.devices_per_cell=0"])


def test_one_device_per_cell_keeps_the_digests_results_are_filed_under() -> None:
    """Cached crossbar, noise and energy results are keyed by the hardware's digest; the
    new field left at 1 keeps the digests RESULTS.md's commands name, and 4 changes it."""
    from hamq.training.crossbar_eval import hardware_digest

    spread = {"array.slice_levels": "spread"}
    assert hardware_digest(load_hardware("pcm-14nm", **spread)) == "68e490124cf1"
    column = {**spread, "device.compensation_scope": "column"}
    assert hardware_digest(load_hardware("pcm-14nm", **column)) == "7f6421921841"
    four = load_hardware("pcm-14nm", **column, **{"array.devices_per_cell": 4})
    assert hardware_digest(four) not in {"68e490124cf1", "7f6421921841"}
