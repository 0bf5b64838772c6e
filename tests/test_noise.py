"""Device non-idealities (``hardware/noise.py``) against the formulas they state, written
out again here, and their path into the crossbar simulation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hamq.errors import HamqError
from hamq.hardware.noise import (
    conductances_at,
    level_units,
    parse_time,
    parse_times,
    pcm_at,
    pcm_drift_exponents,
    pcm_program,
    program,
    read_weights,
    time_label,
)
from hamq.hardware.spec import DeviceSpec, load_hardware

PCM = load_hardware("pcm-14nm").device
assert PCM is not None
N = 200_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("g_t", [0.0, 5.0, 12.5, 25.0])
def test_pcm_programming_noise_has_the_polynomial_sd(g_t: float) -> None:
    g = torch.full((N,), g_t, dtype=torch.float64)
    out = pcm_program(g, 25.0, gen())
    x = g_t / 25.0
    sigma = 0.26348 + 1.9650 * x - 1.1731 * x * x
    if g_t == 0.0:  # clamped at 0: a half-normal, mean sigma * sqrt(2 / pi) / 2
        assert float(out.mean()) == pytest.approx(sigma * math.sqrt(2 / math.pi) / 2, rel=0.02)
        assert float((out == 0).double().mean()) == pytest.approx(0.5, abs=0.01)
    else:
        assert float((out - g_t).std()) == pytest.approx(sigma, rel=0.02)
        assert float(out.mean()) == pytest.approx(g_t, abs=0.02)


def test_pcm_programming_noise_scales_with_g_max() -> None:
    g = torch.full((N,), 10.0, dtype=torch.float64)
    sd = float((pcm_program(g, 50.0, gen()) - 10.0).std())
    x = 0.2
    assert sd == pytest.approx((0.26348 + 1.9650 * x - 1.1731 * x * x) * 2.0, rel=0.02)


@pytest.mark.parametrize("g_t", [25.0, 2.5, 0.1])
def test_drift_exponents_follow_the_fit(g_t: float) -> None:
    nu = pcm_drift_exponents(torch.full((N,), g_t, dtype=torch.float64), 25.0, gen())
    lg = math.log(g_t / 25.0)
    mu = min(max(-0.0155 * lg + 0.0244, 0.049), 0.1)
    sd = min(max(-0.0125 * lg - 0.0059, 0.008), 0.045)
    ref = (mu + sd * torch.randn(N, generator=gen(1), dtype=torch.float64)).abs()
    assert float(nu.mean()) == pytest.approx(float(ref.mean()), rel=0.01)
    assert float(nu.std()) == pytest.approx(float(ref.std()), rel=0.03)
    assert bool((nu >= 0).all())


def test_drift_and_read_noise_at_time() -> None:
    """Without read noise, g(t) = g_prog (1 + t/t0)^-nu exactly; the read noise's
    relative sd is q * sqrt(ln((t + t0 + t_r) / (2 t_r)))."""
    g_prog = torch.full((N,), 20.0, dtype=torch.float64)
    nu = torch.full((N,), 0.06, dtype=torch.float64)
    quiet = PCM.model_copy(update={"read_noise_scale": 0.0})
    t = 86400.0
    out = pcm_at(g_prog, nu, t, quiet, gen())
    assert torch.allclose(out, torch.full_like(out, 20.0 * ((t + 20.0) / 20.0) ** -0.06))
    noisy = pcm_at(g_prog, nu, t, PCM, gen())
    q = min(0.0088 / max((20.0 / 25.0) ** 0.65, 1e-3), 0.2)
    rel = q * math.sqrt(math.log((t + 20.0 + 250e-9) / (2 * 250e-9)))
    drifted = 20.0 * ((t + 20.0) / 20.0) ** -0.06
    assert float(noisy.std()) == pytest.approx(drifted * rel, rel=0.02)
    assert bool((pcm_at(g_prog, nu, 0.0, quiet, gen()) == g_prog).all())  # t = 0: no drift


def test_rram_lognormal_and_stuck_cells() -> None:
    dev = DeviceSpec(model="rram", g_levels_us=(1.0, 100.0), sigma_lognormal=0.2,
                     stuck_on_rate=0.05, stuck_off_rate=0.1)  # fmt: skip
    levels = torch.ones(N, dtype=torch.int64)
    cells = program(levels, dev, gen())
    assert cells.nu is None
    g = cells.programmed_us()
    off = float((g == 1.0).double().mean())
    assert off == pytest.approx(0.1, abs=0.005)
    free = g[(g != 1.0) & (g != 100.0)]
    assert float(free.log().std()) == pytest.approx(0.2, rel=0.02)
    assert float(free.log().median()) == pytest.approx(math.log(100.0), abs=0.005)
    zeros = program(torch.zeros(N, dtype=torch.int64), dev, gen()).programmed_us()
    assert float((zeros == 100.0).double().mean()) == pytest.approx(0.05, abs=0.005)
    # no drift: every time reads the programmed conductances
    assert torch.equal(conductances_at(cells, 3.0e7, dev, gen()), g)


def test_noiseless_device_reads_the_integer_weights() -> None:
    quiet = DeviceSpec(model="pcm", g_levels_us=tuple(float(v) for v in range(16)),
                       prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0)  # fmt: skip
    codes = torch.randint(-127, 128, (32, 40))
    for rep, cb in (("differential", 4), ("shifted", 4), ("differential", 2)):
        w = read_weights(codes, 8, rep, cb, quiet, 3600.0, gen())  # type: ignore[arg-type]
        assert torch.allclose(w, codes.to(torch.float64), atol=1e-9), rep
    rram = DeviceSpec(model="rram", g_levels_us=(2.0, 102.0))
    w = read_weights(codes, 8, "twos_complement", 1, rram, 0.0, gen())
    assert torch.allclose(w, codes.to(torch.float64), atol=1e-9)


def test_read_weights_noise_is_the_cells_noise_recombined() -> None:
    """A differential 8-bit weight in two 4-bit cells per side: the weight's noise is the
    sum over its four cells of place * noise; with equal per-cell sd s the weight's sd is
    s * sqrt(2 * (1 + 16**2))."""
    dev = DeviceSpec(model="rram", g_levels_us=tuple(float(v) for v in range(16)),
                     sigma_lognormal=0.0)  # fmt: skip
    codes = torch.zeros(N, dtype=torch.int64)
    w = read_weights(codes, 8, "differential", 4, dev, 0.0, gen())
    assert bool((w == 0).all())
    pcm = DeviceSpec(model="pcm", g_levels_us=tuple(float(v) for v in range(16)),
                     g_max_us=25.0, read_noise_scale=0.0, drift_scale=0.0)  # fmt: skip
    w = read_weights(codes, 8, "differential", 4, pcm, 0.0, gen())
    # level-0 cells: max(0, 0.26348 * N(0, 1)) uS (sd 0.26348 * sqrt(1/2 - 1/(2 pi))), in
    # units of the 1 uS level step
    half = 0.26348 * math.sqrt(0.5 - 1 / (2 * math.pi))
    assert float(w.std()) == pytest.approx(half * math.sqrt(2 * (1 + 16**2)), rel=0.02)


def test_compensation_removes_the_mean_drift() -> None:
    codes = torch.randint(-127, 128, (64, 64))
    no_read = PCM.model_copy(update={"read_noise_scale": 0.0, "prog_noise_scale": 0.0})
    comp = read_weights(codes, 8, "differential", 4, no_read, 3.0e7, gen())
    uncompensated = no_read.model_copy(update={"compensation": False})
    raw = read_weights(codes, 8, "differential", 4, uncompensated, 3.0e7, gen())
    assert float(raw.abs().mean()) < 0.5 * float(codes.abs().double().mean())  # a year's drift
    assert float(comp.abs().mean()) == pytest.approx(float(codes.abs().double().mean()), rel=1e-3)


def _channel_scaled_codes() -> torch.Tensor:
    """8-bit codes whose rows (output channels) span 5% to 100% of the range, so the
    channels' level mixes, and with them their drift, differ."""
    torch.manual_seed(0)
    raw = torch.randint(-127, 128, (48, 64)).double()
    return (raw * torch.linspace(0.05, 1.0, 48)[:, None]).round().long()


