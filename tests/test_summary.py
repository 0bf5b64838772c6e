"""Across-seed summaries, their statistics (against scipy.stats), and the best reduction
within a loss budget."""

from __future__ import annotations

import statistics

import pytest
from scipy import stats as st

from hamq.experiments.summary import (
    best_within,
    compare_methods,
    format_budget_table,
    format_comparison_table,
    format_seed_notes,
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
    # Two seeds: tested. hamming 1: Δacc -1, 0 -> p = 0.5; hamming 4: -5, -2 -> p = 0.205.
    assert line == (
        "| 8 | hamming |  | 42.5% (λ 1; -0.50 pp, n.s.) | 57.5% (λ 4; -3.50 pp, n.s.) |"
    )


def test_seed_table_shows_mean_sd_interval_and_test(rows: list[dict]) -> None:
    summary = seed_summary(rows)
    table = format_seed_table(summary)
    sd = 100 * statistics.stdev([0.4, 0.5])
    # Δacc of w8-hamming-1: -1 pp (seed 0) and 0 pp (seed 1).
    ref = st.ttest_1samp([-1.0, 0.0], 0.0)
    ci = ref.confidence_interval(0.95)
    assert ref.pvalue == pytest.approx(0.5)  # t = -1 on 1 degree of freedom: 2 (1/4)
    row = (
        f"| w8-hamming-1 | 2 | -0.50 ± 0.71 | [{ci.low:+.2f}, {ci.high:+.2f}] | 0.5 | no | "
        f"45.0% ± {sd:.1f}% |"
    )
    assert row in table
    assert "| w8-baseline | 2 | +0.00 ± 0.00 | reference |  |  |" in table
    notes = format_seed_notes(summary)
    assert "n = 2 seeds per setting" in notes and "paired t-test" in notes
    assert "no test is possible" not in notes


def test_a_consistent_loss_is_significant() -> None:
    # Five seeds; HamQ loses 1.0, 1.2, 0.8, 1.1, 0.9 pp against each seed's baseline.
    rows = []
    for seed, loss in enumerate([1.0, 1.2, 0.8, 1.1, 0.9]):
        rows += [
            _row(seed, "none", 0.0, 0.90, 100, 10.0),
            _row(seed, "hamming", 1.0, 0.90 - loss / 100, 50, 5.0 + 0.1 * seed),
            _row(seed, "l1", 0.1, 0.90 - (loss - 0.1 * seed) / 100, 70, 7.0 - 0.1 * seed),
        ]
    add_reductions(rows)
    summary = seed_summary(rows)
    ham = next(s for s in summary if s["setting"] == "w8-hamming-1")
    test = ham["accuracy_delta_test"]
    ref = st.ttest_1samp([-1.0, -1.2, -0.8, -1.1, -0.9], 0.0)
    assert test.n == 5 and test.p == pytest.approx(ref.pvalue, rel=1e-6) and test.p < 0.001
    table = format_seed_table(summary)
    assert "| w8-hamming-1 | 5 | -1.00 ± 0.16 |" in table and "| <0.001 | yes |" in table
    budget = format_budget_table(summary, budgets_pp=(1.0, 2.0))
    assert "48.0% (λ 1; -1.00 pp, sig.)" in budget  # E_cb red. 0.5 - 0.01 seed
    # HamQ vs L1, paired by seed: E_cb reduction 0.5 - 0.01 s against 0.3 + 0.01 s.
    (cmp,) = [c for c in compare_methods(summary, budgets_pp=(2.0,))]
    assert (cmp["setting"]["setting"], cmp["reference"]["setting"]) == ("w8-hamming-1", "w8-l1-0.1")
    diffs = [(1 - (5.0 + 0.1 * s) / 10) - (1 - (7.0 - 0.1 * s) / 10) for s in range(5)]
    ref = st.ttest_1samp(diffs, 0.0)
    assert cmp["metric_test"].mean == pytest.approx(statistics.fmean(diffs))
    assert cmp["metric_test"].p == pytest.approx(ref.pvalue, rel=1e-6)
    acc_ref = st.ttest_rel([-1.0, -1.2, -0.8, -1.1, -0.9], [-1.0, -1.1, -0.6, -0.8, -0.5])
    assert cmp["accuracy_test"].p == pytest.approx(acc_ref.pvalue, rel=1e-6)
    line = format_comparison_table([cmp]).splitlines()[2]
    assert line.startswith("| 8 | ≤ 2 | w8-hamming-1 | w8-l1-0.1 | 5 | +16.0 ± 3.2 |")


def test_one_seed_says_no_test_is_possible(rows: list[dict]) -> None:
    one = [r for r in rows if r.get("seed") == 0]
    summary = seed_summary(one)
    assert all(s.get("accuracy_delta_test") is None for s in summary)
    assert "| w8-hamming-1 | 1 | -1.00 |  |  | n < 2: no test |" in format_seed_table(summary)
    assert "no test is possible" in format_seed_notes(summary)
    assert "(λ 1; -1.00 pp)" in format_budget_table(summary)  # no mark without a test
    with_l1 = [dict(r) for r in one] + [_row(0, "l1", 0.1, 0.88, 70, 7.0)]
    add_reductions(with_l1)
    cmp = compare_methods(seed_summary(with_l1), budgets_pp=(5.0,))[0]
    assert cmp["metric_test"] is None and cmp["accuracy_test"] is None
    line = format_comparison_table([cmp]).splitlines()[2]
    # hamming 4 (60% E_cb red., -5 pp) against l1 0.1 (30%, -2 pp): no test with one seed.
    assert line == (
        "| 8 | ≤ 5 | w8-hamming-4 | w8-l1-0.1 | < 2 | +30.0 |  |  | no test | -3.00 |  | no test |"
    )


def test_folds_give_a_pooled_accuracy() -> None:
    # Three speaker-disjoint folds of 100, 101, 99 clips: every clip tested once.
    sizes, base_ok, ham_ok = [100, 101, 99], [90, 80, 99], [88, 81, 95]
    rows = []
    for k in range(3):
        for reg, ok in (("none", base_ok[k]), ("hamming", ham_ok[k])):
            r = _row(k, reg, 0.0 if reg == "none" else 1.0, ok / sizes[k], 100, 10.0)
            rows.append({**r, "fold": k, "folds": 3, "test_samples": sizes[k]})
    add_reductions(rows)
    summary = seed_summary(rows)
    assert [s["unit"] for s in summary] == ["folds", "folds"]
    ham = summary[1]
    assert ham["pooled_accuracy"] == pytest.approx((88 + 81 + 95) / 300)
    assert ham["pooled_samples"] == 300
    lo, hi = ham["pooled_ci"]
    assert lo < 264 / 300 < hi
    table = format_seed_table(summary)
    assert table.splitlines()[0].startswith("| setting | folds |")
    assert f"| {100 * 264 / 300:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}] of 300 |" in table
    assert "pooled acc." in format_seed_notes(summary)


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


def test_a_pruned_run_without_regularizer_is_a_method_not_a_baseline(rows: list[dict]) -> None:
    # LFSR pruning with regularizer none (hamq.sparsity): compared against the dense
    # baseline like any regularized setting, never taken as (or labelled) the baseline.
    pruned = [
        {**_row(s, "none", 0.0, acc, cells, e), "name": f"w8-prune-0.5-s{s}", "pruned": True}
        for s, acc, cells, e in ((0, 0.88, 50, 5.0), (1, 0.79, 110, 10.0))
    ]
    plain = [{k: v for k, v in r.items() if not k.endswith(("_pp", "_reduction"))} for r in rows]
    all_rows = plain + pruned
    add_reductions(all_rows)
    summary = seed_summary(all_rows)
    entry = next(s for s in summary if s["setting"] == "w8-prune-0.5")
    assert entry["pruned"] and entry["accuracy_delta_pp"] == pytest.approx(-1.5)
    assert entry["accuracy_delta_test"] is not None  # tested, not the "reference"
    assert "prune-0.5" in format_budget_table(summary)
    assert "prune-0.5" in format_seed_table(summary)
    base = next(s for s in summary if s["setting"] == "w8-baseline")
    assert not base["pruned"] and "accuracy_delta_test" not in base


def test_an_extra_run_without_a_regularizer_is_compared_not_the_reference() -> None:
    def row(name: str, acc: float, cells: int, reg: str = "none", status: str = "ok") -> dict:
        return {"name": name, "status": status, "w_bits": 8, "seed": 0, "regularizer": reg,
                "pruned": False, "accuracy": acc, "cells_on": cells,
                "e_cb_j": cells * 1e-9}  # fmt: skip

    # The grid lists its baseline first; `rc64` is an extra run with no regularizer after it.
    rows = [row("w8-baseline", 0.875, 100), row("w8-hamming-2", 0.86, 40, "hamming"),
            row("w8-rc64", 0.87, 80)]  # fmt: skip
    add_reductions(rows)
    assert rows[1]["accuracy_delta_pp"] == pytest.approx(-1.5)
    assert rows[1]["e_cb_reduction"] == pytest.approx(0.6)
    assert rows[2]["accuracy_delta_pp"] == pytest.approx(-0.5)  # compared with the baseline
    assert rows[0]["accuracy_delta_pp"] == pytest.approx(0.0)
    # A grid baseline that did not finish leaves nothing to compare with.
    rows = [row("w8-baseline", 0.0, 0, status="failed"), row("w8-rc64", 0.87, 80),
            row("w8-hamming-2", 0.86, 40, "hamming")]  # fmt: skip
    add_reductions(rows)
    assert not any("accuracy_delta_pp" in r for r in rows)
