"""hamq's PCM model against IBM aihwkit's ``PCMLikeNoiseModel``, the reference the design
names: the programmed and drifted conductances of the same targets at the same times must
come from the same distribution.

Skipped without aihwkit. Install it without its dependencies (they pull a CUDA
torchvision that breaks imports) and from the wheel (the 1.2.0 source package does not
build)::

    pip install --no-deps --only-binary=:all: aihwkit
    pip install numpy scipy requests tqdm typing_extensions
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from scipy.stats import ks_2samp

from hamq.hardware.spec import DeviceSpec, load_hardware

pcm_module = pytest.importorskip(
    "aihwkit.inference.noise.pcm",
    reason="aihwkit is not installed (pip install --no-deps --only-binary=:all: aihwkit)",
)

#: Draws per target: a KS test at this size resolves a shift of ~1.5% of a sd.
N = 20_000
#: Fail when the two samples differ at this significance (some one of the 28 tests,
#: 7 levels x 4 times, fails by chance at 1e-3 about 3% of the time).
ALPHA = 1e-3


def _script():
    """``scripts/conductance_crosscheck.py``, which prints the same comparison as a table."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "conductance_crosscheck.py"
    spec = importlib.util.spec_from_file_location("conductance_crosscheck", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


def aihwkit_conductances(g_t: torch.Tensor, t_s: float, seed: int) -> torch.Tensor:
    return SCRIPT.aihwkit_conductances(g_t, t_s, seed)


def hamq_conductances(level: int, device: DeviceSpec, t_s: float, seed: int) -> torch.Tensor:
    return SCRIPT.hamq_conductances(level, N, device, t_s, seed)


@pytest.mark.parametrize("t_s", SCRIPT.TIMES_S)
def test_conductance_distributions_match_aihwkit(t_s: float) -> None:
    device = load_hardware("pcm-14nm").device
    assert device is not None and device.model == "pcm"
    for level in SCRIPT.LEVELS:
        g_t = device.g_levels_us[level]
        ours = hamq_conductances(level, device, t_s, seed=level)
        ref = aihwkit_conductances(torch.full((N,), g_t, dtype=torch.float64), t_s, 100 + level)
        stat = ks_2samp(ours.numpy(), ref.numpy())
        assert stat.pvalue > ALPHA, (level, t_s, stat)
        # means and sds of g(t) over the level agree to a few standard errors
        se = float(ref.std()) / N**0.5
        assert abs(float(ours.mean()) - float(ref.mean())) < 5 * se + 1e-9, (level, t_s)
        assert float(ours.std()) == pytest.approx(float(ref.std()), rel=0.05), (level, t_s)


def test_a_different_model_is_told_apart() -> None:
    """The test has power: 30% more programming noise is detected."""
    device = load_hardware("pcm-14nm").device
    assert device is not None
    louder = device.model_copy(update={"prog_noise_scale": 1.3})
    ours = hamq_conductances(9, louder, 3600.0, seed=1)
    ref = aihwkit_conductances(torch.full((N,), device.g_levels_us[9], dtype=torch.float64),
                               3600.0, 2)  # fmt: skip
    assert ks_2samp(ours.numpy(), ref.numpy()).pvalue < ALPHA


@pytest.mark.parametrize("per_channel", [False, True])
def test_drift_compensation_gain_matches_aihwkit(per_channel: bool) -> None:
    """hamq's compensation gain against aihwkit's ``GlobalDriftCompensation`` and
    ``PerColumnDriftCompensation`` read-outs: aihwkit reads a tile (weights ``(out, in)``)
    with one-hot inputs, so its read-out sees ``W^T`` (``(in, out)``)."""
    from aihwkit.inference.compensation.drift import (
        GlobalDriftCompensation,
        PerColumnDriftCompensation,
    )

    from hamq.hardware.noise import compensation_gain

    torch.manual_seed(0)
    w_prog = torch.randn(12, 30, dtype=torch.float64) * torch.linspace(0.1, 2.0, 12)[:, None]
    w_t = w_prog * (0.6 + 0.3 * torch.rand(12, 30, dtype=torch.float64))
    comp = PerColumnDriftCompensation() if per_channel else GlobalDriftCompensation()
    eye = comp.get_readout_tensor(30).to(torch.float64)
    ref = comp.readout(eye @ w_prog.T) / comp.readout(eye @ w_t.T)
    ours = compensation_gain(w_prog, w_t, per_channel)
    assert torch.allclose(ours.reshape(-1), ref.reshape(-1), rtol=1e-12)
    assert (ours.shape == (12, 1)) if per_channel else (ours.dim() == 0)