def test_column_compensation_restores_every_channels_mean() -> None:
    codes = _channel_scaled_codes()
    drift_only = PCM.model_copy(update={"read_noise_scale": 0.0, "prog_noise_scale": 0.0})
    want = codes.abs().double().mean(dim=1)
    column = drift_only.model_copy(update={"compensation_scope": "column"})
    per_channel = read_weights(codes, 8, "differential", 4, column, 3.0e7, gen())
    layer = read_weights(codes, 8, "differential", 4, drift_only, 3.0e7, gen())
    # no programming noise: each channel's read-out is its codes' (to the 1e-5 relative
    # error of the preset's rounded level table), where one gain per layer misses by %
    assert torch.allclose(per_channel.abs().mean(dim=1), want, rtol=1e-4)
    ratio = layer.abs().mean(dim=1) / want
    # one gain per layer: after a year each channel is off by its devices' exponents
    # (a few % on 64 weights x 4 cells), which only a gain per channel takes out
    assert float(ratio.std()) > 0.02 and float((ratio - 1).abs().max()) > 0.05
    assert float(layer.abs().mean()) == pytest.approx(float(want.mean()), rel=1e-3)


def test_compensation_scope_is_validated() -> None:
    with pytest.raises(ValueError, match="compensation_scope"):
        PCM.model_validate({**PCM.model_dump(), "compensation_scope": "row"})


