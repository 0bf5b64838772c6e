"""Across-seed summaries of a sweep's rows, and the best reduction within a loss budget.

One seed's accuracy on a small test set moves by about a point from epoch to epoch, so a
claim such as "-42% E_cb at -0.5 pp" needs the spread over seeds beside it. The functions
here are pure: rows in (as ``run_sweep`` returns them, with ``add_reductions`` applied),
numbers out.
"""

from __future__ import annotations

import statistics
from typing import Any

# The metrics summarized per (bit width, regularizer, lambda).
METRICS = ("accuracy_delta_pp", "cells_on_reduction", "e_cb_reduction", "e_cb_ad_reduction")
# Accuracy-loss budgets (pp) the report quotes: the losses the HamQ paper reports its
# reductions at (1.5 pp ResNet-18, 2.6 pp DS-CNN 8-bit, 3.5 pp DS-CNN 6-bit) and two tighter.
LOSS_BUDGETS_PP = (0.5, 1.0, 1.5, 2.6, 3.5)
# Accuracy deltas are differences of fractions times 100: a loss of exactly 3.5 pp can come
# out as 3.5000000000000018; compare with this slack.
BUDGET_TOL_PP = 1e-9


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
    ``regularizer``, ``lambda``, ``seeds`` (how many runs) and, per metric of ``METRICS``
    present in all its runs, ``<metric>`` (mean) and ``<metric>_sd`` (sample standard
    deviation, None with one seed). Entries keep the order of their first run.
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
            "seeds": len(runs),
        }
        for m in METRICS:
            values = [r[m] for r in runs if r.get(m) is not None]
            if len(values) == len(runs):
                entry[m], entry[f"{m}_sd"] = mean_sd(values)
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


def _pm(mean: float | None, sd: float | None, scale: float, spec: str) -> str:
    if mean is None:
        return ""
    text = spec.format(scale * mean)
    return text if sd is None else f"{text} ± {spec.format(scale * sd).lstrip('+')}"


def _metric_key(summary: list[dict[str, Any]]) -> tuple[str, str]:
    if summary and all("e_cb_reduction" in s for s in summary):
        return "e_cb_reduction", "E_cb red."
    return "cells_on_reduction", "ON red."


def format_seed_table(summary: list[dict[str, Any]]) -> str:
    """Markdown: mean ± sd over seeds of Δacc and the reductions, one line per setting."""
    has_energy = all("e_cb_reduction" in s for s in summary)
    head = ["setting", "seeds", "Δacc (pp)", "ON red."]
    if has_energy:
        head += ["E_cb red.", "E_cb&AD red."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [
            s["setting"],
            str(s["seeds"]),
            _pm(s.get("accuracy_delta_pp"), s.get("accuracy_delta_pp_sd"), 1, "{:+.2f}"),
            _pm(s.get("cells_on_reduction"), s.get("cells_on_reduction_sd"), 100, "{:.1f}%"),
        ]
        if has_energy:
            for m in ("e_cb_reduction", "e_cb_ad_reduction"):
                cells.append(_pm(s.get(m), s.get(f"{m}_sd"), 100, "{:.1f}%"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_budget_table(
    summary: list[dict[str, Any]], budgets_pp: tuple[float, ...] = LOSS_BUDGETS_PP
) -> str:
    """Markdown: per bit width and method (:func:`family_of`), the largest mean reduction
    whose mean accuracy loss stays within each budget (the lambda that gives it in
    brackets)."""
    key, label = _metric_key(summary)
    fams = list(dict.fromkeys(s["family"] for s in summary if s["regularizer"] != "none"))
    bits = list(dict.fromkeys(s["w_bits"] for s in summary))
    head = ["bits", "method", *[f"≤ {b:g} pp" for b in budgets_pp]]
    lines = [
        f"Largest mean {label} with mean accuracy loss within the budget (λ):",
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
                text = "" if best is None else f"{100 * best[key]:.1f}% (λ {best['lambda']:g})"
                cells.append(text)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
