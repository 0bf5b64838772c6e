"""scripts/readme_demo.py rewrites the README's demo block from a demo folder (a fixture
written by hand here, not a demo run)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from scipy import stats as st

from hamq.experiments.sweep import add_reductions, write_csv

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "readme_demo", REPO / "scripts" / "readme_demo.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MACHINE = {"python": "3.11.7", "torch": "2.13.0+cpu", "cpu": "x86_64", "threads": 2,
           "device": "cpu"}  # fmt: skip


def _demo_folder(folder: Path, test_samples: int | None = 360) -> None:
    """Five runs, seed 0, 360 test images: accuracies are k / 360."""
    spec = [  # name, regularizer, lambda, correct of 360, ON cells, E_cb (J), E_cb&AD (J)
        ("w8-baseline", "none", 0.0, 356, 15000, 2.0e-8, 2.5e-7),
        ("w8-l1-0.02", "l1", 0.02, 348, 8000, 1.0e-8, 2.4e-7),
        ("w8-hamming-0.5", "hamming", 0.5, 353, 5000, 8.0e-9, 2.38e-7),
        ("w8-hamming-2", "hamming", 2.0, 353, 4500, 9.0e-9, 2.39e-7),
        ("w8-hamming-8", "hamming", 8.0, 340, 3000, 6.0e-9, 2.36e-7),
    ]
    rows = []
    for name, reg, lam, correct, on, e_cb, e_ad in spec:
        row = {"name": name, "status": "ok", "seed": 0, "w_bits": 8, "regularizer": reg,
               "lambda": lam, "accuracy": correct / 360, "cells_on": on,
               "cells_total": 30000, "e_cb_j": e_cb, "e_cb_ad_j": e_ad}  # fmt: skip
        if test_samples:
            row["test_samples"] = test_samples
        rows.append(row)
        (folder / name).mkdir(parents=True)
        (folder / name / "run.json").write_text(
            json.dumps({"seed": 0, "machine": MACHINE, "layers": [{"hw_hist": [1, 2]}]})
        )
    add_reductions(rows)
    write_csv(rows, folder / "results.csv")


README = """# x

Intro stays.

<!-- demo:begin -->
old numbers, typed by hand: 98.89%, -0.83 pp
<!-- demo:end -->

## Next
Tail stays, byte for byte.\t
"""


def test_block_is_rewritten_from_the_demo_folder(tmp_path: Path) -> None:
    script = load_script()
    _demo_folder(tmp_path / "demo")
    readme = tmp_path / "README.md"
    readme.write_text(README)
    rows, machine, seed = script.read_demo(tmp_path / "demo")
    block = script.render_block(rows, script.machine_text(machine), seed, "2026-01-02")
    new = script.replace_block(README, block)
    head, rest = new.split("<!-- demo:begin -->\n")
    body, tail = rest.split("\n<!-- demo:end -->")
    assert head == "# x\n\nIntro stays.\n\n"
    assert tail == "\n\n## Next\nTail stays, byte for byte.\t\n"
    lines = body.splitlines()
    assert lines[0] == (
        "Written by `scripts/readme_demo.py` from a demo run on 2026-01-02 (x86_64 CPU, "
        "2 torch threads, torch 2.13.0+cpu, Python 3.11.7; seed 0); `hamq demo` printed:"
    )
    # The table as the demo prints it (without its column notes): 356/360 = 98.89%, ...
    table = [x for x in lines if x.startswith("|")]
    assert len(table) == 2 + 5
    assert table[2].startswith("| w8-baseline | 98.89% |")
    assert table[4].startswith("| w8-hamming-0.5 | 98.06% |")
    assert "- Δacc (pp):" not in body
    # HamQ within 1 pp (-0.83 pp): λ 0.5 and 2 tie on accuracy, λ 0.5 saves more E_cb (60%
    # against 55%); λ 8 saves most but loses 4.44 pp. L1: no run within 1 pp (-2.22), so
    # the one with the smallest loss.
    ci = st.binomtest(356, 360).proportion_ci(0.95, method="wilson")
    assert lines[-1] == (
        f"The baseline reaches 98.89% (95% CI {100 * ci.low:.1f}-{100 * ci.high:.1f}% on 360 "
        "test samples); HamQ λ 0.5 (`w8-hamming-0.5`) removes 66.7% of the ON cells and 60.0% "
        "of E_cb at -0.83 pp; L1 λ 0.02 (`w8-l1-0.02`) removes 46.7% of the ON cells and "
        "50.0% of E_cb at -2.22 pp. One test sample is 0.28 pp."
    )
    # Through main(): same block (today's date), file rewritten, idempotent apart from it.
    assert script.main(["--demo", str(tmp_path / "demo"), "--readme", str(readme)]) == 0
    written = readme.read_text()
    assert written.startswith(head) and written.endswith(tail)
    assert lines[-1] in written and "old numbers" not in written


def test_without_test_sizes_no_interval_is_claimed(tmp_path: Path) -> None:
    script = load_script()
    _demo_folder(tmp_path / "demo", test_samples=None)
    rows, _, seed = script.read_demo(tmp_path / "demo")
    block = script.render_block(rows, "m", seed, "d", seconds=26.4)
    assert "(m; seed 0 in 26 s)" in block
    assert block.splitlines()[-1].startswith("The baseline reaches 98.89%; HamQ λ 0.5")
    assert "CI" not in block and "One test sample" not in block


def test_markers_must_be_there_once_and_in_order() -> None:
    script = load_script()
    for bad in ("no markers", "<!-- demo:end -->\n<!-- demo:begin -->",
                "<!-- demo:begin --><!-- demo:begin --><!-- demo:end -->"):  # fmt: skip
        with pytest.raises(ValueError):
            script.replace_block(bad, "x")
    assert script.replace_block("a<!-- demo:begin -->b<!-- demo:end -->c", "new\n") == (
        "a<!-- demo:begin -->\nnew\n<!-- demo:end -->c"
    )


def test_machine_in_words() -> None:
    script = load_script()
    assert script.machine_text(MACHINE, "AMD EPYC", 2) == (
        "2-core AMD EPYC CPU, 2 torch threads, torch 2.13.0+cpu, Python 3.11.7"
    )
    gpu = {**MACHINE, "gpu": "NVIDIA H100 80GB HBM3", "device": "cuda"}
    assert script.machine_text(gpu).startswith("NVIDIA H100 80GB HBM3 GPU, 2 torch threads")


def test_the_real_readme_has_the_markers() -> None:
    text = (REPO / "README.md").read_text()
    assert text.count("<!-- demo:begin -->") == 1 and text.count("<!-- demo:end -->") == 1


def test_run_trains_a_fresh_demo_through_the_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = load_script()
    calls = []

    def fake_run(cmd: list[str], check: bool, stdout: object) -> None:
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        assert not out.exists()  # a fresh folder: nothing reused, the time is a whole demo
        _demo_folder(out)

    monkeypatch.setattr(script.subprocess, "run", fake_run)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert script.main(["--run", "--readme", str(readme)]) == 0
    assert calls and calls[0][1:4] == ["-m", "hamq", "demo"]
    text = readme.read_text()
    assert "-core " in text and " s); `hamq demo` printed:" in text
    assert "HamQ λ 0.5 (`w8-hamming-0.5`) removes 66.7%" in text
