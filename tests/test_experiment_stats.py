"""Report statistics against independent references: scipy.stats' own tests and intervals
(``ttest_1samp``, ``ttest_rel``, ``binomtest(...).proportion_ci``), a root-finder for the
Wilson bounds, and hand-worked numbers."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from scipy import optimize
from scipy import stats as st

from hamq.experiments.stats import (
    correct_count,
    format_p,
    one_sample_t,
    paired_t,
    pooled_accuracy,
    wilson_interval,
)


def _wilson_by_root_finding(k: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson bounds from their definition: the p where (k/n - p)^2 = z^2 p (1-p) / n."""
    phat = k / n

    def f(p: float) -> float:
        return (phat - p) ** 2 - z * z * p * (1 - p) / n

    # f(phat) < 0 between the roots; at k = 0 or n, phat itself is a root: step off it.
    eps = 1e-12
    lo = 0.0 if k == 0 else optimize.brentq(f, 0.0, phat - (eps if k == n else 0), xtol=1e-15)
    hi = 1.0 if k == n else optimize.brentq(f, phat + (eps if k == 0 else 0), 1.0, xtol=1e-15)
    return lo, hi


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (669, 787), (356, 360)])
def test_wilson_matches_its_definition(k: int, n: int) -> None:
    z = st.norm.ppf(0.975)
    assert wilson_interval(k, n) == pytest.approx(_wilson_by_root_finding(k, n, z), abs=1e-12)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy_binomtest(confidence: float) -> None:
    for k, n in [(0, 7), (3, 7), (7, 7), (700, 787), (324, 360)]:
        ref = st.binomtest(k, n).proportion_ci(confidence, method="wilson")
        got = wilson_interval(k, n, confidence)
        assert got == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_wilson_hand_worked() -> None:
    # 8 of 10 at 95% (z = 1.959964): center (0.8 + z^2/20) / (1 + z^2/10) = 0.7358 ...
    z = 1.959963984540054
    center = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert (round(center - half, 4), round(center + half, 4)) == (0.4902, 0.9433)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    # Wider confidence, wider interval; more samples at the same rate, narrower.
    lo95, hi95 = wilson_interval(80, 100)
    lo99, hi99 = wilson_interval(80, 100, confidence=0.99)
    assert lo99 < lo95 < 0.8 < hi95 < hi99
    assert hi95 - lo95 < 0.9433 - 0.4902


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_one_sample_t_matches_scipy() -> None:
    rng = random.Random(1)
    for n in (2, 3, 5, 12):
        values = [rng.gauss(-0.4, 0.8) for _ in range(n)]
        got = one_sample_t(values)
        ref = st.ttest_1samp(values, 0.0)
        ci = ref.confidence_interval(0.95)
        assert got is not None and got.n == n and got.df == n - 1
        assert got.t == pytest.approx(ref.statistic, rel=1e-12)
        assert got.p == pytest.approx(ref.pvalue, rel=1e-10)
        assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
        assert got.mean == pytest.approx(statistics.fmean(values))
        assert got.sd == pytest.approx(statistics.stdev(values))


def test_one_sample_t_hand_worked() -> None:
    # Δacc of five seeds (pp): mean -0.5, squared deviations 0.16 + 0.04 + 0 + 0.04 + 0.16,
    # sd sqrt(0.4 / 4) = 0.316228, se 0.141421, t = -3.535534; df 4: t_{4,0.975} = 2.7764451
    # (tables), interval -0.5 ± 0.3926486. For 4 degrees of freedom the t CDF is closed-form:
    # F(t) = 1/2 + 3/8 u (1 - t^2 / (12 (1 + t^2/4))), u = t / sqrt(1 + t^2/4).
    got = one_sample_t([-0.1, -0.3, -0.5, -0.7, -0.9])
    assert got is not None
    t = -0.5 / (math.sqrt(0.1) / math.sqrt(5))
    assert got.t == pytest.approx(t, rel=1e-12) and t == pytest.approx(-3.535534, abs=1e-6)
    assert (got.ci_low, got.ci_high) == pytest.approx((-0.8926486, -0.1073514), abs=1e-7)
    a = abs(t)
    cdf = 0.5 + 3 / 8 * (a / math.sqrt(1 + a * a / 4)) * (1 - a * a / (12 * (1 + a * a / 4)))
    assert got.p == pytest.approx(2 * (1 - cdf), rel=1e-9)
    assert got.p == pytest.approx(0.02411, abs=1e-5)
    assert got.significant() and not got.significant(alpha=0.01)


def test_t_test_needs_two_values_and_spread() -> None:
    assert one_sample_t([]) is None
    assert one_sample_t([-0.3]) is None
    flat = one_sample_t([-0.83, -0.83, -0.83])
    assert flat is not None and flat.p is None and flat.t is None
    assert not flat.significant()
    assert (flat.ci_low, flat.ci_high) == pytest.approx((-0.83, -0.83))


def test_paired_t_is_scipy_ttest_rel_on_common_seeds() -> None:
    a = {0: 0.58, 1: 0.55, 2: 0.60, 3: 0.57, 9: 0.1}
    b = {0: 0.38, 1: 0.39, 2: 0.37, 3: 0.40, 4: 0.2}
    got = paired_t(a, b)
    ref = st.ttest_rel([0.58, 0.55, 0.60, 0.57], [0.38, 0.39, 0.37, 0.40])
    assert got is not None and got.n == 4
    assert got.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert got.mean == pytest.approx(0.19)
    assert paired_t({0: 1.0}, {0: 0.5, 1: 0.2}) is None


def test_pooled_accuracy_over_folds() -> None:
    # Three folds of 100, 101 and 99 clips with 90, 80 and 99 correct: 269 / 300.
    accs = [90 / 100, 80 / 101, 99 / 99]
    assert [correct_count(a, n) for a, n in zip(accs, [100, 101, 99], strict=True)] == [90, 80, 99]
    acc, correct, n = pooled_accuracy(accs, [100, 101, 99])
    assert (correct, n) == (269, 300) and acc == pytest.approx(269 / 300)
    # The pooled accuracy weighs folds by size: not the plain mean of the fold accuracies.
    assert acc != pytest.approx(statistics.fmean(accs), abs=1e-4)
    with pytest.raises(ValueError):
        pooled_accuracy([0.5], [10, 20])


def test_format_p() -> None:
    assert [format_p(p) for p in (None, 0.0004, 0.0123, 0.5)] == ["", "<0.001", "0.0123", "0.5"]
