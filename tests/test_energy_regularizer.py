"""The energy regularizer: its estimate equals the exact E_cb at integer weights (on a
trained model too, with its training surrogate tied to the estimator), and a few gradient
steps on it alone lower the exact E_cb of hamq.hardware.estimate."""

from __future__ import annotations

import pydantic
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hamq.data import DataConfig, load_dataset
from hamq.errors import HamqError
from hamq.hardware.estimate import estimate_energy
from hamq.hardware.mapping import cell_energy_table
from hamq.hardware.spec import HardwareSpec, load_hardware
from hamq.models import ModelConfig, build_model
from hamq.quantization import QuantConfig, quantize_model
from hamq.quantization.convert import quantized_layers
from hamq.regularizers import RegularizerConfig, build_regularizer
from hamq.regularizers.surrogates import envelope_table


def model_and_data(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 6),
    )
    quantize_model(m, QuantConfig(w_bits=6, a_bits=4))
    x = torch.randn(32, 3, 8, 8)
    m.train()
    with torch.no_grad():
        m(x)  # calibrate
    return m, x


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("rram-2b-40nm", {}),
        ("rram-1b", {"array.representation": "twos_complement", "input.bits_per_cycle": 2}),
    ],
)
def test_estimate_matches_exact_e_cb(preset: str, overrides: dict) -> None:
    """One measuring forward (momentum: the first measurement replaces the buffer) gives
    the per-row activity of that batch, so at integer weights the estimate is exact."""
    m, x = model_and_data()
    hw = load_hardware(preset, **overrides)
    reg = build_regularizer(RegularizerConfig(name="energy", **{"lambda": 1.0}), hw)
    reg.attach(m)
    m.train()
    with torch.no_grad():
        m(x)
    # Put the weights on the integer grid so the interpolation is exact.
    with torch.no_grad():
        for layer in (m[0], m[2], m[5]):
            layer.weight.copy_(layer.weight_fake())
    m.eval()
    exact = estimate_energy(m, x, hw).totals()["e_cb_j"]
    assert float(reg.estimate_pj(m).detach()) * 1e-12 == pytest.approx(exact, rel=1e-4)


def test_gradient_steps_lower_exact_e_cb() -> None:
    m, x = model_and_data(1)
    hw = load_hardware("rram-2b-40nm")
    reg = build_regularizer(RegularizerConfig(name="energy", **{"lambda": 1.0}), hw)
    reg.attach(m)
    m.train()
    with torch.no_grad():
        m(x)
    before = estimate_energy(m, x, hw).totals()["e_cb_j"]
    weights = [p for n, p in m.named_parameters() if n.endswith("weight")]
    opt = torch.optim.Adam(weights, lr=0.02)
    for _ in range(10):
        opt.zero_grad()
        loss = reg(m)
        loss.backward()
        opt.step()
        m.train()
        with torch.no_grad():
            m(x)  # keep measuring activity, as in training
    after = estimate_energy(m, x, hw).totals()["e_cb_j"]
    assert after < 0.95 * before


def test_penalty_scale_is_like_hamming() -> None:
    """Normalized penalty ~ n_layers x mean cost per weight in ON bits: for 6-bit
    differential weights on 1-bit cells, between 0 and n_layers x 10 cells."""
    m, x = model_and_data()
    hw = load_hardware("rram-1b")
    reg = build_regularizer(RegularizerConfig(name="energy", **{"lambda": 1.0}), hw)
    reg.attach(m)
    m.train()
    with torch.no_grad():
        m(x)
    ham = build_regularizer(RegularizerConfig(name="hamming", **{"lambda": 1.0}), hw)
    p, h = float(reg(m).detach()), float(ham(m).detach())
    assert 0 < p < 3 * 10
    assert 0.2 < p / h < 5


def test_errors() -> None:
    hw = load_hardware("rram-1b")
    with pytest.raises(
        pydantic.ValidationError, match="surrogate sin is used by hamming and bits only"
    ):
        RegularizerConfig(name="energy", surrogate="sin", **{"lambda": 1.0})
    m, _ = model_and_data()
    reg = build_regularizer(RegularizerConfig(name="energy", **{"lambda": 1.0}), hw)
    with pytest.raises(HamqError, match="attach"):
        reg(m)


def test_envelope_table_keeps_exact_energy_at_its_minima() -> None:
    """With ``surrogate: envelope`` the training table is the exact per-code energy's lower
    envelope at ``slope`` stored bits' energy per unit: never above the exact table, equal
    to it at every local minimum, and 0.1 * e_bit apart between neighbours at most."""
    hw = load_hardware("rram-2b-40nm")
    cfg = RegularizerConfig(name="energy", surrogate="envelope", **{"lambda": 1.0})
    reg = build_regularizer(cfg, hw)
    exact = reg._cost_table(8, torch.device("cpu"), training=False).double()
    env = reg._cost_table(8, torch.device("cpu"), training=True).double()
    e = hw.tech.e_cell_pj
    step = 0.1 * (e[-1] - e[0]) / hw.cell_bits
    assert bool((env <= exact + 1e-6).all()) and float(env.diff().abs().max()) <= step + 1e-6
    minima = [
        i
        for i in range(1, env.numel() - 1)
        if env[i] < env[i - 1] - 1e-9 and env[i] < env[i + 1] - 1e-9
    ]
    assert minima, "the envelope has interior minima"
    assert env[minima].tolist() == pytest.approx(exact[minima].tolist(), abs=1e-5)
    assert float((exact - env).max()) > step  # it differs from the exact table elsewhere


