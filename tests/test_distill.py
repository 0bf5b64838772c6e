"""Knowledge distillation in QAT (``train.distill``): the loss against scipy's KL
divergence, the teacher being the float weights QAT starts from, resume, bad configs."""

from __future__ import annotations

import math
from pathlib import Path

import pydantic
import pytest
import torch
from scipy.special import softmax
from scipy.stats import entropy

from hamq.errors import HamqError
from hamq.training.config import TrainConfig
from hamq.training.distill import kd_loss
from hamq.training.trainer import train_run


def test_kd_loss_is_t2_times_the_mean_kl_divergence() -> None:
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen) * 3
    t = 2.5
    ref = sum(
        entropy(softmax(teacher[i].double().numpy() / t), softmax(student[i].double().numpy() / t))
        for i in range(5)
    ) / 5 * t**2  # fmt: skip
    assert float(kd_loss(student, teacher, t)) == pytest.approx(ref, rel=1e-5)
    assert float(kd_loss(teacher, teacher, t)) == pytest.approx(0.0, abs=1e-6)


def test_kd_gradient_reaches_the_student_only() -> None:
    student = torch.randn(3, 4, requires_grad=True)
    teacher = torch.randn(3, 4, requires_grad=True)
    kd_loss(student, teacher, 4.0).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    assert teacher.grad is None


def _cfg(seed: int = 0, **train) -> TrainConfig:
    return TrainConfig.model_validate(
        {"seed": seed, "train": {"float_epochs": 1, "qat_epochs": 2, "device": "cpu", **train},
         "data": {"train_limit": 256}}
    )  # fmt: skip


def test_a_distilled_run_logs_its_kd_term_in_qat_only(tmp_path: Path) -> None:
    record = train_run(_cfg(distill=0.5), tmp_path / "kd", progress=False)
    assert record is not None
    float_epochs = [h for h in record["history"] if h["stage"] == "float"]
    qat_epochs = [h for h in record["history"] if h["stage"] == "qat"]
    assert all("kd" not in h for h in float_epochs)
    assert all(math.isfinite(h["kd"]) and h["kd"] > 0 for h in qat_epochs)
    # the task loss is the mix: loss = 0.5 ce + 0.5 kd (no regularizer)
    for h in qat_epochs:
        assert h["loss"] == pytest.approx(0.5 * h["ce"] + 0.5 * h["kd"], rel=1e-6)
    plain = train_run(_cfg(), tmp_path / "plain", progress=False)
    assert plain is not None and all("kd" not in h for h in plain["history"])
    # same float stage, then another QAT loss
    assert plain["history"][0] == record["history"][0]
    assert plain["history"][1]["ce"] != record["history"][1]["ce"]


def test_resumed_distilled_run_reloads_its_teacher(tmp_path: Path) -> None:
    full = train_run(_cfg(distill=0.5), tmp_path / "full", progress=False)
    out = tmp_path / "resumed"
    assert train_run(_cfg(distill=0.5), out, stop_after=2, progress=False) is None  # mid-QAT
    again = train_run(_cfg(distill=0.5), out, resume=True, progress=False)
    assert full is not None and again is not None
    assert again["history"] == full["history"] and again["accuracy"] == full["accuracy"]


def test_bad_distill_configs_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="needs a float model to learn from"):
        _cfg(float_epochs=0, distill=0.5)
    with pytest.raises(pydantic.ValidationError, match="distill_temperature is set"):
        _cfg(distill_temperature=2.0)
    with pytest.raises(pydantic.ValidationError, match="distill"):
        _cfg(distill=1.0)


def _from(init: Path, **train) -> TrainConfig:
    return _cfg(init_from=str(init), **train)


def test_distilled_float_stage_learns_from_init_from(tmp_path: Path) -> None:
    dense = tmp_path / "dense"
    assert train_run(_cfg(), dense, progress=False) is not None
    cfg = _from(dense, distill=0.5, distill_float=True)
    record = train_run(cfg, tmp_path / "retrain", progress=False)
    assert record is not None
    assert all(math.isfinite(h["kd"]) and h["kd"] >= 0 for h in record["history"])
    assert record["history"][0]["stage"] == "float"  # the float epoch was distilled too
    out = tmp_path / "resumed"
    assert train_run(cfg, out, stop_after=1, progress=False) is None  # after the float epoch
    again = train_run(cfg, out, resume=True, progress=False)
    assert again is not None and again["history"] == record["history"]


def test_an_explicit_teacher_teaches_qat(tmp_path: Path) -> None:
    dense = tmp_path / "dense"
    assert train_run(_cfg(), dense, progress=False) is not None
    own = train_run(_from(dense, float_epochs=0, distill=0.5), tmp_path / "own", progress=False)
    other = tmp_path / "other"
    assert train_run(_cfg(seed=1), other, progress=False) is not None
    taught = train_run(
        _from(dense, float_epochs=0, distill=0.5, teacher=str(other)), tmp_path / "t",
        progress=False,
    )  # fmt: skip
    assert own is not None and taught is not None
    # another teacher, another KD term from the first step on
    assert own["history"][0]["kd"] != taught["history"][0]["kd"]


def test_bad_teacher_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"train\.teacher is set but"):
        _cfg(teacher="x")
    with pytest.raises(pydantic.ValidationError, match="distill_float is set but"):
        _cfg(distill_float=True)
    with pytest.raises(HamqError, match="needs a teacher for the float stage"):
        train_run(_cfg(distill=0.5, distill_float=True), tmp_path / "x", progress=False)
    with pytest.raises(pydantic.ValidationError, match="no float stage to distil in"):
        _from(tmp_path, float_epochs=0, distill=0.5, distill_float=True)
