"""Quantizers and ``quantize_model``, checked against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hamq.errors import HamqError
from hamq.models import ModelConfig, build_model
from hamq.quantization import functional as qf
from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import quantize_model, quantized_layers
from hamq.quantization.modules import ActQuantizer, QuantConv2d, QuantLinear

pytestmark = pytest.mark.usefixtures("single_thread")

SEEDS = range(5)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _quant_conv(seed: int, cfg: QuantConfig, groups: int = 1) -> QuantConv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(8, 12, 3, groups=groups, dtype=torch.float64)
    with torch.no_grad():  # channels with very different ranges
        conv.weight.mul_(torch.logspace(-2, 1, 12, dtype=torch.float64).reshape(-1, 1, 1, 1))
    return QuantConv2d.from_float(conv, cfg)


# ----------------------------------------------------------------------------- weights
@pytest.mark.parametrize("bits", [2, 4, 6, 8])
@pytest.mark.parametrize("granularity", ["per_channel", "per_layer"])
@pytest.mark.parametrize("seed", SEEDS)
def test_fixed_weight_quantizer_range_and_error(bits: int, granularity: str, seed: int) -> None:
    layer = _quant_conv(seed, QuantConfig(w_bits=bits, granularity=granularity))
    w = layer.weight.detach()
    qmax = 2 ** (bits - 1) - 1
    # The scale, by hand: max|w| / q_max over each output channel (or the whole layer).
    if granularity == "per_channel":
        expected = torch.stack([w[c].abs().max() for c in range(12)]) / qmax
    else:
        expected = w.abs().max().expand(12) / qmax
    s = layer.weight_scale()
    assert torch.allclose(s.expand_as(w)[:, 0, 0, 0], expected, rtol=0, atol=0)

    q = layer.weight_int()
    assert q.dtype == torch.int64
    assert int(q.abs().max()) <= qmax
    s_full = s.expand_as(w)
    assert bool(((w - s_full * q).abs() <= s_full / 2 * (1 + 1e-12)).all())
    # The range-setting weight of each channel lands exactly on +-q_max.
    if granularity == "per_channel":
        assert q.abs().reshape(12, -1).amax(1).tolist() == [qmax] * 12
    # The fake-quantized weight is the scaled integer.
    assert torch.allclose(layer.weight_fake(), s_full * q, rtol=0, atol=1e-15)


@pytest.mark.parametrize("bits", [3, 6, 8])
@pytest.mark.parametrize("granularity", ["per_channel", "per_layer"])
@pytest.mark.parametrize("seed", SEEDS)
def test_dynamic_scale_is_power_of_two_at_least_fixed(
    bits: int, granularity: str, seed: int
) -> None:
    fixed = _quant_conv(seed, QuantConfig(w_bits=bits, granularity=granularity))
    dyn = _quant_conv(seed, QuantConfig(w_bits=bits, granularity=granularity, scheme="dynamic"))
    s_fixed = fixed.weight_scale().flatten().tolist()
    s_dyn = dyn.weight_scale().flatten().tolist()
    for sf, sd in zip(s_fixed, s_dyn, strict=True):
        mantissa, _ = math.frexp(sd)
        assert mantissa == 0.5  # an exact power of two
        assert sf <= sd < 2 * sf
    q = dyn.weight_int()
    assert int(q.abs().max()) <= 2 ** (bits - 1) - 1


def test_weight_scale_per_layer_is_scalar_per_channel_broadcasts() -> None:
    w = torch.randn(6, 3, 2, 2, generator=_gen(0))
    assert qf.weight_scale(w, 8, per_channel=False, dynamic=False).dim() == 0
    s = qf.weight_scale(w, 8, per_channel=True, dynamic=False)
    assert s.shape == (6, 1, 1, 1)
    lin = torch.randn(5, 7, generator=_gen(1))
    s_lin = qf.weight_scale(lin, 4, per_channel=True, dynamic=False)
    assert s_lin.shape == (5, 1)
    assert torch.equal(s_lin[:, 0], lin.abs().max(1).values / 7)


# ----------------------------------------------------------------------------- activations
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_act_quantizer_unsigned_range(bits: int) -> None:
    aq = ActQuantizer(bits)
    x = torch.rand(64, 10, generator=_gen(bits)) * 3.0
    y = aq(x)
    assert not bool(aq.signed)
    assert aq.int_range == (0, 2**bits - 1)
    codes = aq.to_int(x)
    assert int(codes.min()) >= 0 and int(codes.max()) == 2**bits - 1
    s = float(x.abs().max()) / (2**bits - 1)
    assert torch.allclose(y, codes * s, atol=1e-6)
    assert float((y - x).abs().max()) <= s / 2 + 1e-6


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_act_quantizer_signed_range(bits: int) -> None:
    aq = ActQuantizer(bits)
    x = torch.randn(64, 10, generator=_gen(bits))
    aq(x)
    assert bool(aq.signed)
    m = 2 ** (bits - 1) - 1
    assert aq.int_range == (-m, m)
    codes = aq.to_int(x * 10)  # far outside: clamped at both ends
    assert int(codes.min()) == -m and int(codes.max()) == m


def test_act_quantizer_sign_mode_is_kept_after_first_batch() -> None:
    aq = ActQuantizer(4)
    aq(torch.rand(8, 3, generator=_gen(0)))
    aq(-torch.rand(8, 3, generator=_gen(1)))
    assert not bool(aq.signed)
    assert int(aq.to_int(-torch.ones(3)).min()) == 0


def test_calibrated_running_max_update() -> None:
    aq = ActQuantizer(8, momentum=0.1)
    aq.train()
    aq(torch.tensor([0.5, -2.0]))
    assert float(aq.running_amax) == pytest.approx(2.0)
    aq(torch.tensor([4.0, 1.0]))
    assert float(aq.running_amax) == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)
    aq(torch.tensor([1.0]))
    assert float(aq.running_amax) == pytest.approx(0.9 * 2.2 + 0.1 * 1.0)
    aq.eval()
    aq(torch.tensor([100.0]))
    assert float(aq.running_amax) == pytest.approx(2.08)
    assert float(aq.scale()) == pytest.approx(2.08 / 127)


def test_learned_step_receives_gradient() -> None:
    aq = ActQuantizer(4, mode="learned")
    x = torch.rand(32, 5, generator=_gen(3)) * 2
    aq(x)  # initializes the step
    # LSQ initial step: 2 mean|x| / sqrt(Q_p).
    assert float(aq.step.detach()) == pytest.approx(2 * float(x.mean()) / math.sqrt(15), rel=1e-6)
    aq(x).pow(2).sum().backward()
    assert aq.step.grad is not None and float(aq.step.grad.abs()) > 0


def test_calibrated_step_is_not_trained() -> None:
    aq = ActQuantizer(4)
    assert not aq.step.requires_grad
    assert "step" not in {n for n, p in aq.named_parameters() if p.requires_grad}


def test_ste_gradient_identity_inside_zero_when_clamped() -> None:
    scale = torch.tensor(0.25)
    x = torch.linspace(-3, 3, 121, dtype=torch.float64, requires_grad=True)
    lo, hi = -7, 7
    qf.fake_quant(x, scale, lo, hi).sum().backward()
    # torch.clamp passes the gradient at the boundary itself (x / scale == +-7).
    inside = (x.detach() / scale >= lo) & (x.detach() / scale <= hi)
    assert torch.equal(x.grad[inside], torch.ones(int(inside.sum()), dtype=torch.float64))
    assert torch.equal(x.grad[~inside], torch.zeros(int((~inside).sum()), dtype=torch.float64))
    assert int(inside.sum()) > 40 and int((~inside).sum()) > 40


def test_ste_through_act_quantizer() -> None:
    aq = ActQuantizer(4)
    aq(torch.tensor([0.0, 1.5]))  # unsigned, scale 0.1
    x = torch.tensor([-0.5, 0.3, 1.2, 2.0], requires_grad=True)
    aq(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]


# ----------------------------------------------------------------------------- quantize_model
class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 16, 3, groups=4, bias=False)
        self.depthwise = nn.Conv2d(16, 16, 3, groups=16, padding=2, dilation=2)
        self.keep = nn.Conv2d(16, 16, 1)
        self.block = nn.Sequential(nn.Flatten(), nn.Linear(16 * 6 * 6, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        return self.block(self.keep(self.depthwise(self.grouped(x))))


def test_quantize_model_converts_and_reports() -> None:
    torch.manual_seed(0)
    model = Mixed()
    x = torch.randn(2, 3, 8, 8)
    ref = {n: m.weight.detach().clone() for n, m in model.named_modules() if hasattr(m, "weight")}
    report = quantize_model(model, QuantConfig(w_bits=6, a_bits=6, skip=("keep",)))

    converted = [n for n, _ in report.converted]
    assert converted == ["stem", "grouped", "depthwise", "block.1"]
    assert dict(report.skipped) == {
        "bn": "BatchNorm2d: digital, kept in float",
        "keep": "listed in quant.skip",
    }
    assert type(model.stem) is QuantConv2d
    assert type(model.grouped) is QuantConv2d and model.grouped.groups == 4
    assert type(model.depthwise) is QuantConv2d
    assert model.depthwise.groups == 16 and model.depthwise.dilation == (2, 2)
    assert type(model.block[1]) is QuantLinear
    assert type(model.keep) is nn.Conv2d
    assert type(model.bn) is nn.BatchNorm2d
    assert model.grouped.bias is None and model.stem.bias is not None
    for name, layer in quantized_layers(model):
        assert torch.equal(layer.weight, ref[name])  # weights carried over unchanged
        assert layer.w_bits == 6 and layer.input_quant.bits == 6
    assert "w6a6" in dict(report.converted)["grouped"]
    assert "groups=4" in dict(report.converted)["grouped"]
    assert model(x).shape == (2, 10)
    # Converting again changes nothing.
    assert quantize_model(model, QuantConfig(skip=("keep",))).converted == []


def test_quantize_model_unknown_skip_name_raises() -> None:
    with pytest.raises(HamqError, match="'stemm'") as err:
        quantize_model(Mixed(), QuantConfig(skip=("stemm",)))
    assert "did you mean 'stem'" in str(err.value)


def test_quantize_model_reports_unsupported_layers() -> None:
    model = nn.Sequential(nn.Conv1d(2, 2, 3), nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
    report = quantize_model(model, QuantConfig())
    assert report.converted == []
    assert dict(report.skipped) == {
        "0": "Conv1d is not supported",
        "1": "padding_mode reflect",
    }


@pytest.mark.parametrize(
    ("name", "shape"),
    [("digits-cnn", (1, 8, 8)), ("ds-cnn", (1, 49, 10)), ("resnet20", (3, 32, 32))],
)
def test_library_models_convert_every_layer(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name), shape, 10)
    expected = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    report = quantize_model(model, QuantConfig(w_bits=4, a_bits=4))
    assert [n for n, _ in report.converted] == expected
    assert [n for n, _ in quantized_layers(model)] == expected
    assert len(report.skipped) == n_bn
    assert all(r.startswith("BatchNorm2d") for _, r in report.skipped)
    leftover = [
        m for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear)
    ]  # exact float types
    assert leftover == []
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10) and bool(out.isfinite().all())


@pytest.mark.parametrize(
    ("model_dtype", "autocast"),
    [(torch.float64, False), (torch.float32, True)],
    ids=["float64", "bf16-autocast"],
)
def test_calibrated_training_steps_in_other_dtypes(
    model_dtype: torch.dtype, autocast: bool
) -> None:
    """Regression: the running-max update failed on the second training batch whenever the
    input dtype was not the buffer's float32 (a float64 model, or bf16 under autocast)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)).to(model_dtype)
    quantize_model(model, QuantConfig())
    model.train()
    x = torch.randn(2, 3, 8, 8, dtype=model_dtype)
    amaxes = []
    for k in (1.0, 3.0):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(x * k)
        amaxes.append(float(model[0].input_quant.running_amax))
    first = float(x.abs().max())
    assert amaxes[0] == pytest.approx(first, rel=1e-6)
    assert amaxes[1] == pytest.approx(0.9 * first + 0.1 * 3 * first, rel=1e-2)
