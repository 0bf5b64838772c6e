"""``quant.range_code``: the code the range-setting weight maps to, and what it does to the
stored cells; held by the regularizers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hamq.config_base import validate
from hamq.errors import HamqError
from hamq.hardware.representation import popcount
from hamq.quantization import QuantConfig, quantize_model
from hamq.regularizers.hamming import hold_range


def _layer(code: int | None) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 8))
    quantize_model(m, QuantConfig(w_bits=8, a_bits=8, range_code=code))
    return m[0]


@pytest.mark.parametrize("code", [None, 96, 64])
def test_the_largest_weight_of_each_channel_maps_to_the_range_code(code: int | None) -> None:
    layer = _layer(code)
    q = layer.weight_int()
    want = 127 if code is None else code
    assert torch.equal(q.abs().amax(1), torch.full((8,), want))
    assert layer.range_code == want
    # every weight is within the step: |w - q * scale| <= scale / 2
    err = (layer.weight - q * layer.weight_scale()).abs()
    assert bool((err <= layer.weight_scale() / 2 + 1e-7).all())


def test_a_code_with_fewer_on_bits_stores_the_range_in_fewer_cells() -> None:
    """At 8 bits, 127 is seven ON bits and 64 is one: the eight range-setting weights hold
    48 fewer ON bits (differential, 1-bit cells)."""
    on = {c: int(popcount(_layer(c).weight_int().abs().amax(1)).sum()) for c in (None, 64)}
    assert on == {None: 8 * 7, 64: 8 * 1}


def test_range_code_is_validated_and_held() -> None:
    with pytest.raises(HamqError, match=r"range_code = 100 exceeds the largest 7-bit code 63"):
        validate(QuantConfig, {"w_bits": 7, "range_code": 100}, source="q")
    t = torch.tensor([64.0, 63.4, -64.0, 10.0], requires_grad=True)
    cost = hold_range(t.abs(), t, 64)
    cost.sum().backward()
    assert t.grad is not None and t.grad.tolist() == [0.0, 1.0, 0.0, 1.0]
