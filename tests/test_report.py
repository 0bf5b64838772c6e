"""The sweep report: table notes and intervals, energy units, label placement, the plots
and re-rendering from results.csv and run folders (no training: rows and run folders are
written by hand)."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pytest
from scipy import stats as st

from hamq.cli.main import main
from hamq.experiments.report import (
    layer_pair,
    mean_layers,
    parse_csv_row,
    pick_layer_setting,
    place_labels,
    read_rows,
    write_report,
)
from hamq.experiments.summary import seed_summary
from hamq.experiments.sweep import add_reductions, format_table, write_csv
from hamq.experiments.units import energy_unit

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("values", "unit"),
    [
        ([5.476e-7, 9.28e-6], "µJ"),
        ([5.476e-7], "nJ"),
        ([2.265e-8, None], "nJ"),
        ([1.11e-5], "µJ"),
        ([7.9e-14], "fJ"),
        ([3.0e-3], "mJ"),
        ([2.0], "J"),
        ([], "nJ"),
        ([0.0], "nJ"),
        ([1e-9], "nJ"),
        ([9.99e-7], "nJ"),
    ],
)
def test_energy_unit_reads_between_1_and_1000(values: list, unit: str) -> None:
    name, size = energy_unit(values)
    assert name == unit
    top = max((abs(v) for v in values if v), default=0.0)
    if top:
        assert 1 <= top / size < 1000


def _row(seed: int, reg: str, lam: float, acc: float, cells: int, e_cb: float, **kw) -> dict:
    sfx = f"-s{seed}"
    name = f"w8-{reg}-{lam:g}{sfx}" if reg != "none" else f"w8-baseline{sfx}"
    return {
        "name": name,
        "status": "ok",
        "seed": seed,
        "w_bits": 8,
        "regularizer": reg,
        "lambda": lam,
        "accuracy": acc,
        "cells_on": cells,
        "cells_total": 1000,
        "e_cb_j": e_cb,
        "e_cb_ad_j": e_cb + 9e-6,
        "hw_hist": [5, 3, 2],
        **kw,
    }


def test_table_gives_the_wilson_interval_and_explains_its_columns() -> None:
    rows = [
        _row(0, "none", 0.0, 324 / 360, 100, 5.5e-7, test_samples=360),
        _row(0, "hamming", 0.5, 0.8, 50, 2.5e-7),  # an older row: no test_samples
    ]
    add_reductions(rows)
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0] == (
        "| run | accuracy | 95% CI | Δacc (pp) | ON cells | ON red. | E_cb (nJ) | E_cb&AD (µJ) "
        "| E_cb red. | E_cb&AD red. |"
    )
    ci = st.binomtest(324, 360).proportion_ci(0.95, method="wilson")
    assert lines[2] == (
        f"| w8-baseline-s0 | 90.00% | [{100 * ci.low:.2f}, {100 * ci.high:.2f}] | +0.00 | 100 "
        "| 0.0% | 550 | 9.55 | 0.0% | 0.0% |"
    )
    assert lines[3].startswith("| w8-hamming-0.5-s0 | 80.00% |  | -10.00 | 50 | 50.0% | 250 |")
    notes = text.split("\n\n", 1)[1].splitlines()
    # One line per column, and the method names.
    for start in ("- accuracy:", "- 95% CI: Wilson", "- Δacc (pp):", "- ON cells:", "- E_cb:",
                  "- E_cb&AD: E_cb plus", "- E_cb red., E_cb&AD red.:", "- Methods:"):  # fmt: skip
        assert sum(x.startswith(start) for x in notes) == 1, start
    assert "n = 360" in text and "blank where a run does not record" in text
    assert '"hamming" is HamQ' in text and "ON red.: fewer ON cells than the baseline" in text
    assert "|" not in "".join(notes).replace("`", "")
    assert not re.search(r"\de[+-]\d", text)  # no 1.1e+04 or 5.5e-07


def test_table_without_test_sizes_says_why_there_is_no_interval() -> None:
    rows = [_row(0, "none", 0.0, 0.9, 100, 5.5e-7), _row(0, "l1", 0.1, 0.8, 50, 2.5e-7)]
    add_reductions(rows)
    text = format_table(rows)
    assert "95% CI |" not in text and "No 95% interval of the accuracy" in text
    assert "\n\n" not in format_table(rows, notes=False)


def _rects_clear(rects: list, obstacles: list, bounds: tuple) -> None:
    got = [r for r in rects if r is not None]
    for i, a in enumerate(got):
        assert bounds[0] <= a[0] and a[2] <= bounds[2] and bounds[1] <= a[1] and a[3] <= bounds[3]
        for b in got[i + 1 :] + list(obstacles):
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, (a, b)


def test_placed_labels_never_overlap_each_other_or_markers() -> None:
    rng = random.Random(3)
    bounds = (0.0, 0.0, 600.0, 400.0)
    for trial in range(20):
        n = 5 + trial * 2  # up to 43 points, dense clusters included
        anchors = [(rng.uniform(50, 550), rng.uniform(50, 350)) for _ in range(n)]
        anchors += [(300.0 + k, 200.0 + k) for k in range(4)]  # four nearly coincident
        sizes = [(rng.uniform(15, 40), 12.0) for _ in anchors]
        markers = [(x - 5, y - 5, x + 5, y + 5) for x, y in anchors]
        rects = place_labels(anchors, sizes, markers, bounds)
        _rects_clear(rects, markers, bounds)
        assert rects == place_labels(anchors, sizes, markers, bounds)  # deterministic
        assert sum(r is None for r in rects) <= n // 10


def test_placement_prefers_the_nearest_free_side_and_gives_up_when_boxed_in() -> None:
    # A lone point: the label goes right of it, 4 px from the anchor.
    assert place_labels([(100.0, 100.0)], [(20.0, 10.0)], [], (0, 0, 300, 300)) == [
        (104.0, 95.0, 124.0, 105.0)
    ]
    # Everything right of x = 103 is taken: right and the centred place above both reach
    # into it, so the label goes left (the third direction tried).
    wall = [(103.0, 0.0, 300.0, 300.0)]
    assert place_labels([(100.0, 100.0)], [(20.0, 10.0)], wall, (0, 0, 300, 300)) == [
        (76.0, 95.0, 96.0, 105.0)
    ]
    # Soft obstacles (error bars) are avoided at the same distance, covered only if needed.
    bar = [(98.0, 50.0, 102.0, 150.0), (50.0, 98.0, 150.0, 102.0)]
    (rect,) = place_labels([(100.0, 100.0)], [(20.0, 10.0)], [], (0, 0, 300, 300), soft=bar)
    assert rect == (104.0, 104.0, 124.0, 114.0)  # up-right, clear of both bars
    # No room anywhere: None, not an overlap.
    assert place_labels([(10.0, 10.0)], [(50.0, 50.0)], [], (0, 0, 40, 40)) == [None]


def _sweep_folder(tmp_path: Path, seeds: int, with_runs: bool = True) -> list[dict]:
    """A sweep folder written by hand: rows, and run folders with energy.json."""
    rows = []
    for s in range(seeds):
        rows += [
            _row(s, "none", 0.0, 0.90 + 0.01 * s, 1000, 5.0e-7 + 1e-9 * s, test_samples=360),
            _row(s, "hamming", 0.5, 0.895 + 0.01 * s, 400, 2.0e-7, test_samples=360),
            _row(s, "hamming", 2.0, 0.85 + 0.01 * s, 300, 1.5e-7, test_samples=360),
            _row(s, "l1", 0.05, 0.893 + 0.01 * s, 600, 3.0e-7 + 2e-9 * s, test_samples=360),
        ]
    add_reductions(rows)
    if with_runs:
        for r in rows:
            run = tmp_path / r["name"]
            run.mkdir(parents=True)
            scale = r["e_cb_j"] / 5.0e-7
            layers = [
                {"name": "features.0", "e_cb_j": 1e-7 * scale, "e_adc_j": 4e-6, "kind": "conv2d"},
                {"name": "classifier", "e_cb_j": 4e-7 * scale, "e_adc_j": 5e-6, "kind": "linear"},
            ]
            (run / "energy.json").write_text(json.dumps({"totals": {}, "layers": layers}))
            record = {"layers": [{"hw_hist": [4, 3]}, {"hw_hist": [1, 0, 2]}]}
            (run / "run.json").write_text(json.dumps(record))
    return rows


def test_layer_plot_picks_the_best_setting_within_1pp_and_averages_its_seeds(
    tmp_path: Path,
) -> None:
    rows = _sweep_folder(tmp_path, seeds=2)
    summary = seed_summary(rows)
    # hamming 0.5: -0.5 pp, 60% E_cb red.; hamming 2: -5 pp (out); l1: -0.7 pp, 40.x%.
    entry, within = pick_layer_setting(summary)
    assert (entry["setting"], within) == ("w8-hamming-0.5", True)
    pair = layer_pair(rows, entry, tmp_path)
    assert pair is not None and pair["seeds"] == [0, 1] and pair["base_setting"] == "w8-baseline"
    # Baseline E_cb of features.0: 1e-7 x (5.00e-7 and 5.01e-7) / 5e-7, averaged.
    assert pair["base"][0]["e_cb_j"] == pytest.approx(1e-7 * (1 + 1.002) / 2)
    assert pair["best"][1] == {"name": "classifier", "e_cb_j": pytest.approx(1.6e-7),
                               "e_adc_j": pytest.approx(5e-6)}  # fmt: skip
    # Nothing within the budget: the smallest loss, said so.
    entry, within = pick_layer_setting(summary, max_loss_pp=0.1)
    assert (entry["setting"], within) == ("w8-hamming-0.5", False)
    with pytest.raises(ValueError):
        mean_layers([{"layers": [{"name": "a"}]}, {"layers": [{"name": "b"}]}])


@pytest.mark.parametrize("seeds", [1, 3])
def test_report_writes_every_plot_and_says_how(tmp_path: Path, seeds: int) -> None:
    rows = _sweep_folder(tmp_path, seeds)
    write_report(rows, tmp_path, "t", "hamq sweep x")
    for name in ("pareto.png", "layers.png", "hw_hist.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    report = (tmp_path / "report.md").read_text()
    assert "![per-layer energy](layers.png)" in report
    assert "largest mean E_cb reduction among those within 1 pp" in report
    assert "`w8-hamming-0.5` against its baseline" in report
    if seeds == 1:
        assert "one seed, so no error bars" in report
        assert "no significance test is possible" in report
        assert "## Over seeds" not in report
    else:
        assert "mean over 3 seeds, error bars ±1 sample standard deviation" in report
        assert "## Over seeds" in report and "| w8-hamming-0.5 | 3 |" in report
        assert "mean over seeds 0, 1, 2" in report
        # L1 loses 0.7 pp: no L1 setting within 0.5 pp, so the comparison starts at 1 pp.
        assert "| 8 | ≤ 1, ≤ 1.5, ≤ 2.6, ≤ 3.5 | w8-hamming-0.5 | w8-l1-0.05 | 3 |" in report


def test_report_without_run_folders_still_renders_and_says_so(tmp_path: Path) -> None:
    rows = _sweep_folder(tmp_path, seeds=2, with_runs=False)
    for r in rows:
        del r["hw_hist"]
    write_report(rows, tmp_path, "t", "c")
    report = (tmp_path / "report.md").read_text()
    assert (tmp_path / "pareto.png").is_file() and not (tmp_path / "layers.png").exists()
    assert "No per-layer energy plot" in report and "hw_hist.png" not in report


def test_csv_rows_read_back_as_written(tmp_path: Path) -> None:
    rows = _sweep_folder(tmp_path, seeds=2)
    rows.append({"name": "w8-broken-s0", "status": "failed: x", "seed": 0, "w_bits": 8})
    write_csv(rows, tmp_path / "results.csv")
    back = read_rows(tmp_path)  # no results.json: hw_hist from the run folders' run.json
    assert [r["name"] for r in back] == [r["name"] for r in rows]
    for got, want in zip(back[:-1], rows[:-1], strict=True):
        for key in ("seed", "w_bits", "accuracy", "accuracy_delta_pp", "e_cb_j", "test_samples",
                    "cells_on", "lambda", "e_cb_reduction", "regularizer"):  # fmt: skip
            assert got[key] == want[key] and type(got[key]) is type(want[key]), key
        assert got["hw_hist"] == [5, 3, 2]  # [4, 3] + [1, 0, 2], summed per Hamming weight
    assert back[-1] == {"name": "w8-broken-s0", "status": "failed: x", "seed": 0, "w_bits": 8}
    assert parse_csv_row({"lambda": "", "fold": "2", "note": "x"}) == {"fold": 2, "note": "x"}


def test_hamq_report_rerenders_from_the_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _sweep_folder(tmp_path, seeds=2)
    write_csv(rows, tmp_path / "results.csv")
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path)])
    assert exc.value.code == 0, capsys.readouterr().err
    report = (tmp_path / "report.md").read_text()
    assert "| w8-hamming-2-s1 | 86.00% |" in report
    assert (tmp_path / "layers.png").is_file() and (tmp_path / "hw_hist.png").is_file()
    # The re-rendered CSV is the one read.
    with (tmp_path / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_hamq_report_on_an_empty_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no results.csv" in err and len(err.strip().splitlines()) == 1


def test_more_families_than_colours_still_plot() -> None:
    """A sweep with more regularizer families than the palette (issue 11's twofold
    sweep has 30 extras) gets repeating colours, not a StopIteration."""
    from hamq.experiments.report import _OTHER_COLOURS, _colours

    n = 5 * len(_OTHER_COLOURS)
    summary = [{"setting": f"w8-fam{i}", "family": f"fam{i}", "lambda": None} for i in range(n)]
    colours = _colours(summary)
    assert len(colours) == n
    assert set(colours.values()) == set(_OTHER_COLOURS)
