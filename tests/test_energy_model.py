"""estimate_energy / static_energy on whole converted models: consistency with the
per-layer path, batching, data sources, static mode limits, report layout and errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from hamq.data.bundle import DataBundle
from hamq.errors import HamqError
from hamq.hardware.estimate import estimate_energy, layer_energy, static_energy
from hamq.hardware.spec import load_hardware
from hamq.quantization import QuantConfig, quantize_model
from hamq.quantization.export import capture_input_codes, export_integer_layers


def tiny_model(seed: int = 0, act_range: str = "calibrated") -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
    )
    quantize_model(m, QuantConfig(w_bits=4, a_bits=4, act_range=act_range))
    m.train()
    m(torch.randn(16, 2, 6, 6))  # calibrate the input quantizers
    return m.eval()


HW = load_hardware("rram-1b", **{"array.rows": 8, "array.cols": 16, "adc.col_mux": 4})


@pytest.mark.parametrize("act_range", ["calibrated", "learned"])
def test_model_energy_is_sum_of_layer_energies(act_range: str) -> None:
    """Streaming (the quantizers' own codes, or a pre-hook for learned steps, and the
    forward's integer weights) gives what the per-layer path gives on captured input codes
    and exported weights."""
    m = tiny_model(act_range=act_range)
    x = torch.randn(10, 2, 6, 6)
    hw = load_hardware("rram-1b", **{"array.rows": 8, "adc.skip_zero": True})
    with capture_input_codes(m) as codes, torch.no_grad():
        m(x)
    report = estimate_energy(m, x, hw, batch_size=4)
    assert report.mode == "data" and report.samples == 10
    for layer, row in zip(export_integer_layers(m), report.layers, strict=True):
        ref = layer_energy(layer, torch.cat(codes[layer.name]), hw)
        assert row.name == layer.name
        for key in ("e_cb_j", "e_adc_j", "e_periph_j", "conversions", "cycles", "macs", "cells_on"):
            assert getattr(row, key) == pytest.approx(getattr(ref, key), rel=1e-9)
    t = report.totals()
    assert t["e_cb_j"] == pytest.approx(sum(r.e_cb_j for r in report.layers))
    assert t["e_cb_ad_j"] == pytest.approx(t["e_cb_j"] + t["e_adc_j"])
    assert t["tops_per_w"] == pytest.approx(2 * t["macs"] / t["e_total_j"] / 1e12)


def test_batching_and_sources_agree() -> None:
    """Same samples through a tensor (two batch sizes), a list of (x, y) and a DataBundle."""
    m = tiny_model()
    x = torch.randn(9, 2, 6, 6)
    a = estimate_energy(m, x, HW, batch_size=9).to_dict()
    b = estimate_energy(m, x, HW, batch_size=2).to_dict()
    c = estimate_energy(m, [(x[:5], None), (x[5:], None)], HW).to_dict()
    bundle = DataBundle(
        "t", x, torch.zeros(9), x, torch.zeros(9, dtype=torch.int64), ["a"], (2, 6, 6)
    )
    d = estimate_energy(m, bundle, HW, batch_size=4).to_dict()
    for other in (b, c, d):
        for key, value in a["totals"].items():
            assert other["totals"][key] == pytest.approx(value, rel=1e-9), key
    e = estimate_energy(m, x, HW, samples=4).to_dict()
    assert e["samples"] == 4
    assert e["totals"]["e_cb_j"] == pytest.approx(
        estimate_energy(m, x[:4], HW).to_dict()["totals"]["e_cb_j"], rel=1e-9
    )


@pytest.mark.parametrize("act_range", ["calibrated", "learned"])
@pytest.mark.parametrize("a_bits", [4, 8])
def test_estimation_runs_the_same_inference(act_range: str, a_bits: int) -> None:
    """While estimating, the layers' quantizers hand their codes to the probes; the model
    computes the same outputs as its plain eval forward (signed first-layer inputs too)."""
    torch.manual_seed(3)
    m = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )
    quantize_model(m, QuantConfig(w_bits=6, a_bits=a_bits, act_range=act_range))
    m.train()
    m(torch.randn(16, 2, 6, 6))
    m.eval()
    x = torch.randn(7, 2, 6, 6) * 2
    with torch.no_grad():
        plain = m(x)
    seen: list[torch.Tensor] = []
    handle = m.register_forward_hook(lambda mod, args, out: seen.append(out))
    estimate_energy(m, x, HW, batch_size=7)
    static_energy(m, HW, (2, 6, 6))
    handle.remove()
    assert torch.equal(seen[0], plain)
    for layer in (m[0], m[3]):  # nothing of the estimate is left on the model
        assert "weight_fake" not in vars(layer) and "forward" not in vars(layer.input_quant)
    with torch.no_grad():
        assert torch.equal(m(x), plain)


def test_model_is_restored_after_an_error() -> None:
    m = tiny_model()
    with pytest.raises(RuntimeError):
        estimate_energy(m, torch.randn(2, 3, 6, 6), HW)  # wrong channel count
    for layer in (m[0], m[2], m[5]):
        assert "weight_fake" not in vars(layer) and "forward" not in vars(layer.input_quant)
    assert estimate_energy(m, torch.randn(2, 2, 6, 6), HW).samples == 2


def test_model_state_is_untouched() -> None:
    m = tiny_model()
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    estimate_energy(m, torch.randn(4, 2, 6, 6) * 50, HW)
    static_energy(m, HW, (2, 6, 6))
    assert m.training
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


def one_conv(signed: bool) -> nn.Module:
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, stride=2))
    quantize_model(m, QuantConfig(w_bits=6, a_bits=5))
    m.train()
    x = torch.rand(4, 3, 5, 5)
    m(x - 0.5 if signed else x)
    return m.eval()


def test_static_full_activity_equals_all_ones_input() -> None:
    """At bit activity 1 every input code is all ones (2**5 - 1 = 31, unsigned), so the
    static figures equal the data figures on an input that saturates the quantizer."""
    m = one_conv(signed=False)
    hw = load_hardware("rram-2b-40nm", **{"tech.e_driver_pj": 0.3})
    data = estimate_energy(m, torch.full((1, 3, 5, 5), 1e3), hw).layers[0]
    static = static_energy(m, hw, (3, 5, 5), activity=1.0).layers[0]
    assert static.e_cb_j == pytest.approx(data.e_cb_j, rel=1e-12)
    assert static.e_periph_j == pytest.approx(data.e_periph_j, rel=1e-12)
    assert static.cycles == data.cycles and static.macs == data.macs
    zero = static_energy(m, hw, (3, 5, 5), activity=0.0)
    assert zero.layers[0].e_cb_j == 0.0
    half = static_energy(m, hw, (3, 5, 5))
    assert half.mode == "static" and half.activity == 0.5
    assert half.layers[0].e_cb_j == pytest.approx(0.5 * static.e_cb_j, rel=1e-12)


def test_static_skip_zero_limits() -> None:
    """skip_zero at activity 1 (unsigned): every column with a non-zero cell in a row tile
    converts, as in data mode on a saturated input (no padding rows in a 1x1 conv)."""
    torch.manual_seed(2)
    m = nn.Sequential(nn.Conv2d(6, 3, 1))
    quantize_model(m, QuantConfig(w_bits=4, a_bits=3))
    m.train()
    m(torch.rand(2, 6, 2, 2))
    m.eval()
    hw = load_hardware("rram-1b", **{"adc.skip_zero": True, "array.rows": 4})
    data = estimate_energy(m, torch.full((1, 6, 2, 2), 1e3), hw).layers[0]
    static = static_energy(m, hw, (6, 2, 2), activity=1.0).layers[0]
    assert static.conversions == pytest.approx(data.conversions, rel=1e-12)
    assert static_energy(m, hw, (6, 2, 2), activity=0.0).layers[0].conversions == 0.0


def test_report_json_layout() -> None:
    m = tiny_model()
    d = estimate_energy(m, torch.randn(3, 2, 6, 6), HW).to_dict()
    json.dumps(d)
    assert {"totals", "layers", "mode", "samples"} <= set(d)
    need_totals = {"e_cb_j", "e_adc_j", "e_periph_j", "e_total_j", "cycles", "latency_s"}
    assert need_totals | {"macs", "tops_per_w", "e_cb_ad_j"} <= set(d["totals"])
    need_layer = {"name", "rows", "cols", "tiles", "utilization", "cells_on", "e_cb_j"}
    assert all(
        need_layer | {"e_adc_j", "cycles", "e_periph_j", "macs"} <= set(r) for r in d["layers"]
    )
    assert [r["name"] for r in d["layers"]] == ["0", "2", "5"]
    depthwise = d["layers"][1]
    # One block per group, K = 9 rows on 8-row arrays: 2 row tiles each; 1 col x 6 cells.
    assert depthwise["groups"] == 4 and depthwise["tiles"] == 4 * 2
    assert depthwise["utilization"] == pytest.approx(4 * 9 * 6 / (8 * 8 * 16))
    text = str(estimate_energy(m, torch.randn(3, 2, 6, 6), HW))
    assert "E_cb&AD" in text and "E_cb " in text


def test_errors() -> None:
    raw = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(HamqError, match="no quantized layers"):
        estimate_energy(raw, torch.randn(2, 3), HW)
    quantize_model(raw, QuantConfig())
    with pytest.raises(HamqError, match="not calibrated"):
        estimate_energy(raw, torch.randn(2, 3), HW)
    m = tiny_model()
    with pytest.raises(HamqError, match="activity"):
        static_energy(m, HW, (2, 6, 6), activity=1.5)
    with pytest.raises(HamqError, match="samples"):
        estimate_energy(m, torch.randn(2, 2, 6, 6), HW, samples=0)
    with pytest.raises(HamqError, match="empty"):
        estimate_energy(m, [], HW)
    with pytest.raises(HamqError, match="unknown hardware preset"):
        estimate_energy(m, torch.randn(2, 2, 6, 6), "rram-3b")
