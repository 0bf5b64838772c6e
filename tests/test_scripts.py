"""Helper scripts under ``scripts/`` against what hamq itself records."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from hamq.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weight_codes_popcounts_add_up_to_the_recorded_on_cells(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["train", "--out", str(out), "--set", "train.float_epochs=0", "--set",
            "train.qat_epochs=1", "--quiet"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    counts = load_script("weight_codes").code_counts(out)
    record = json.loads((out / "run.json").read_text())
    # Differential pair, 1-bit cells: a weight q turns on popcount(|q|) cells.
    on = sum(int(n) * bin(q).count("1") for q, n in enumerate(counts.tolist()))
    assert on == record["cells"]["on"]
    assert int(counts.sum()) == sum(layer["weights"] for layer in record["layers"])


def test_float_stage_table_reads_what_the_run_recorded(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["train", "--out", str(out), "--set", "train.float_epochs=2", "--set",
            "train.qat_epochs=1", "--quiet"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    record = json.loads((out / "run.json").read_text())
    line = load_script("float_stage").row(out)
    cells = [c.strip() for c in line.strip("|").split("|")]
    stage = record["float_stage"]
    assert cells[1] == "2"
    assert cells[4].startswith(f"{100 * stage['test_accuracy']:.2f}%")
    assert f"({stage['test_correct']} / {stage['test_samples']})" in cells[4]
    assert cells[6] == f"{record['timing']['float_wall_s'] / 60:.1f} min"
