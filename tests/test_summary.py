"""Across-seed summaries and the best reduction within a loss budget."""

from __future__ import annotations

import statistics

import pytest

from hamq.experiments.summary import (
    best_within,
    format_budget_table,
    format_seed_table,
    seed_summary,
)
from hamq.experiments.sweep import add_reductions


def _row(seed: int, reg: str, lam: float, acc: float, cells: int, e_cb: float) -> dict:
    return {
        "name": f"w8-{reg}-{lam:g}-s{seed}" if reg != "none" else f"w8-baseline-s{seed}",
        "status": "ok",
        "seed": seed,
        "w_bits": 8,
        "regularizer": reg,
        "lambda": lam,
        "accuracy": acc,
        "cells_on": cells,
        "e_cb_j": e_cb,
        "e_cb_ad_j": e_cb + 1.0,
    }


@pytest.fixture
def rows() -> list[dict]:
    rows = [
        _row(0, "none", 0.0, 0.90, 100, 10.0),
        _row(0, "hamming", 1.0, 0.89, 60, 6.0),
        _row(0, "hamming", 4.0, 0.85, 40, 4.0),
        _row(1, "none", 0.0, 0.80, 200, 20.0),
        _row(1, "hamming", 1.0, 0.80, 100, 11.0),
        _row(1, "hamming", 4.0, 0.78, 90, 9.0),
        {"name": "w8-hamming-4-s1", "status": "failed: x", "seed": 1, "w_bits": 8},
    ]
    rows[-1].update(regularizer="hamming", **{"lambda": 4.0})
    add_reductions(rows)
    return rows


def test_seed_summary_matches_statistics_module(rows: list[dict]) -> None:
    summary = seed_summary(rows)
    assert [(s["setting"], s["family"], s["seeds"]) for s in summary] == [
        ("w8-baseline", "baseline", 2),
        ("w8-hamming-1", "hamming", 2),
        ("w8-hamming-4", "hamming", 2),  # the failed run is not counted
    ]
    h1 = summary[1]
    reds = [1 - 6.0 / 10.0, 1 - 11.0 / 20.0]
    assert h1["e_cb_reduction"] == pytest.approx(statistics.mean(reds))
    assert h1["e_cb_reduction_sd"] == pytest.approx(statistics.stdev(reds))
    assert h1["accuracy_delta_pp"] == pytest.approx(-0.5)  # (-1 + 0) / 2 pp
    assert h1["cells_on_reduction"] == pytest.approx((0.4 + 0.5) / 2)
    assert summary[0]["e_cb_reduction"] == 0.0 and summary[0]["e_cb_reduction_sd"] == 0.0


def test_single_seed_has_no_spread(rows: list[dict]) -> None:
    one = [r for r in rows if r.get("seed") == 0]
    summary = seed_summary(one)
    assert all(s["seeds"] == 1 and s["e_cb_reduction_sd"] is None for s in summary)
    assert "±" not in format_seed_table(summary)


def test_best_within_respects_the_budget(rows: list[dict]) -> None:
    summary = seed_summary(rows)
    # hamming 1: -0.5 pp, 42.5% mean; hamming 4: -3.5 pp, 57.5% mean.
    assert best_within(summary, 1.0, 8, "hamming")["lambda"] == 1.0
    assert best_within(summary, 3.5, 8, "hamming")["lambda"] == 4.0
    assert best_within(summary, 0.1, 8, "hamming") is None
    assert best_within(summary, 5.0, 6, "hamming") is None  # no 6-bit runs
    table = format_budget_table(summary, budgets_pp=(0.1, 1.0, 3.5))
    line = next(x for x in table.splitlines() if x.startswith("| 8 | hamming |"))
    assert line == "| 8 | hamming |  | 42.5% (λ 1) | 57.5% (λ 4) |"


def test_seed_table_shows_mean_and_sd(rows: list[dict]) -> None:
    table = format_seed_table(seed_summary(rows))
    sd = 100 * statistics.stdev([0.4, 0.5])
    assert f"| w8-hamming-1 | 2 | -0.50 ± 0.71 | 45.0% ± {sd:.1f}% |" in table


def test_extra_runs_with_the_same_lambda_are_separate_settings() -> None:
    rows = [
        _row(0, "none", 0.0, 0.90, 100, 10.0),
        _row(0, "hamming", 2.0, 0.89, 60, 6.0),
        {**_row(0, "hamming", 2.0, 0.88, 80, 8.0), "name": "w8-smooth4-2"},
        {**_row(0, "hamming", 2.0, 0.88, 70, 7.0), "name": "w8-sin"},
    ]
    add_reductions(rows)
    summary = seed_summary(rows)
    assert [(s["setting"], s["family"]) for s in summary] == [
        ("w8-baseline", "baseline"),
        ("w8-hamming-2", "hamming"),
        ("w8-smooth4-2", "smooth4"),
        ("w8-sin", "sin"),
    ]
    assert all(s["seeds"] == 1 for s in summary)
    assert best_within(summary, 5.0, 8, "smooth4")["e_cb_reduction"] == pytest.approx(0.2)
    assert "| 8 | smooth4 |" in format_budget_table(summary)
