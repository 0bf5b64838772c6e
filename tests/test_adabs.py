"""AdaBS (``training/adabs.py``): BatchNorm statistics re-estimated from forwards, only
BatchNorm switched, the trained statistics given back, and ``hamq eval --adapt-bn``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from hamq.errors import HamqError
from hamq.quantization.config import QuantConfig
from hamq.quantization.modules import QuantConv2d
from hamq.training.adabs import adapt_batchnorm, kept_batchnorm_stats
from hostile import refused, run_json


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    conv = QuantConv2d.from_float(nn.Conv2d(3, 4, 3), QuantConfig())
    model = nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
    model.eval()
    conv.input_quant(torch.rand(8, 3, 6, 6))  # calibrate the input range once
    return model


def _batches(n: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(2.0 * torch.rand(size, 3, 6, 6, generator=g) + 0.5, torch.zeros(size))
            for _ in range(n)]  # fmt: skip


def test_statistics_are_the_average_of_the_batches_and_nothing_else_moves() -> None:
    model = _model()
    conv, bn = model[0], model[1]
    batches = _batches(2, 16)
    quant_before = {k: v.clone() for k, v in conv.input_quant.state_dict().items()}
    with torch.no_grad():  # independent reference: the conv outputs, per batch
        outs = [conv(x) for x, _ in batches]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.transpose(0, 1).reshape(4, -1).var(dim=1) for o in outs]).mean(0)
    assert adapt_batchnorm(model, batches) == 32
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, rtol=1e-4)
    assert not bn.training and not model.training and not conv.training
    for k, v in conv.input_quant.state_dict().items():
        assert torch.equal(v, quant_before[k]), k  # the input quantizer kept its range


def test_trained_statistics_come_back_on_error_too() -> None:
    model = _model()
    bn = model[1]
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"), kept_batchnorm_stats(model):
        adapt_batchnorm(model, _batches(1, 8))
        assert not torch.equal(bn.running_mean, before["running_mean"])
        raise RuntimeError("boom")
    for k, v in bn.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert bn.momentum == 0.1


def test_refuses_a_model_without_batchnorm_and_an_empty_split() -> None:
    with pytest.raises(HamqError, match="no BatchNorm"):
        adapt_batchnorm(nn.Sequential(nn.Linear(3, 2)), [(torch.rand(2, 3), torch.zeros(2))])
    with pytest.raises(HamqError, match="calibration"):
        adapt_batchnorm(_model(), [])
    model = _model()
    # a last batch of one sample is left out (no batch variance), the rest counted
    assert adapt_batchnorm(model, [*_batches(1, 8), *_batches(1, 1)]) == 8
    with pytest.raises(HamqError, match="at least 2"):
        adapt_batchnorm(model, _batches(1, 1))


def test_eval_adapt_bn_recovers_uncompensated_drift(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A year of PCM drift without compensation shrinks every weight by about half; the
    re-estimated BatchNorm statistics take the scale out again. The result is kept apart
    from the plain one, and the run's own statistics are untouched."""
    args = ["eval", str(run_copy), "--hw", "pcm-14nm", "--set", "device.compensation=false",
            "--set", "device.read_noise_scale=0", "--set", "device.prog_noise_scale=0",
            "--noise", "--t", "1y", "--repeats", "2", "--samples", "120"]  # fmt: skip
    plain = run_json(args, capsys)["noise"]
    adapted = run_json([*args, "--adapt-bn"], capsys)["noise"]
    assert "adapt_bn" not in plain and adapted["adapt_bn"]["samples"] > 0
    lost_plain = plain["crossbar_accuracy"] - plain["times"][0]["mean"]
    lost_adapted = adapted["crossbar_accuracy"] - adapted["times"][0]["mean"]
    assert lost_plain > 0.1 and lost_adapted < lost_plain / 3, (lost_plain, lost_adapted)
    keys = json.loads((run_copy / "run.json").read_text())["noise"].keys()
    assert sum(k.endswith("+adapt-bn") for k in keys) == 1 and len(keys) == 2
    again = run_json(["eval", str(run_copy), "--samples", "120"], capsys)
    assert again["accuracy"] == adapted["accuracy"]  # the stored BatchNorm untouched


def test_adapt_bn_needs_noise(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, ["eval", str(run_copy), "--adapt-bn"], ["--adapt-bn", "--noise"])


def test_the_test_pass_reads_the_arrays_again(
    run_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --adapt-bn, the statistics are taken on one read and the test pass runs on
    another read of the same cells: fresh read noise, as a chip calibrated earlier sees."""
    from hamq.hardware.simulate import LayerSim

    reads: list[tuple[int, float, torch.Tensor]] = []
    original = LayerSim.read_at

    def spy(self: LayerSim, t_s: float, device, gen) -> None:  # type: ignore[no-untyped-def]
        original(self, t_s, device, gen)
        reads.append((id(self), t_s, self.levels.clone()))

    monkeypatch.setattr(LayerSim, "read_at", spy)
    base = ["eval", str(run_copy), "--hw", "pcm-14nm", "--noise", "--t", "1d",
            "--repeats", "1", "--samples", "60"]  # fmt: skip
    run_json(base, capsys)
    layers = {i for i, _, _ in reads}
    assert len(reads) == len(layers)  # one read per layer without AdaBS
    reads.clear()
    run_json([*base, "--adapt-bn"], capsys)
    assert len(reads) == 2 * len(layers)
    first = {i: lv for i, _, lv in reads[: len(layers)]}
    second = {i: lv for i, _, lv in reads[len(layers) :]}
    assert set(first) == set(second) and len(first) == len(layers)
    layers = set(first)
    for i in layers:  # the same cells (close), not the same draw
        assert not torch.equal(first[i], second[i])
        assert float((first[i] - second[i]).abs().mean()) < 0.2 * float(first[i].abs().mean())
