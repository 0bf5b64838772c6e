"""The energy regularizer with ``activity: batch``: its estimate is the exact data-mode
E_cb of the last training batch (dense and row-pruned, against hamq.hardware.estimate),
its gradient reaches the layer inputs (which ``measured`` leaves alone), and a few steps
on it lower the exact E_cb through the inputs alone."""

from __future__ import annotations

import pydantic
import pytest
import torch
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.estimate import estimate_energy
from hamq.hardware.spec import load_hardware
from hamq.quantization import QuantConfig, quantize_model
from hamq.regularizers import RegularizerConfig, build_regularizer
from hamq.sparsity.config import SparsityConfig
from hamq.sparsity.layers import attach_masks, fix_masks, resolve_masks


def model_and_data(seed: int = 0) -> tuple[nn.Sequential, torch.Tensor]:
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(12, 12, 3, padding=1, groups=4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(12 * 4 * 4, 6),
    )
    quantize_model(m, QuantConfig(w_bits=6, a_bits=5))
    x = torch.randn(16, 3, 8, 8)
    m.train()
    with torch.no_grad():
        m(x)  # calibrate the input quantizers
    return m, x


def batch_energy(preset: str = "rram-2b-40nm", **overrides):
    hw = load_hardware(preset, **overrides)
    cfg = RegularizerConfig(name="energy", activity="batch", **{"lambda": 1.0})
    return hw, build_regularizer(cfg, hw)


def on_grid(m: nn.Module) -> None:
    with torch.no_grad():
        for layer in m:
            if hasattr(layer, "weight_fake"):
                layer.weight.copy_(layer.weight_fake())


def priced_pj(m: nn.Module, reg, x: torch.Tensor) -> float:
    """The penalty's estimate after one training forward on ``x`` with the weights on
    the integer grid, in pJ; the model is left in eval mode (the steps that forward set,
    which the exact estimate then uses: the same codes)."""
    reg.attach(m)
    on_grid(m)
    m.train()
    with torch.no_grad():
        m(x)  # the training forward the penalty reads (it also moves the running ranges)
    m.eval()
    return float(reg.estimate_pj(m).detach())


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("rram-2b-40nm", {}),
        ("rram-1b", {"array.representation": "twos_complement", "input.bits_per_cycle": 2}),
    ],
)
def test_estimate_is_the_exact_e_cb_of_the_training_batch(preset: str, overrides: dict) -> None:
    m, x = model_and_data()
    hw, reg = batch_energy(preset, **overrides)
    estimate_pj = priced_pj(m, reg, x)
    exact = estimate_energy(m, x, hw).totals()["e_cb_j"]  # per inference
    assert estimate_pj * 1e-12 == pytest.approx(exact, rel=1e-6)


def test_a_large_batch_is_priced_on_its_first_samples() -> None:
    from hamq.regularizers.energy import BATCH_SAMPLES

    m, _ = model_and_data(6)
    x = torch.randn(BATCH_SAMPLES + 20, 3, 8, 8)
    hw, reg = batch_energy()
    estimate_pj = priced_pj(m, reg, x)
    exact = estimate_energy(m, x[:BATCH_SAMPLES], hw).totals()["e_cb_j"]
    assert estimate_pj * 1e-12 == pytest.approx(exact, rel=1e-6)


def test_row_pruned_layers_count_only_their_stored_rows() -> None:
    m, x = model_and_data(1)
    attach_masks(m, resolve_masks(m, SparsityConfig(sparsity=0.5, granularity="row", seed=3)))
    fix_masks(m)
    hw, reg = batch_energy()
    estimate_pj = priced_pj(m, reg, x)
    exact = estimate_energy(m, x, hw).totals()["e_cb_j"]  # per inference
    assert estimate_pj * 1e-12 == pytest.approx(exact, rel=1e-6)


def _bias_grad(activity: str) -> torch.Tensor | None:
    m, x = model_and_data(2)
    cfg = RegularizerConfig(name="energy", activity=activity, **{"lambda": 1.0})
    reg = build_regularizer(cfg, load_hardware("rram-2b-40nm"))
    reg.attach(m)
    m.train()
    m.zero_grad()
    m(x)
    reg(m).backward()
    return m[0].bias.grad


def test_gradient_reaches_the_inputs_only_with_batch_activity() -> None:
    """The first conv's bias is stored in no cell: only the inputs it drives into the
    second conv's rows connect it to E_cb."""
    assert _bias_grad("measured") is None
    grad = _bias_grad("batch")
    assert grad is not None and float(grad.abs().sum()) > 0


def test_steps_on_the_inputs_alone_lower_the_exact_e_cb() -> None:
    m, x = model_and_data(3)
    hw, reg = batch_energy()
    reg.attach(m)
    m.eval()
    before = estimate_energy(m, x, hw).totals()["e_cb_j"]
    biases = [layer.bias for layer in m if isinstance(layer, nn.Conv2d)]
    opt = torch.optim.SGD(biases, lr=0.05)
    for _ in range(20):
        m.train()
        opt.zero_grad()
        m(x)
        reg(m).backward()
        opt.step()
    m.eval()
    after = estimate_energy(m, x, hw).totals()["e_cb_j"]
    assert after < 0.9 * before


def test_normalizer_is_fixed_at_the_first_batch_and_saved() -> None:
    m, x = model_and_data(4)
    _, reg = batch_energy()
    reg.attach(m)
    m.train()
    m(x)
    reg(m)
    unit = float(reg.e_unit_pj)
    assert unit > 0 and "e_unit_pj" in reg.state_dict()
    m(x * 0.5)  # a quieter batch leaves the normalizer where it was
    reg(m)
    assert float(reg.e_unit_pj) == unit


def test_errors() -> None:
    with pytest.raises(pydantic.ValidationError, match="activity is used by energy only"):
        RegularizerConfig(name="hamming", activity="batch", **{"lambda": 1.0})
    with pytest.raises(pydantic.ValidationError, match="activity"):
        RegularizerConfig(name="energy", activity="ema", **{"lambda": 1.0})
    m, _ = model_and_data()
    _, reg = batch_energy()
    reg.attach(m)
    with pytest.raises(HamqError, match="after a training-mode forward"):
        reg(m)


def test_measured_mode_state_dict_keeps_its_keys() -> None:
    """Checkpoints of measured-mode runs written before batch activity existed still load:
    the normalizer buffer exists in batch mode only."""
    m, _ = model_and_data(5)
    reg = build_regularizer(
        RegularizerConfig(name="energy", **{"lambda": 1.0}), load_hardware("rram-2b-40nm")
    )
    reg.attach(m)
    assert all(k.startswith("act_") for k in reg.state_dict())
