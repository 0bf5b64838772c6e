"""Across-seed summaries of a sweep's rows, their statistics, and the best reduction within
a loss budget.

One seed's accuracy on a small test set moves by about a point from epoch to epoch, so a
claim such as "-42% E_cb at -0.5 pp" needs the spread over seeds beside it, and a test of
whether the loss differs from 0 at all. The functions here are pure: rows in (as
``run_sweep`` returns them, with ``add_reductions`` applied), numbers and Markdown out.
Statistics (``hamq.experiments.stats``): every run's Δacc and reductions are against the
baseline of its own seed and bit width, so the per-seed values are paired differences; a
setting's mean Δacc gets a Student t-interval and a one-sample t-test against 0 (the paired
t-test against the baseline), and two methods are compared by a paired t-test over the seeds
both ran. With k-fold evaluation (rows with ``fold``/``folds``) "seed" reads "fold".
"""

from __future__ import annotations

import statistics
from typing import Any

from hamq.experiments.stats import (
    ALPHA,
    TTest,
    format_p,
    one_sample_t,
    paired_t,
    pooled_accuracy,
    wilson_interval,
)

# The metrics summarized per (bit width, regularizer, lambda): changes against the baseline
# (Δacc in pp, reductions as fractions) ...
METRICS = (
    "accuracy_delta_pp",
    "cells_on_reduction",
    "e_cb_reduction",
    "e_cb_ad_reduction",
    "crossbar_delta_pp",
)
# ... and the levels themselves (accuracy as a fraction, ON cells, energies in joules per
# inference), for plots.
LEVELS = ("accuracy", "cells_on", "e_cb_j", "e_cb_ad_j", "crossbar_accuracy")
# Accuracy-loss budgets (pp) the report quotes: the losses the HamQ paper reports its
# reductions at (1.5 pp ResNet-18, 2.6 pp DS-CNN 8-bit, 3.5 pp DS-CNN 6-bit) and two tighter.
LOSS_BUDGETS_PP = (0.5, 1.0, 1.5, 2.6, 3.5)
# Accuracy deltas are differences of fractions times 100: a loss of exactly 3.5 pp can come
# out as 3.5000000000000018; compare with this slack.
BUDGET_TOL_PP = 1e-9


def is_baseline(row: dict[str, Any]) -> bool:
    """Whether a run (or a summary entry) is a baseline: no regularizer and no LFSR pruning
    mask (a pruned run is a method compared against the baseline, never the baseline)."""
    return row.get("regularizer") == "none" and not row.get("pruned")


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def setting_of(row: dict[str, Any]) -> str:
    """The run's name without its seed suffix (``w8-hamming-1-s2`` -> ``w8-hamming-1``)."""
    name, sfx = str(row["name"]), f"-s{row.get('seed')}"
    return name[: -len(sfx)] if name.endswith(sfx) else name


def family_of(row: dict[str, Any]) -> str:
    """The setting without its bit width and lambda: a method whose lambdas form one front
    (``w8-hamming-1`` -> ``hamming``, ``w6-smooth4-4`` -> ``smooth4``)."""
    name = setting_of(row)
    prefix = f"w{row.get('w_bits')}-"
    name = name[len(prefix) :] if name.startswith(prefix) else name
    lam = row.get("lambda")
    sfx = f"-{lam:g}" if isinstance(lam, (int, float)) else None
    return name[: -len(sfx)] if sfx and name.endswith(sfx) and name != sfx else name


