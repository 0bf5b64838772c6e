"""Confidence intervals and significance tests for sweep reports (pure functions).

A test accuracy measured on n samples is a binomial proportion: its 95% interval is the
Wilson score interval, which stays inside [0, 1] and keeps close to its nominal coverage at
the small n and high accuracies of our test sets (787 clips, 360 digits), where the normal
("Wald") interval does not. Differences between settings are paired by seed: every run is
compared with the baseline trained from the same seed (same float stage, same data split),
so the per-seed differences are the observations and a one-sample Student t-test of their
mean against 0 is the paired t-test. All accuracies here are fractions unless a name says
``pp`` (percentage points, 100 x a difference of fractions).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as _st

# Significance level of the reports' marks ("significant at 5%").
ALPHA = 0.05


def wilson_interval(correct: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct / n`` (fractions, not %).

    The interval is the set of p with |correct/n - p| <= z sqrt(p (1 - p) / n), z the normal
    quantile of ``(1 + confidence) / 2``; solved in closed form it is
    (p̂ + z²/2n ± z sqrt(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must lie in [0, n={n}], got {correct}")
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    p = correct / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


@dataclass(frozen=True)
class TTest:
    """A two-sided one-sample Student t-test of ``mean`` against ``mu``.

    n: observations; sd: sample standard deviation (n - 1 in the denominator); t, p: the
    statistic and two-sided p-value on ``df = n - 1`` degrees of freedom, None when the
    observations have no spread (all equal: the test is undefined); ci_low, ci_high: the
    ``confidence`` t-interval of the mean (equal to the mean when sd is 0). Units: those of
    the observations.
    """

    n: int
    mean: float
    sd: float
    df: int
    t: float | None
    p: float | None
    ci_low: float
    ci_high: float
    mu: float = 0.0
    confidence: float = 0.95

    def significant(self, alpha: float = ALPHA) -> bool:
        """True when p < alpha (False when the test is undefined)."""
        return self.p is not None and self.p < alpha


def one_sample_t(
    values: Sequence[float], mu: float = 0.0, confidence: float = 0.95
) -> TTest | None:
    """Student t-test of the mean of ``values`` against ``mu`` and the t-interval of the mean;
    None with fewer than two values (no spread can be estimated, so no test is possible).

    t = (mean - mu) / (sd / sqrt(n)), p = 2 P(T_{n-1} > |t|), interval
    mean ± t_{n-1, (1+confidence)/2} sd / sqrt(n).
    """
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    sd = statistics.stdev(values)
    df = n - 1
    se = sd / math.sqrt(n)
    half = float(_st.t.ppf(0.5 + confidence / 2, df)) * se
    if se == 0:
        t = p = None
    else:
        t = (mean - mu) / se
        p = float(2 * _st.t.sf(abs(t), df))
    return TTest(n, mean, sd, df, t, p, mean - half, mean + half, mu, confidence)


def paired_t(
    a: Mapping[Hashable, float], b: Mapping[Hashable, float], confidence: float = 0.95
) -> TTest | None:
    """Paired t-test of ``a - b`` over the keys (seeds) both hold: the one-sample t-test of
    the per-key differences against 0; None with fewer than two common keys."""
    keys = [k for k in a if k in b]
    return one_sample_t([a[k] - b[k] for k in keys], 0.0, confidence)


def correct_count(accuracy: float, n: int) -> int:
    """The number of correct samples behind an accuracy measured on ``n`` samples.

    ``accuracy`` was stored as correct / n in floating point; rounding recovers the count.
    """
    return round(accuracy * n)


def pooled_accuracy(accuracies: Sequence[float], samples: Sequence[int]) -> tuple[float, int, int]:
    """Accuracy over the union of disjoint test sets (k-fold: every sample tested once).

    Returns (sum correct / sum n, sum correct, sum n), the counts recovered per fold by
    :func:`correct_count`.
    """
    if len(accuracies) != len(samples) or not samples:
        raise ValueError("need one sample count per accuracy, and at least one")
    correct = sum(correct_count(a, n) for a, n in zip(accuracies, samples, strict=True))
    total = sum(samples)
    return correct / total, correct, total


def format_p(p: float | None) -> str:
    """A p-value for a table: three significant digits, ``<0.001`` below that."""
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3g}"
