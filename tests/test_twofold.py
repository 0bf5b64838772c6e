"""Twofold sparsity: the ``bits`` and ``prune`` terms against hand computations (exact
two's-complement bits from ``bin(x).count("1")``), masks on a model (resolve, attach, fix,
check), the masked forward and its gradient."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.spec import ArraySpec, HardwareSpec, TechSpec
from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import quantize_model, quantized_layers
from hamq.regularizers import RegularizerConfig, RegularizerSum, build_regularizer
from hamq.regularizers.bits import BitsRegularizer, twos_complement_bits
from hamq.sparsity.config import SparsityConfig
from hamq.sparsity.layers import (
    attach_masks,
    check_weights,
    fix_masks,
    resolve_masks,
    restore_masks,
    violations,
    zero_pruned_after_step,
)
from hamq.sparsity.masks import lfsr_mask

pytestmark = pytest.mark.usefixtures("single_thread")

HW = HardwareSpec(
    array=ArraySpec(representation="differential", cell_bits=1),
    tech=TechSpec(e_cell_pj=(0.0, 0.1), e_adc_pj=0.5, e_adc_ref_bits=6),
)


def two_layer_model(seed: int = 0, bits: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(12, 10), relu=nn.ReLU(), fc2=nn.Linear(10, 4)))
    quantize_model(model, QuantConfig(w_bits=bits, a_bits=8))
    return model


def ref_bits(q: int, bits: int) -> int:
    return bin(q & (2**bits - 1)).count("1")


def test_twos_complement_bits_by_definition() -> None:
    q = torch.arange(-127, 128)
    assert twos_complement_bits(q, 8).tolist() == [ref_bits(int(x), 8) for x in q]
    assert int(twos_complement_bits(torch.tensor(-1), 8)) == 8  # all ones


def test_bits_penalty_at_integers_is_the_exact_formula() -> None:
    model = two_layer_model()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, layer in quantized_layers(model):
            q = torch.randint(-127, 128, layer.weight.shape, generator=gen).float()
            q[:, 0] = 127  # every row reaches q_max, so the per-channel scale is exactly 1
            layer.weight.copy_(q)
    cfg = RegularizerConfig(name="bits", surrogate="interp", smooth=0.0, **{"lambda": 1.0})
    reg = build_regularizer(cfg, HW)
    layers = quantized_layers(model)
    total = sum(layer.weight.numel() for _, layer in layers)
    expected = 0.0
    for _, layer in layers:
        counts = [ref_bits(int(v), 8) for v in layer.weight.flatten()]
        expected += layer.weight.numel() / total * math.sqrt(sum(c * c for c in counts))
    assert float(reg(model).detach()) == pytest.approx(expected, rel=1e-6)


def exact_on_bits(model: nn.Module) -> int:
    return sum(
        ref_bits(int(q), layer.w_bits)
        for _, layer in quantized_layers(model)
        for q in layer.weight_int().flatten()
    )


@pytest.mark.parametrize(
    ("fields", "lr"),
    [
        ({"surrogate": "envelope"}, 1e-4),
        ({"surrogate": "interp", "smooth": 0.0}, 1e-5),  # exact table: steeper, smaller steps
        ({"surrogate": "interp"}, 1e-4),
        ({"surrogate": "sin"}, 1e-5),
    ],
    ids=["envelope", "interp-exact", "interp-smooth", "sin"],
)
def test_descent_on_bits_lowers_the_exact_on_bits(fields: dict, lr: float) -> None:
    # Weights ~U(-0.29, 0.29): one integer unit is ~0.0023, so these steps move a weight
    # a fraction of a unit; larger ones jump over the cheap codes.
    model = two_layer_model(3)
    reg = build_regularizer(RegularizerConfig(name="bits", **{"lambda": 1.0}, **fields), HW)
    assert isinstance(reg, BitsRegularizer)
    before = exact_on_bits(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(30):
        opt.zero_grad()
        reg(model).backward()
        opt.step()
    after = exact_on_bits(model)
    assert after < 0.93 * before, (before, after)


def masked_model(sparsity: float = 0.5) -> nn.Module:
    model = two_layer_model(5)
    attach_masks(model, resolve_masks(model, SparsityConfig(sparsity=sparsity)))
    return model


def test_prune_penalty_is_the_norm_outside_the_mask() -> None:
    model = masked_model()
    reg = build_regularizer(RegularizerConfig(name="prune", **{"lambda": 0.5}), HW)
    assert reg is not None
    reg.attach(model)
    expected = 0.0
    for _, layer in quantized_layers(model):
        w = layer.weight.detach()
        scale = w.abs().amax(1, keepdim=True) / 127  # per-channel, fixed point
        t = (w / scale).flatten().tolist()
        keep = layer.weight_mask.flatten().tolist()
        expected += math.sqrt(sum(x * x for x, k in zip(t, keep, strict=True) if not k))
    assert float(reg(model).detach()) == pytest.approx(0.5 * expected, rel=1e-5)


def test_descent_on_prune_moves_only_the_weights_outside_the_mask() -> None:
    model = masked_model()
    reg = build_regularizer(RegularizerConfig(name="prune", **{"lambda": 1.0}), HW)
    reg.attach(model)
    kept_before = {n: x.weight.detach()[x.weight_mask].clone() for n, x in quantized_layers(model)}
    out_before = sum(
        float(x.weight.detach()[~x.weight_mask].abs().sum()) for _, x in quantized_layers(model)
    )
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(50):
        opt.zero_grad()
        reg(model).backward()
        opt.step()
    for name, layer in quantized_layers(model):
        assert torch.equal(layer.weight.detach()[layer.weight_mask], kept_before[name])
    out_after = sum(
        float(x.weight.detach()[~x.weight_mask].abs().sum()) for _, x in quantized_layers(model)
    )
    assert out_after < 0.5 * out_before


def test_prune_needs_masks() -> None:
    reg = build_regularizer(RegularizerConfig(name="prune", **{"lambda": 1.0}), HW)
    with pytest.raises(HamqError, match="needs LFSR masks"):
        reg.attach(two_layer_model())


def test_sum_of_terms() -> None:
    model = masked_model()
    bits = build_regularizer(RegularizerConfig(name="bits", **{"lambda": 0.1}), HW)
    prune = build_regularizer(RegularizerConfig(name="prune", **{"lambda": 0.2}), HW)
    both = RegularizerSum([bits, prune])
    both.attach(model)
    assert float(both(model).detach()) == pytest.approx(
        float(bits(model).detach()) + float(prune(model).detach()), rel=1e-6
    )
    fix_masks(model)  # once the masks are fixed the prune term is 0
    assert float(prune(model).detach()) == 0.0
    assert float(both(model).detach()) == pytest.approx(float(bits(model).detach()), rel=1e-6)


def test_fixed_mask_acts_in_the_forward_and_on_the_gradient() -> None:
    model = masked_model(0.7)
    layer = quantized_layers(model)[0][1]
    ref = nn.Linear(12, 10)
    ref.load_state_dict({"weight": layer.weight.detach() * layer.weight_mask, "bias": layer.bias})
    x = torch.rand(6, 12)
    model.eval()
    fix_masks(model)
    # the fixed mask makes the quantized weights those of the zeroed float weights
    w_ref = ref.weight.detach()
    scale = w_ref.abs().amax(1, keepdim=True) / 127
    q_ref = torch.round(w_ref / scale).clamp(-127, 127)
    assert torch.equal(layer.weight_int().float(), q_ref)
    xq = layer.input_quant(x)
    assert torch.allclose(layer(x), F.linear(xq, q_ref * scale, ref.bias), atol=1e-6)
    # pruned weights get exactly no gradient
    layer.weight.grad = None
    layer(x).square().sum().backward()
    assert layer.weight.grad is not None
    assert int((layer.weight.grad[~layer.weight_mask] != 0).sum()) == 0
    assert int((layer.weight.grad[layer.weight_mask] != 0).sum()) > 0


def test_adam_momentum_cannot_revive_pruned_weights() -> None:
    model = masked_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    x = torch.rand(16, 12)
    for _ in range(5):  # dense steps: Adam builds momentum on every weight
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()
    fix_masks(model)
    zero_pruned_after_step(opt, model)
    zero_pruned_after_step(opt, model)  # installed once
    for _ in range(5):
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()
    assert violations(model) == []


def test_resolve_with_overrides_and_bad_names() -> None:
    model = two_layer_model()
    cfg = SparsityConfig(sparsity=0.5, layers={"fc2": {"sparsity": 0.0}, "fc1": {"seed": 7}})
    masks = resolve_masks(model, cfg)
    assert [(m.name, m.seed, m.kept) for m in masks] == [("fc1", 7, 60)]
    with pytest.raises(HamqError, match=r"'fc3'.*did you mean 'fc"):
        resolve_masks(model, SparsityConfig(sparsity=0.5, layers={"fc3": {"sparsity": 0.9}}))
    with pytest.raises(HamqError, match=r"quant\.skip"):
        resolve_masks(
            model, SparsityConfig(sparsity=0.5, layers={"fc2": {"seed": 3}}), skip=["fc2"]
        )


def test_restore_checks_config_fit_and_weights() -> None:
    model = masked_model()
    fix_masks(model)
    cfg = SparsityConfig(sparsity=0.5)
    stored = [m.to_dict() for m in resolve_masks(model, cfg)]
    fresh = two_layer_model(5)
    fresh.load_state_dict(model.state_dict())
    masks = restore_masks(fresh, cfg, (), stored, "test")
    assert [m.name for m in masks] == ["fc1", "fc2"] and violations(fresh) == []
    assert all(x.mask_fixed for _, x in quantized_layers(fresh))
    other = two_layer_model(5)
    other.load_state_dict(model.state_dict())
    with pytest.raises(HamqError, match="disagree with the run's config"):
        restore_masks(other, SparsityConfig(sparsity=0.5, seed=2), (), stored, "test")
    bad_shape = [dict(stored[0], shape=[10, 13]), stored[1]]
    with pytest.raises(HamqError, match="does not fit"):
        restore_masks(other, cfg, (), bad_shape, "test")
    with torch.no_grad():
        w = quantized_layers(other)[1][1].weight
        w[~lfsr_mask(tuple(w.shape), 0.5, [9, 4], 1)] = 0.25
    with pytest.raises(HamqError, match=r"layer 'fc2' has 20 non-zero weight\(s\) outside"):
        restore_masks(other, cfg, (), stored, "test")


def test_check_weights_names_the_layer() -> None:
    model = masked_model()
    masks = resolve_masks(model, SparsityConfig(sparsity=0.5))
    with pytest.raises(HamqError, match="layer 'fc1'"):
        check_weights(model, masks, "here")
