"""``train.select_from``: validation selection keeps no QAT epoch before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hamq.cli.main import main
from hostile import refused


def test_selection_starts_at_select_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(out), "--quiet", "--set", "train.float_epochs=1",
              "--set", "train.qat_epochs=3", "--set", "train.select_from=2"])  # fmt: skip
    assert exc.value.code in (0, None), capsys.readouterr().err
    record = json.loads((out / "run.json").read_text())
    assert record["evaluation"]["selected_epoch"] == 3  # float epoch 0, QAT epochs 1-3
    assert "select_from: 2" in (out / "config.yaml").read_text()


def test_default_is_left_out_of_the_saved_config(tiny_run: Path) -> None:
    assert "select_from" not in (tiny_run / "config.yaml").read_text()


def test_select_from_past_the_last_epoch_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--out", str(tmp_path / "r"), "--set", "train.qat_epochs=3",
            "--set", "train.select_from=3"]  # fmt: skip
    refused(capsys, args, ["train.select_from", "qat_epochs"])
