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


def test_a_run_from_before_a_field_existed_is_the_same_run(tiny_run: Path, tmp_path: Path) -> None:
    """A stored config lacking a field added later (here quant.range_code, train.select_from)
    reads as that field's default: the run is reused, not retrained or refused."""
    import shutil

    import yaml

    from hamq.training.config import load_config
    from hamq.training.trainer import finished_record, same_config

    run = tmp_path / "old"
    shutil.copytree(tiny_run, run)
    cfg = load_config(run / "config.yaml")
    record = json.loads((run / "run.json").read_text())
    del record["config"]["quant"]["range_code"]
    (run / "run.json").write_text(json.dumps(record))
    assert finished_record(cfg, run) is not None
    assert same_config(record["config"], cfg)
    other = yaml.safe_load((run / "config.yaml").read_text())
    other["quant"]["range_code"] = 5
    assert not same_config(other, cfg)
    assert not same_config({"quant": {"w_bits": 99}}, cfg)  # invalid: not the same, no error