def seed_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per setting (a run name less its seed suffix) over the finished runs of
    every seed.

    Each entry holds ``setting``, ``family`` (see :func:`family_of`), ``w_bits``,
    ``regularizer``, ``lambda``, ``seeds`` (how many runs), ``unit`` ("folds" when every run
    carries ``folds``, else "seeds"), ``values`` (per metric, {seed: value}) and, per metric
    of ``METRICS`` and ``LEVELS`` present in all its runs, ``<metric>`` (mean) and
    ``<metric>_sd`` (sample standard deviation, None with one seed). Settings other than a
    baseline get ``accuracy_delta_test``: the t-test of the per-seed Δacc against 0 (None
    with fewer than two seeds). When every run carries ``folds`` and ``test_samples``, the
    entry gets ``pooled_accuracy`` (sum correct / sum test samples over the folds),
    ``pooled_samples`` and ``pooled_ci`` (its 95% Wilson interval). Entries keep the order
    of their first run.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("status") != "ok" or "accuracy_delta_pp" not in r:
            continue
        groups.setdefault(setting_of(r), []).append(r)
    out = []
    for setting, runs in groups.items():
        first = runs[0]
        entry: dict[str, Any] = {
            "setting": setting,
            "family": family_of(first),
            "w_bits": first.get("w_bits"),
            "regularizer": first.get("regularizer"),
            "lambda": first.get("lambda"),
            "pruned": bool(first.get("pruned")),
            "seeds": len(runs),
            "unit": "folds" if all(r.get("folds") is not None for r in runs) else "seeds",
            "values": {},
        }
        for m in (*METRICS, *LEVELS):
            per_seed = {r.get("seed", i): r[m] for i, r in enumerate(runs) if r.get(m) is not None}
            if len(per_seed) == len(runs):
                entry["values"][m] = per_seed
                entry[m], entry[f"{m}_sd"] = mean_sd(list(per_seed.values()))
        if not is_baseline(entry) and "accuracy_delta_pp" in entry["values"]:
            entry["accuracy_delta_test"] = one_sample_t(
                list(entry["values"]["accuracy_delta_pp"].values())
            )
        if all(r.get("folds") is not None and r.get("test_samples") for r in runs):
            acc, correct, n = pooled_accuracy(
                [r["accuracy"] for r in runs], [int(r["test_samples"]) for r in runs]
            )
            entry.update(
                pooled_accuracy=acc, pooled_samples=n, pooled_ci=wilson_interval(correct, n)
            )
        out.append(entry)
    return out


def best_within(
    summary: list[dict[str, Any]],
    budget_pp: float,
    w_bits: int,
    family: str,
    metric: str = "e_cb_reduction",
) -> dict[str, Any] | None:
    """The entry of ``family`` at ``w_bits`` with the largest mean ``metric`` whose mean
    accuracy loss is at most ``budget_pp``; None when no entry qualifies."""
    ok = [
        s
        for s in summary
        if s["w_bits"] == w_bits
        and s["family"] == family
        and metric in s
        and s["accuracy_delta_pp"] >= -budget_pp - BUDGET_TOL_PP
    ]
    return max(ok, key=lambda s: s[metric]) if ok else None


def compare_methods(
    summary: list[dict[str, Any]],
    against: str = "l1",
    budgets_pp: tuple[float, ...] = LOSS_BUDGETS_PP,
    metric: str | None = None,
) -> list[dict[str, Any]]:
    """Each method family's best setting within a budget against ``against``'s best within
    the same budget, at the same bit width: paired t-tests over the seeds both ran.

    One entry per (bits, setting, reference setting) with ``budgets`` (the budgets at which
    this pair is the comparison), ``setting`` and ``reference`` (summary entries),
    ``metric``, ``metric_test`` (t-test of the per-seed difference setting - reference of
    ``metric``, a fraction) and ``accuracy_test`` (the same for Δacc, pp). Tests are None
    with fewer than two common seeds. Empty when no family is named ``against``.
    """
    key = metric or _metric_key(summary)[0]
    fams = [
        f for f in dict.fromkeys(s["family"] for s in summary if not is_baseline(s)) if f != against
    ]
    out: dict[tuple[Any, str, str], dict[str, Any]] = {}
    for bits in dict.fromkeys(s["w_bits"] for s in summary):
        for fam in fams:
            for budget in budgets_pp:
                a = best_within(summary, budget, bits, fam, key)
                b = best_within(summary, budget, bits, against, key)
                if a is None or b is None:
                    continue
                k = (bits, a["setting"], b["setting"])
                if k not in out:
                    out[k] = {
                        "w_bits": bits,
                        "budgets": [],
                        "setting": a,
                        "reference": b,
                        "metric": key,
                        "metric_test": paired_t(a["values"][key], b["values"][key]),
                        "accuracy_test": paired_t(
                            a["values"]["accuracy_delta_pp"], b["values"]["accuracy_delta_pp"]
                        ),
                    }
                out[k]["budgets"].append(budget)
    return list(out.values())


