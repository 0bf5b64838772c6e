"""End to end on the embedded default: ``hamq demo``, the README's main job, through the real
entry point, run once in the suite (the tiny end-to-end training is in test_cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_hamq_cuts_on_cells_by_half_within_2_points(tmp_path: Path) -> None:
    """The core issue asked for >= 30% fewer ON cells within 2 pp; with the envelope
    surrogate we measured 61-66% at -0.8 to -1.4 pp on three machines, so the bar is 50%.
    (Before the demo set ``train.select_from``, best_val kept an early QAT epoch of two
    HamQ lambdas on the 2026-12-06 machines by one validation image: 30%.)"""
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "hamq", "demo", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {
        "w8-baseline", "w8-l1-0.02", "w8-l1-0.05",
        "w8-hamming-0.5", "w8-hamming-2", "w8-hamming-8",
    }  # fmt: skip
    assert all(r["status"] == "ok" for r in rows.values())
    base = rows["w8-baseline"]
    assert base["accuracy"] >= 0.95
    # the best HamQ lambda within 2 pp (360 test images: 7 of them); which lambda it is
    # moves with the machine's float rounding, so the claim is about the best of the three
    within = [r for n, r in rows.items() if n.startswith("w8-hamming")
              and r["accuracy"] >= base["accuracy"] - 0.02]  # fmt: skip
    assert within, "no HamQ run within 2 pp of the baseline"
    ham = max(within, key=lambda r: 1 - r["cells_on"] / base["cells_on"])
    assert 1 - ham["cells_on"] / base["cells_on"] >= 0.50
    assert ham["cells_on_reduction"] == pytest.approx(1 - ham["cells_on"] / base["cells_on"])
    assert ham["e_cb_reduction"] == pytest.approx(1 - ham["e_cb_j"] / base["e_cb_j"])
    # every run of the demo shares the baseline's float stage (share_float)
    record = json.loads((out / "w8-hamming-0.5" / "run.json").read_text())
    assert record["config"]["train"]["init_from"] == str(out / "w8-baseline")
    assert (out / "report.md").is_file() and (out / "pareto.png").is_file()
