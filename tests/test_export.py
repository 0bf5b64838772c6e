"""The QAT forward and the exported integers agree (the torchao-style consistency check).

Modules and inputs are float64, so the fake-quantized forward and the integer forward
differ only by rounding of the float products (~1e-15 relative); the tolerance is 1e-9.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import quantize_model
from hamq.quantization.export import (
    IntegerLayer,
    capture_input_codes,
    export_integer_layers,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SEEDS = range(8)

# (in, out, kernel, stride, padding, dilation, groups)
CONVS = {
    "plain": (3, 8, 3, 1, 0, 1, 1),
    "strided": (4, 6, 3, 2, 1, 1, 1),
    "dilated": (4, 4, (3, 2), 1, (2, 1), 2, 1),
    "rect-stride": (2, 5, (5, 3), (2, 1), (1, 0), 1, 1),
    "grouped": (8, 12, 3, 1, 1, 1, 4),
    "depthwise": (6, 6, 3, 1, 1, 1, 6),
    "depthwise-mult": (4, 8, 3, 2, 1, 1, 4),
    "pointwise": (6, 10, 1, 1, 0, 1, 1),
}
QUANT = {
    "w8a8-channel-fixed": QuantConfig(w_bits=8, a_bits=8),
    "w4a6-layer-fixed": QuantConfig(w_bits=4, a_bits=6, granularity="per_layer"),
    "w6a4-channel-dynamic": QuantConfig(w_bits=6, a_bits=4, scheme="dynamic"),
    "w3a8-layer-dynamic": QuantConfig(
        w_bits=3, a_bits=8, granularity="per_layer", scheme="dynamic"
    ),
    "w5a5-learned": QuantConfig(w_bits=5, a_bits=5, act_range="learned"),
}


def _calibrated(model: nn.Module, x: torch.Tensor, cfg: QuantConfig) -> nn.Module:
    """Convert ``model`` (float64), calibrate on ``x`` and a second batch, then freeze."""
    quantize_model(model, cfg)
    model.train()
    with torch.no_grad():
        model(x)
        model(x * 0.7)  # moves the running max
    return model.eval()


def _input(seed: int, shape: tuple[int, ...], signed: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    return x if signed else x.abs()


def _check(model: nn.Module, x: torch.Tensor) -> IntegerLayer:
    with torch.no_grad(), capture_input_codes(model) as codes:
        y = model(x)
    (layer,) = export_integer_layers(model)
    (x_int,) = codes[layer.name]
    y_int = layer.forward_from_integers(x_int)
    assert y_int.dtype == torch.float64
    assert y.shape == y_int.shape
    scale = float(y.abs().max())
    assert float((y - y_int).abs().max()) <= 1e-9 * max(scale, 1.0)
    return layer


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("qname", QUANT)
@pytest.mark.parametrize("conv", CONVS)
def test_conv_qat_forward_equals_integer_forward(conv: str, qname: str, signed: bool) -> None:
    cin, cout, k, stride, pad, dil, groups = CONVS[conv]
    for seed in SEEDS:
        torch.manual_seed(seed)
        m = nn.Sequential(
            nn.Conv2d(cin, cout, k, stride, pad, dil, groups, bias=seed % 2 == 0)
        ).double()
        x = _input(seed, (2, cin, 9, 8), signed)
        _calibrated(m, x, QUANT[qname])
        layer = _check(m, x)
        assert layer.kind == "conv2d" and layer.groups == groups
        assert layer.a_signed is signed


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("qname", QUANT)
def test_linear_qat_forward_equals_integer_forward(qname: str, signed: bool) -> None:
    for seed in SEEDS:
        torch.manual_seed(seed)
        m = nn.Sequential(nn.Linear(20, 7, bias=seed % 2 == 1)).double()
        x = _input(seed, (3, 5, 20), signed)  # leading dims beyond the batch
        _calibrated(m, x, QUANT[qname])
        layer = _check(m, x)
        assert layer.kind == "linear"


def test_export_scales_are_per_output_channel() -> None:
    torch.manual_seed(0)
    m = _calibrated(
        nn.Sequential(nn.Conv2d(3, 5, 3)).double(),
        _input(0, (2, 3, 6, 6), False),
        QuantConfig(w_bits=4, granularity="per_layer"),
    )
    (layer,) = export_integer_layers(m)
    assert layer.w_scale.shape == (5,)
    assert torch.equal(layer.w_scale, m[0].weight.abs().max().expand(5) / 7)
    assert layer.w_int.shape == (5, 3, 3, 3) and int(layer.w_int.abs().max()) == 7


# ----------------------------------------------------------------------------- crossbar view
def _int_conv_reference(layer: IntegerLayer, x_int: torch.Tensor) -> torch.Tensor:
    """Integer convolution (exact: float64 holds these integers and sums exactly)."""
    acc = F.conv2d(
        x_int.double(),
        layer.w_int.double(),
        None,
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
    )
    assert float(acc.abs().max()) < 2**52
    return acc.to(torch.int64)


@pytest.mark.parametrize("conv", CONVS)
def test_matrices_and_input_vectors_reproduce_integer_conv(conv: str) -> None:
    cin, cout, k, stride, pad, dil, groups = CONVS[conv]
    for seed in range(4):
        torch.manual_seed(seed)
        m = nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dil, groups)).double()
        x = _input(seed, (3, cin, 9, 8), signed=seed % 2 == 1)
        _calibrated(m, x, QuantConfig(w_bits=7, a_bits=8))
        with torch.no_grad(), capture_input_codes(m) as codes:
            m(x)
        (layer,) = export_integer_layers(m)
        (x_int,) = codes[layer.name]

        mats = layer.matrices()
        vecs = layer.input_vectors(x_int)
        assert mats.dtype == vecs.dtype == torch.int64
        assert mats.shape == (groups, cin // groups * layer.kernel_size[0] * layer.kernel_size[1],
                              cout // groups)  # fmt: skip
        assert vecs.shape[0] == groups and vecs.shape[2] == layer.rows
        out = torch.bmm(vecs, mats)  # (groups, B * L, N), exact int64

        ref = _int_conv_reference(layer, x_int)  # (B, C_out, OH, OW)
        b, _, oh, ow = ref.shape
        ref = ref.reshape(b, groups, cout // groups, oh * ow).permute(1, 0, 3, 2)
        assert torch.equal(out, ref.reshape(groups, b * oh * ow, cout // groups))


def test_matrices_and_input_vectors_linear() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(11, 6)).double()
    x = _input(0, (4, 11), signed=True)
    _calibrated(m, x, QuantConfig(w_bits=8, a_bits=8))
    with torch.no_grad(), capture_input_codes(m) as codes:
        m(x)
    (layer,) = export_integer_layers(m)
    (x_int,) = codes[layer.name]
    out = layer.input_vectors(x_int)[0] @ layer.matrices()[0]
    # Integer matrix product by hand.
    ref = [
        [sum(int(x_int[v, k]) * int(layer.w_int[n, k]) for k in range(11)) for n in range(6)]
        for v in range(4)
    ]
    assert out.tolist() == ref


def test_capture_input_codes_in_range_and_consistent() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, groups=4),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    ).double()
    x = _input(0, (2, 2, 6, 6), signed=True)
    _calibrated(model, x, QuantConfig(w_bits=4, a_bits=3))
    with torch.no_grad(), capture_input_codes(model) as codes:
        model(x)
        model(x * 2)
    assert set(codes) == {"0", "2", "4"}
    for name, layer in [("0", model[0]), ("2", model[2]), ("4", model[4])]:
        assert len(codes[name]) == 2
        lo, hi = layer.input_quant.int_range
        for c in codes[name]:
            assert c.dtype == torch.int64
            assert lo <= int(c.min()) and int(c.max()) <= hi
    assert model[0].input_quant.int_range == (-3, 3)  # signed 3-bit input
    assert model[2].input_quant.int_range == (0, 7)  # after ReLU: unsigned
    assert int(codes["0"][1].abs().max()) == 3  # doubled input saturates
    # Codes times the step are what the QAT forward feeds the layer.
    first = model[0].input_quant
    assert torch.allclose(codes["0"][0] * first.scale().double(), first(x), atol=1e-12)
    # Hooks are removed on exit.
    assert all(not m._forward_pre_hooks for m in model.modules())
