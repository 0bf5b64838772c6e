"""The prune term's proximal update (``sparsity.update: proximal``): the operator against
independent references (the block soft-threshold, the first-order conditions, a numerical
minimizer), the optimizer hook on a masked layer, and a run trained and resumed with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.optimize import minimize

from hamq.sparsity.config import SparsityConfig
from hamq.sparsity.layers import attach_masks, fix_masks, resolve_masks
from hamq.sparsity.masks import lfsr_mask
from hamq.sparsity.proximal import prox_after_step, prox_step, scaled_group_prox
from hamq.training.config import load_config
from hamq.training.trainer import train_run
from quant_layers import calibrated_conv
from test_sparsity_training import LAYERS
from test_sparsity_training import TINY as PRUNED_TINY


def objective(w: np.ndarray, v: np.ndarray, s: np.ndarray, threshold: float) -> float:
    return 0.5 * float(np.sum((w - v) ** 2)) + threshold * float(np.linalg.norm(w / s))


def test_equal_scales_give_the_block_soft_threshold() -> None:
    torch.manual_seed(0)
    v = torch.randn(200, dtype=torch.float64)
    s = torch.full_like(v, 0.02)
    threshold = 0.01
    # One scale: ||w|| shrinks by threshold / s, the direction kept.
    shrink = threshold / 0.02
    expected = v * (1 - shrink / float(v.norm()))
    assert torch.allclose(scaled_group_prox(v, s, threshold), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_channel_scales_satisfy_the_optimality_condition(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(60, generator=gen, dtype=torch.float64) * 0.05
    s = 0.001 + 0.01 * torch.rand(60, generator=gen, dtype=torch.float64)
    threshold = 0.3 * float(torch.linalg.vector_norm(v * s))  # inside the nonzero branch
    w = scaled_group_prox(v, s, threshold)
    assert float(w.norm()) > 0
    # (w - v) + threshold * (w / s^2) / ||w / s|| = 0
    residual = (w - v) + threshold * (w / s**2) / torch.linalg.vector_norm(w / s)
    assert float(residual.abs().max()) < 1e-12 * max(1.0, float(v.abs().max()) * 1e3)
    # and no point a numerical minimizer finds is better
    found = minimize(objective, v.numpy(), args=(v.numpy(), s.numpy(), threshold), method="BFGS",
                     options={"gtol": 1e-12, "maxiter": 10_000})  # fmt: skip
    ours = objective(w.numpy(), v.numpy(), s.numpy(), threshold)
    assert ours <= found.fun + 1e-12
    assert np.allclose(w.numpy(), found.x, atol=1e-5 * float(v.abs().max()))


def test_the_group_reaches_exactly_zero_and_never_crosses_it() -> None:
    torch.manual_seed(3)
    v = torch.randn(50, dtype=torch.float64)
    s = 0.5 + torch.rand(50, dtype=torch.float64)
    edge = float(torch.linalg.vector_norm(v * s))  # the first-order condition at 0
    assert torch.count_nonzero(scaled_group_prox(v, s, edge)) == 0
    assert torch.count_nonzero(scaled_group_prox(v, s, 2 * edge)) == 0
    for frac in (0.999, 0.5, 0.01):
        w = scaled_group_prox(v, s, frac * edge)
        assert bool((w * v >= 0).all()) and bool((w.abs() <= v.abs()).all())
    near = scaled_group_prox(v, s, 0.999 * edge)
    assert 0 < float(near.norm()) < 0.01 * float(v.norm())  # continuous at the edge
    assert torch.equal(scaled_group_prox(v, s, 0.0), v)


def test_bad_operator_arguments() -> None:
    v = torch.ones(3)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        scaled_group_prox(v, v, -1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        scaled_group_prox(v, torch.ones(4), 1.0)


def _masked_conv(sparsity: float = 0.5):
    conv, _ = calibrated_conv(4, 8, batch=2, side=5)
    model = torch.nn.Sequential(conv)
    cfg = SparsityConfig(sparsity=sparsity)
    attach_masks(model, resolve_masks(model, cfg, ()))
    return model, conv


def test_prox_step_shrinks_only_the_pruned_weights_at_the_group_lr() -> None:
    model, conv = _masked_conv()
    before = conv.weight.detach().clone()
    out = ~conv.weight_mask.expand_as(before)
    scale = conv.weight_scale().expand_as(before)
    opt = torch.optim.SGD(
        [{"params": [conv.bias], "lr": 9.0}, {"params": [conv.weight], "lr": 0.05}]
    )
    lam = 0.02
    prox_step(model, opt, lam)
    after = conv.weight.detach()
    assert torch.equal(after[~out], before[~out])
    expected = scaled_group_prox(before[out], scale[out], 0.05 * lam)
    assert torch.allclose(after[out], expected, rtol=0, atol=1e-7)
    assert float(after[out].norm()) < float(before[out].norm())
    fix_masks(model)  # once the masks are fixed the step leaves the layer alone
    fixed = conv.weight.detach().clone()
    prox_step(model, opt, lam)
    assert torch.equal(conv.weight.detach(), fixed)


def _train_steps(update: str, steps: int = 150) -> float:
    """SGD with momentum 0.9 on a smooth loss plus the prune term as a loss term or a
    proximal step; returns the norm outside the mask at the end (integer units)."""
    model, conv = _masked_conv()
    target = torch.randn_like(conv.weight) * 0.1
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    lam = 0.05
    out = ~conv.weight_mask.expand_as(conv.weight)
    if update == "proximal":
        prox_after_step(opt, model, lam)
        prox_after_step(opt, model, lam)  # installed once however often it is asked
    for _ in range(steps):
        opt.zero_grad()
        loss = ((conv.weight - target) ** 2).sum() * 0.01
        if update == "gradient":
            loss = loss + lam * torch.linalg.vector_norm((conv.weight / conv.weight_scale())[out])
        loss.backward()
        opt.step()
    return float(torch.linalg.vector_norm((conv.weight / conv.weight_scale()).detach()[out]))


def test_proximal_settles_at_zero_where_the_gradient_term_oscillates() -> None:
    assert _train_steps("proximal") == 0.0
    assert _train_steps("gradient") > 0.1  # momentum keeps carrying them past 0


TINY = [*PRUNED_TINY, "sparsity.update=proximal"]


def test_proximal_run_trains_and_resumes_to_the_same_record(tmp_path: Path) -> None:
    cfg = load_config(None, TINY)
    full = train_run(cfg, tmp_path / "full", progress=False)
    assert full is not None
    assert [h["reg"] for h in full["history"]] == [0.0] * 4  # no loss term: it is a step
    out = tmp_path / "resumed"
    assert train_run(cfg, out, stop_after=2, progress=False) is None  # after the prox phase
    # The masks are not fixed yet, but the proximal steps have put every weight outside
    # them at exactly 0 (the gradient term under Adam leaves them about as large as the
    # kept ones after this epoch).
    saved = load_file(str(out / "checkpoint.safetensors"))
    for name, shape in LAYERS.items():
        w = saved[f"model/{name}.weight"]
        keep = lfsr_mask(shape, 0.5, [9, 4], 1)
        assert int(torch.count_nonzero(w[~keep])) == 0, name
        assert int(torch.count_nonzero(w[keep])) > 0.9 * int(keep.sum()), name
    resumed = train_run(cfg, out, resume=True, progress=False)
    assert resumed is not None and resumed["history"] == full["history"]
    record = json.loads((tmp_path / "full" / "run.json").read_text())
    assert record["config"]["sparsity"]["update"] == "proximal"
