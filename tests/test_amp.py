"""bfloat16 autocast (``train.amp``) on the CPU: the float stage trains under it, QAT too
unless ``train.amp_qat`` is false, and evaluation never does."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import torch

from hamq.training import trainer
from hamq.training.config import TrainConfig


def _logit_dtypes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **train) -> list:
    seen: list[tuple[torch.dtype, bool]] = []
    real = trainer.F.cross_entropy

    def spy(logits, *args, **kwargs):
        seen.append(logits.dtype)
        return real(logits, *args, **kwargs)

    monkeypatch.setattr(trainer.F, "cross_entropy", spy)
    cfg = TrainConfig.model_validate(
        {"train": {"float_epochs": 1, "qat_epochs": 1, "device": "cpu", **train},
         "data": {"train_limit": 256}}
    )  # fmt: skip
    record = trainer.train_run(cfg, tmp_path / "run", progress=False)
    assert record is not None and 0 <= record["accuracy"] <= 1
    return seen


def test_amp_on_cpu_float_stage_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _logit_dtypes(tmp_path, monkeypatch, amp=True, amp_qat=False)
    half = len(seen) // 2  # one float epoch, then one QAT epoch of the same batches
    assert set(seen[:half]) == {torch.bfloat16}
    assert set(seen[half:]) == {torch.float32}


def test_amp_on_cpu_both_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(_logit_dtypes(tmp_path, monkeypatch, amp=True)) == {torch.bfloat16}


def test_amp_off_trains_in_float32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(_logit_dtypes(tmp_path, monkeypatch)) == {torch.float32}


def test_amp_qat_without_amp_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="amp_qat = false only matters"):
        TrainConfig.model_validate({"train": {"amp_qat": False}})