def test_level_units_subtract_the_reference_and_divide_by_the_step() -> None:
    dev = DeviceSpec(model="rram", g_levels_us=(2.0, 12.0, 22.0, 32.0))
    g = torch.tensor([2.0, 12.0, 32.0, 0.0], dtype=torch.float64)
    assert level_units(g, dev).tolist() == [0.0, 1.0, 3.0, -0.2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("1h", 3600.0), ("1d", 86400.0), ("2.5m", 150.0), ("0", 0.0), ("1y", 31557600.0)],
)
def test_parse_time(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["-1s", "1x", "", "h", "1e9y", "nan"])
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(HamqError):
        parse_times(text)


def test_time_labels() -> None:
    assert [time_label(t) for t in (0.0, 1.0, 3600.0, 86400.0, 31557600.0)] == [
        "0s", "1s", "1h", "1d", "1y"]  # fmt: skip


# ------------------------------------------------------------------ into the crossbar


def _sim(hw_name: str = "pcm-14nm", **sets: object):
    from hamq.hardware.simulate import LayerSim
    from hamq.quantization.config import QuantConfig
    from hamq.quantization.modules import QuantConv2d

    torch.manual_seed(0)
    conv = QuantConv2d.from_float(torch.nn.Conv2d(6, 5, 3, padding=1), QuantConfig())
    x = torch.rand(4, 6, 7, 7)
    conv.input_quant(x)  # calibrate the input range
    hw = load_hardware(hw_name, **sets)
    return conv, LayerSim("conv", conv, hw), hw, conv.input_quant.to_int(x)


