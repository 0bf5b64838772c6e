"""What a run writes: file modes under the user's umask, and the conversion it records."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from hamq.data.cache import cached
from hamq.models import ModelConfig, build_model
from hamq.quantization import QuantConfig, quantize_model
from hamq.training.checkpoint import atomic_write_text, save_checkpoint
from hostile import call


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Set the process umask to the test's parameter, restore it afterwards."""
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077, 0o027], indirect=True)
def test_atomic_writes_keep_the_umask(umask: int, tmp_path: Path) -> None:
    expected = 0o666 & ~umask  # what open() would give
    atomic_write_text(tmp_path / "a.json", "{}")
    save_checkpoint(tmp_path / "c.safetensors", {"w": torch.zeros(2)}, {"epoch": 0})
    cached("k", tmp_path, [], {}, lambda: {"x": torch.zeros(1)}, tmp_path / "cache")
    (tmp_path / "reference").write_text("x")
    assert mode(tmp_path / "reference") == expected
    written = [tmp_path / "a.json", tmp_path / "c.safetensors", *(tmp_path / "cache").iterdir()]
    assert len(written) == 4
    for p in written:
        assert mode(p) == expected, (p.name, oct(mode(p)))


@pytest.mark.parametrize("umask", [0o027], indirect=True)
def test_a_run_folder_keeps_the_umask(
    umask: int, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--quiet"]
    args += ["--set", "train.float_epochs=0", "--set", "train.qat_epochs=1"]
    code, _, err = call(capsys, args)
    assert code == 0, err
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "best.safetensors", "checkpoint.safetensors", "config.yaml", "model.safetensors",
        "run.json",
    ]  # fmt: skip
    assert {p.name: mode(p) for p in out.iterdir()} == dict.fromkeys(files, 0o640)


def test_quantize_model_reports_layers_already_quantized() -> None:
    model = build_model(ModelConfig(), (1, 8, 8), 10)
    first = quantize_model(model, QuantConfig(w_bits=4, a_bits=6))
    assert [n for n, _ in first.converted] == ["features.0", "features.3", "classifier"]
    assert first.already_quantized == []
    again = quantize_model(model, QuantConfig(w_bits=8))
    assert again.converted == []
    assert again.already_quantized == [
        ("features.0", "QuantConv2d w4a6"),
        ("features.3", "QuantConv2d w4a6"),
        ("classifier", "QuantLinear w4a6"),
    ]
    assert "already quantized, kept as is: 3 layer(s)" in str(again)
    assert again.to_dict()["already_quantized"][2] == {
        "name": "classifier",
        "layer": "QuantLinear w4a6",
    }
    # the BatchNorms are still reported as kept in float, the quantizers inside are not
    assert [n for n, _ in again.skipped] == ["features.1", "features.4"]


def test_resumed_qat_only_run_records_its_conversion(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """float_epochs 0: a run stopped and resumed records the same conversion (and the same
    record) as one trained in one go, not ``converted: []``."""
    sets = ["--quiet", "--set", "train.float_epochs=0", "--set", "train.qat_epochs=2"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert call(capsys, ["train", "--out", str(whole), *sets])[0] == 0
    assert call(capsys, ["train", "--out", str(part), "--stop-after", "1", *sets])[0] == 0
    assert call(capsys, ["train", "--out", str(part), "--resume", *sets])[0] == 0
    a = json.loads((whole / "run.json").read_text())
    b = json.loads((part / "run.json").read_text())
    assert [c["name"] for c in b["conversion"]["converted"]] == [
        "features.0",
        "features.3",
        "classifier",
    ]
    assert b["conversion"] == a["conversion"]
    for key in ("accuracy", "cells", "layers", "history", "model_sha256"):
        assert b[key] == a[key], key