def _pm(mean: float | None, sd: float | None, scale: float, spec: str) -> str:
    if mean is None:
        return ""
    text = spec.format(scale * mean)
    return text if sd is None else f"{text} ± {spec.format(scale * sd).lstrip('+')}"


def _metric_key(summary: list[dict[str, Any]]) -> tuple[str, str]:
    if summary and all("e_cb_reduction" in s for s in summary):
        return "e_cb_reduction", "E_cb red."
    return "cells_on_reduction", "ON red."


def _sig(test: TTest | None) -> str:
    """The significance mark of a table: yes / no at ALPHA, "no spread", or "" (no test)."""
    if test is None:
        return ""
    if test.p is None:
        return "no spread"
    return "yes" if test.significant() else "no"


def _unit(summary: list[dict[str, Any]]) -> str:
    return "folds" if summary and all(s["unit"] == "folds" for s in summary) else "seeds"


def format_seed_table(summary: list[dict[str, Any]]) -> str:
    """Markdown: per setting, mean ± sd over seeds of Δacc and the reductions, the 95%
    t-interval of the mean Δacc, the p-value of its t-test against 0 and whether that is
    significant at 5%; the pooled accuracy over folds when the rows carry folds."""
    has_energy = all("e_cb_reduction" in s for s in summary)
    pooled = bool(summary) and all("pooled_accuracy" in s for s in summary)
    unit = _unit(summary)
    head = [
        "setting",
        unit,
        "Δacc (pp)",
        "Δacc 95% CI (pp)",
        "p (Δacc = 0)",
        "Δacc ≠ 0 at 5%",
        "ON red.",
    ]
    if has_energy:
        head += ["E_cb red.", "E_cb&AD red."]
    if pooled:
        head += ["pooled acc. (95% CI)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        test = s.get("accuracy_delta_test")
        if is_baseline(s):
            ci, p, sig = "reference", "", ""
        elif test is None:
            ci, p, sig = "", "", "n < 2: no test"
        else:
            ci = f"[{test.ci_low:+.2f}, {test.ci_high:+.2f}]"
            p, sig = format_p(test.p), _sig(test)
        cells = [
            s["setting"],
            str(s["seeds"]),
            _pm(s.get("accuracy_delta_pp"), s.get("accuracy_delta_pp_sd"), 1, "{:+.2f}"),
            ci,
            p,
            sig,
            _pm(s.get("cells_on_reduction"), s.get("cells_on_reduction_sd"), 100, "{:.1f}%"),
        ]
        if has_energy:
            for m in ("e_cb_reduction", "e_cb_ad_reduction"):
                cells.append(_pm(s.get(m), s.get(f"{m}_sd"), 100, "{:.1f}%"))
        if pooled:
            lo, hi = s["pooled_ci"]
            cells.append(
                f"{100 * s['pooled_accuracy']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"
                f" of {s['pooled_samples']}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_seed_notes(summary: list[dict[str, Any]]) -> str:
    """What the seed table's statistics are: the test, its n, and what "paired" means."""
    unit = _unit(summary)
    one = unit[:-1]
    ns = sorted({s["seeds"] for s in summary}) or [0]
    n_text = str(ns[0]) if len(ns) == 1 else f"{ns[0]} to {ns[-1]}"
    lines = [
        f"- n = {n_text} {unit} per setting (column `{unit}`); ± is the sample standard "
        "deviation over them.",
        f"- Δacc is paired by {one}: each run's test accuracy minus that of the baseline of "
        f"its {one} and bit width; reductions likewise.",
        f"- Δacc 95% CI: Student t-interval of the mean Δacc (n - 1 degrees of freedom). "
        f"p: two-sided one-sample t-test of the per-{one} Δacc against 0, i.e. the paired "
        f't-test against the baseline; "yes" marks p < {ALPHA:g} (significant at 5%).',
    ]
    if any(not is_baseline(s) and s["seeds"] < 2 for s in summary):
        lines.append(f"- With fewer than 2 {unit} no spread can be estimated: no test is possible.")
    if any(s.get("accuracy_delta_test") is not None and s["accuracy_delta_test"].p is None
           for s in summary):  # fmt: skip
        lines.append(f'- "no spread": every {one} gave the same Δacc, so the t-test is undefined.')
    if summary and all("pooled_accuracy" in s for s in summary):
        lines.append(
            "- pooled acc.: correct test samples summed over the folds over the test samples "
            "summed (every sample is tested once), with its 95% Wilson interval."
        )
    return "\n".join(lines)


def format_budget_table(
    summary: list[dict[str, Any]], budgets_pp: tuple[float, ...] = LOSS_BUDGETS_PP
) -> str:
    """Markdown: per bit width and method (:func:`family_of`), the largest mean reduction
    whose mean accuracy loss stays within each budget, with the lambda that gives it, its
    mean Δacc and whether that loss differs significantly from 0 (paired t-test, 5%)."""
    key, label = _metric_key(summary)
    unit = _unit(summary)
    fams = list(dict.fromkeys(s["family"] for s in summary if not is_baseline(s)))
    bits = list(dict.fromkeys(s["w_bits"] for s in summary))
    head = ["bits", "method", *[f"≤ {b:g} pp" for b in budgets_pp]]
    lines = [
        f"Largest mean {label} with mean accuracy loss within the budget "
        "(λ; mean Δacc, whether it differs from 0 at 5%):",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for b in bits:
        for fam in fams:
            if not any(s["w_bits"] == b and s["family"] == fam for s in summary):
                continue
            cells = [str(b), fam]
            for budget in budgets_pp:
                best = best_within(summary, budget, b, fam, key)
                cells.append("" if best is None else _budget_cell(best, key))
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f'"sig." marks a mean loss significantly different from 0 (paired t-test over the '
        f'{unit}, p < {ALPHA:g}), "n.s." one that is not; no mark where fewer than 2 {unit} '
        "allow no test.",
    ]
    return "\n".join(lines)


def _budget_cell(best: dict[str, Any], key: str) -> str:
    test = best.get("accuracy_delta_test")
    mark = {"yes": ", sig.", "no": ", n.s.", "no spread": ", no spread"}.get(_sig(test), "")
    return (
        f"{100 * best[key]:.1f}% (λ {best['lambda']:g}; {best['accuracy_delta_pp']:+.2f} pp{mark})"
    )


def format_comparison_table(comparisons: list[dict[str, Any]]) -> str:
    """Markdown: each method's best setting within a budget against the reference method's
    (see :func:`compare_methods`): mean ± sd of the paired difference of the reduction
    (percentage points) and of Δacc (pp), the 95% t-interval and p of the former, the p of
    the latter, and whether each is significant at 5%."""
    if not comparisons:
        return ""
    label = "E_cb red." if comparisons[0]["metric"] == "e_cb_reduction" else "ON red."
    head = [
        "bits",
        "budgets (pp)",
        "method",
        "vs",
        "n",
        f"diff. {label} (points)",
        "95% CI",
        "p",
        "≠ 0 at 5%",
        "diff. Δacc (pp)",
        "p",
        "≠ 0 at 5%",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in comparisons:
        a, b, key = c["setting"], c["reference"], c["metric"]
        mt, at = c["metric_test"], c["accuracy_test"]
        diff = 100 * (a[key] - b[key]) if mt is None else 100 * mt.mean
        cells = [
            str(c["w_bits"]),
            ", ".join(f"≤ {x:g}" for x in c["budgets"]),
            a["setting"],
            b["setting"],
            "< 2" if mt is None else str(mt.n),
            f"{diff:+.1f}" + ("" if mt is None else f" ± {100 * mt.sd:.1f}"),
            "" if mt is None else f"[{100 * mt.ci_low:+.1f}, {100 * mt.ci_high:+.1f}]",
            "" if mt is None else format_p(mt.p),
            _sig(mt) or "no test",
        ]
        adiff = a["accuracy_delta_pp"] - b["accuracy_delta_pp"] if at is None else at.mean
        cells += [
            f"{adiff:+.2f}" + ("" if at is None else f" ± {at.sd:.2f}"),
            "" if at is None else format_p(at.p),
            _sig(at) or "no test",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