def test_noisy_levels_through_ideal_adcs_are_the_noisy_weights() -> None:
    """With ideal conversions, the simulated layer is the convolution with the noisy
    recombined weights (times the compensation gain)."""
    conv, sim, hw, codes = _sim()
    sim.program(hw.device, gen(3))
    sim.read_at(86400.0, hw.device, gen(4))
    assert sim.noisy and sim.gain > 1.0  # drift lowered the read-out; compensation lifts it
    levels = sim.levels.to(torch.float64)
    g_, k, cols = levels.shape
    w = levels.reshape(g_, k, cols // sim.place.numel(), -1) @ sim.place  # (1, K, N)
    weight = w[0].T.reshape(conv.weight.shape)
    expect = F.conv2d(codes.double(), weight, None, 1, 1) * sim.gain
    got = sim.accumulate(codes)
    assert torch.allclose(got, expect, rtol=1e-4, atol=1e-3)
    sim.clear_noise()
    assert not sim.noisy and sim.gain == 1.0
    exact = F.conv2d(codes.double(), conv.weight_int().double(), None, 1, 1)
    assert torch.equal(sim.accumulate(codes), exact)


def test_column_compensation_scales_each_output_channel() -> None:
    """Per-channel gains (``compensation_scope: column``): the simulated layer is the
    convolution with the noisy weights, each output channel times its own gain, and that
    gain brings the channel's mean |weight| back to its programmed read-out."""
    conv, sim, hw, codes = _sim(**{"device.compensation_scope": "column"})
    assert hw.device is not None
    sim.program(hw.device, gen(3))
    sim.read_at(86400.0, hw.device, gen(4))
    gain = sim.gain
    assert isinstance(gain, torch.Tensor) and gain.shape == (5,)
    assert float(gain.min()) > 1.0 and float(gain.max() - gain.min()) > 1e-3
    cpw = sim.place.numel()

    def weights(levels: torch.Tensor) -> torch.Tensor:
        g_, k, cols = levels.shape
        w = levels.to(torch.float64).reshape(g_, k, cols // cpw, cpw) @ sim.place
        return w[0].T.reshape(conv.weight.shape)

    w_t = weights(sim.levels)
    assert sim.cells is not None
    from hamq.hardware.noise import level_units

    w_prog = weights(level_units(sim.cells.programmed_us(), hw.device))
    mean_abs = lambda w: w.abs().reshape(5, -1).mean(dim=1)  # noqa: E731
    assert torch.allclose(mean_abs(w_t) * gain, mean_abs(w_prog), rtol=1e-5)  # float32 levels
    expect = F.conv2d(codes.double(), w_t, None, 1, 1) * gain.view(1, -1, 1, 1)
    assert torch.allclose(sim.accumulate(codes), expect, rtol=1e-4, atol=1e-3)


def test_column_compensation_of_a_linear_layer() -> None:
    from hamq.hardware.simulate import LayerSim
    from hamq.quantization.config import QuantConfig
    from hamq.quantization.modules import QuantLinear

    torch.manual_seed(1)
    lin = QuantLinear.from_float(torch.nn.Linear(40, 6), QuantConfig())
    x = torch.rand(8, 40)
    lin.input_quant(x)
    codes = lin.input_quant.to_int(x)
    hw = load_hardware("pcm-14nm", **{"device.compensation_scope": "column"})
    assert hw.device is not None
    sim = LayerSim("fc", lin, hw)
    sim.program(hw.device, gen(5))
    sim.read_at(3.0e7, hw.device, gen(6))
    levels = sim.levels.to(torch.float64)
    g_, k, cols = levels.shape
    w_t = (levels.reshape(g_, k, cols // sim.place.numel(), -1) @ sim.place)[0].T  # (6, 40)
    assert isinstance(sim.gain, torch.Tensor) and sim.gain.shape == (6,)
    expect = F.linear(codes.double(), w_t) * sim.gain
    assert torch.allclose(sim.accumulate(codes), expect, rtol=1e-4, atol=1e-3)


def test_noisy_sums_are_rounded_and_clipped_by_the_adc() -> None:
    from hamq.hardware.crossbar import AdcTransfer, crossbar_mvm
    from hamq.hardware.energy import input_schedule

    levels = torch.tensor([[[0.4], [0.7]]])  # (G=1, K=2, cols=1): noisy, below one unit
    vectors = torch.tensor([[[1, 1]]])
    sched = input_schedule(1, False, 1)
    place = torch.tensor([1.0], dtype=torch.float64)
    exact = crossbar_mvm(vectors, levels, sched, place, 0, 2, None, noisy=True)
    assert float(exact) == pytest.approx(1.1, abs=1e-6)
    adc = crossbar_mvm(vectors, levels, sched, place, 0, 2, AdcTransfer(4), noisy=True)
    assert float(adc) == 1.0  # 1.1 rounds to code 1
    neg = crossbar_mvm(vectors, -levels, sched, place, 0, 2, AdcTransfer(4), noisy=True)
    assert float(neg) == 0.0  # a negative bitline current clips at code 0


def test_skipped_empty_columns_carry_no_noise() -> None:
    conv, _, hw, _ = _sim("rram-1b", **{"array.skip_empty_columns": True})
    with torch.no_grad():
        conv.weight[:, :, :, :] = conv.weight.abs()  # every negative column empty
    from hamq.hardware.simulate import LayerSim

    sim = LayerSim("conv", conv, hw)
    sim.program(hw.device, gen())
    sim.read_at(0.0, hw.device, gen())
    empty = sim.mapping.tile_column_sums[:, 0] == 0  # (G, cols)
    assert bool(empty.any())
    assert bool((sim.levels[0][:, empty[0]] == 0).all())


@pytest.mark.parametrize("scope", ["layer", "column"])
def test_compensation_leaves_the_word_offset_alone(scope: str) -> None:
    """Shifted weights: the gain scales what the arrays sum, while the offset that the
    periphery subtracts stays exact. Without noise but with drift, compensation must
    give back the integer layer almost exactly (all cells drift alike)."""
    conv, sim, hw, codes = _sim(
        "pcm-14nm", **{"array.representation": "shifted", "device.compensation_scope": scope}
    )
    assert hw.device is not None
    uniform = hw.device.model_copy(update={"prog_noise_scale": 0.0, "read_noise_scale": 0.0})
    sim.program(uniform, gen())
    # every device drifts by the same factor: replace the drawn exponents by one value
    assert sim.cells is not None
    sim.cells = type(sim.cells)(sim.cells.g_prog_us, torch.full_like(sim.cells.g_prog_us, 0.05))
    sim.read_at(3.0e7, uniform, gen())
    assert bool(torch.all(torch.as_tensor(sim.gain) > 2.0))
    exact = F.conv2d(codes.double(), conv.weight_int().double(), None, 1, 1)
    assert torch.allclose(
        sim.accumulate(codes), exact, rtol=0, atol=1e-3 * float(exact.abs().max())
    )


def test_training_config_names_the_compensation_scope() -> None:
    """``hardware.compensation_scope`` of a training config reaches the device that
    noise-aware training draws from; null keeps the preset's."""
    from hamq.training.config import HardwareRef

    ref = HardwareRef(preset="pcm-14nm", compensation_scope="column")
    assert ref.overrides() == {"device.compensation_scope": "column"}
    dev = load_hardware(ref.preset, **ref.overrides()).device
    assert dev is not None and dev.compensation_scope == "column"
    assert HardwareRef(preset="pcm-14nm").overrides() == {}
    with pytest.raises(ValueError, match="compensation_scope"):
        HardwareRef(preset="pcm-14nm", compensation_scope="row")  # type: ignore[arg-type]


def test_a_later_field_at_its_default_keeps_cached_digests() -> None:
    """``device.compensation_scope`` came after results were cached under hardware
    digests: left at ``layer`` it must not change a digest (the key of cached energy,
    crossbar and noise results), set to ``column`` it must."""
    import hashlib
    import json

    from hamq.training.crossbar_eval import hardware_digest

    spread = load_hardware("pcm-14nm", **{"array.slice_levels": "spread"})
    assert spread.device is not None and spread.device.compensation_scope == "layer"
    data = spread.model_dump(mode="json")
    del data["device"]["compensation_scope"]  # the description as it was before the field
    del data["array"]["devices_per_cell"]  # (and before array.devices_per_cell)
    before = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    assert hardware_digest(spread) == before
    column = load_hardware(
        "pcm-14nm", **{"array.slice_levels": "spread", "device.compensation_scope": "column"}
    )
    assert hardware_digest(column) != before
    # a description stored with a cached result before the field (the sweep's energy.json)
    # matches the same hardware now, and not the column-compensated one
    from hamq.training.crossbar_eval import canonical_spec

    now = spread.model_dump(mode="json")
    assert canonical_spec(data) == canonical_spec(now) and data != now
    assert canonical_spec(data) != canonical_spec(column.model_dump(mode="json"))