def trained_digits_model(hw: HardwareSpec) -> tuple[nn.Module, torch.Tensor]:
    """The demo's digits CNN trained briefly the demo's way: 2 float epochs (Adam, lr
    0.01), conversion to w8a8, 2 QAT epochs with the energy regularizer (envelope
    surrogate, lambda 0.5) on ``hw``. Returns the model (eval) and the test inputs."""
    torch.manual_seed(0)
    data = load_dataset(DataConfig(name="digits"))
    m = build_model(ModelConfig(name="digits-cnn"), data.input_shape, data.num_classes)
    gen = torch.Generator().manual_seed(0)

    def epochs(n: int, opt: torch.optim.Optimizer, reg: nn.Module | None = None) -> None:
        m.train()
        for _ in range(n):
            for x, y in data.train_batches(64, gen):
                loss = F.cross_entropy(m(x), y) + (reg(m) if reg is not None else 0.0)
                opt.zero_grad()
                loss.backward()
                opt.step()

    epochs(2, torch.optim.Adam(m.parameters(), lr=0.01))
    quantize_model(m, QuantConfig(w_bits=8, a_bits=8))
    reg = build_regularizer(RegularizerConfig(name="energy", **{"lambda": 0.5}), hw)
    reg.attach(m)
    epochs(2, torch.optim.Adam(m.parameters(), lr=0.005), reg)
    return m.eval(), data.test_x


def test_trained_model_exact_estimate_and_surrogate_tie_to_the_estimator(single_thread) -> None:
    """On a model trained with the energy regularizer, at its integer weights:
    - the regularizer's exact-table estimate, with activity measured on the test inputs,
      is the estimator's data-mode E_cb on the same inputs;
    - its training surrogate (the envelope table) is never above it, and the difference is
      exactly the envelope's gap ``T[q] - T_env[q]`` of the weights off the envelope's
      attractor codes (a loop over every weight below): at an attractor both agree."""
    hw = load_hardware("rram-2b-40nm")
    m, x = trained_digits_model(hw)
    layers = [layer for _, layer in quantized_layers(m)]
    with torch.no_grad():
        for layer in layers:  # onto the integer grid; the integers do not change
            before = layer.weight_int()
            layer.weight.copy_(layer.weight_fake())
            assert torch.equal(layer.weight_int(), before)
    exact_j = estimate_energy(m, x, hw, batch_size=len(x)).totals()["e_cb_j"]

    reg = build_regularizer(RegularizerConfig(name="energy", **{"lambda": 0.5}), hw)
    reg.attach(m)
    for layer in layers:  # measure in training mode on the quantized layers only: batch
        layer.training = True  # norm and the input quantizers keep their eval behaviour
    with torch.no_grad():
        m(x)  # the first measurement replaces the buffers: the activity of exactly x
    for layer in layers:
        layer.training = False
    exact_pj = float(reg.estimate_pj(m).detach())
    surrogate_pj = float(reg.estimate_pj(m, surrogate=True).detach())
    assert exact_pj * 1e-12 == pytest.approx(exact_j, rel=1e-5)

    # The gap, weight by weight: activity of the weight's row x (exact - envelope) cost.
    e = hw.tech.e_cell_pj
    exact_table = cell_energy_table(8, hw.representation, hw.cell_bits, e)
    env_table = envelope_table(exact_table, 0.1 * (e[-1] - e[0]) / hw.cell_bits)
    gap_pj, off_attractor, weights = 0.0, 0, 0
    for i, layer in enumerate(layers):
        act = getattr(reg, f"act_{i}").double().reshape(-1).tolist()  # per row (K)
        k = len(act) // (layer.groups if isinstance(layer, nn.Conv2d) else 1)
        n_per_group = layer.weight.shape[0] // (len(act) // k)
        for c_out, row_codes in enumerate(layer.weight_int().reshape(layer.weight.shape[0], -1)):
            g = c_out // n_per_group
            for r, q in enumerate(row_codes.tolist()):
                d = float(exact_table[q + 127] - env_table[q + 127])
                assert d >= 0
                gap_pj += act[g * k + r] * d
                off_attractor += d > 0
                weights += 1
    assert surrogate_pj <= exact_pj
    assert exact_pj - surrogate_pj == pytest.approx(gap_pj, rel=1e-3)
    assert 0 < off_attractor < weights  # both kinds of weight are in the sum
