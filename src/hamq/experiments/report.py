"""Sweep report: ``results.csv``, ``report.md`` with the paper-style tables and statistics,
and plots; re-rendered by ``hamq report FOLDER`` from ``results.csv`` and the run folders.

``report.md`` holds, in order:
- the per-run table (accuracy with its 95% Wilson interval on the run's test samples, ON
  cells, E_cb, E_cb&AD, reductions against the baseline of the same bits and seed), each
  column explained on one line under it (``sweep.format_table``);
- with more than one seed: per setting, mean ± sd over seeds of Δacc and the reductions,
  the 95% t-interval of the mean Δacc and the paired t-test of Δacc against 0
  (``hamq.experiments.summary``, ``hamq.experiments.stats``), and the pooled accuracy
  over folds when the rows carry k-fold indices;
- the largest mean reduction within each accuracy-loss budget, marking whether the mean
  loss is significantly different from 0, and each method's best setting against L1's at
  the same budget (paired t-test of the reduction and of Δacc);
- the plots, each with a caption that says what was chosen and how.

Plots (PNG, matplotlib's Agg backend, no display needed; energies per inference in the SI
unit that reads best):
- ``pareto.png``: accuracy against E_cb (against ON cells when no energy was measured), one
  point per setting at the mean over its seeds with ±1 sd error bars on both axes, one
  colour per method and one marker per bit width, the Pareto front of the means dashed;
  labels (λ) placed so that none overlaps another or a marker (:func:`place_labels`);
- ``layers.png``: E_cb and E_adc of every layer, the baseline against the setting with the
  largest mean E_cb reduction within 1 pp of its baseline, from each run's ``energy.json``
  (averaged over the seeds both ran);
- ``hw_hist.png``: histogram of the stored Hamming weight per weight, baseline against the
  HamQ run with the most ON cells removed within 2 points of accuracy (else the most
  accurate).

Inputs: the rows of ``run_sweep`` (a dict per run). ``rerender`` reads them back from
``results.csv`` (``results.json`` when there is no CSV), and takes what the CSV does not
hold from the run folders: the Hamming-weight histogram from ``<run>/run.json`` and the
per-layer energies from ``<run>/energy.json``. A folder without run folders (a copy of the
CSV alone) still renders: the plots that need them are left out and the report says so.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hamq.experiments.summary import (
    BUDGET_TOL_PP,
    compare_methods,
    format_budget_table,
    format_comparison_table,
    format_seed_notes,
    format_seed_table,
    is_baseline,
    seed_summary,
    setting_of,
)
from hamq.experiments.sweep import NOT_RUN, _total_hw_hist, format_table, write_csv
from hamq.experiments.units import energy_unit
from hamq.training.checkpoint import atomic_write_text

# The accuracy loss (pp, mean over seeds) within which layers.png picks its best setting.
LAYER_PLOT_MAX_LOSS_PP = 1.0
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated (lower cost, higher accuracy), by cost.

    ``points`` are (cost, accuracy); a point is dominated when another has cost <= and
    accuracy >= with one strict.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


# ---------------------------------------------------------------- label placement


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# Directions tried around a point, in order: right, up, left, down, then the diagonals.
_DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1))
_RADII = (4.0, 10.0, 18.0, 28.0, 40.0, 55.0, 75.0, 100.0)


def place_labels(
    anchors: Sequence[tuple[float, float]],
    sizes: Sequence[tuple[float, float]],
    obstacles: Sequence[Rect],
    bounds: Rect,
    radii: Sequence[float] = _RADII,
    pad: float = 1.0,
    soft: Sequence[Rect] = (),
) -> list[Rect | None]:
    """Rectangles (display pixels) for labels of ``sizes`` (w, h) beside ``anchors``, in
    order, so that no two overlap, none covers an obstacle (the markers) and all lie in
    ``bounds``; None for a label that finds no free place.

    Deterministic and greedy: each label tries the directions right, up, left, down and the
    diagonals at growing distances ``radii`` (the gap between the anchor and the nearest
    edge of the label) and takes the first free place; ``pad`` pixels of clearance. Places
    that also keep clear of the ``soft`` obstacles (error bars) are preferred at the same
    distance; a label that finds none there may cover them rather than move further out.
    """
    placed: list[Rect] = []
    out: list[Rect | None] = []
    for anchor, size in zip(anchors, sizes, strict=True):
        found = None
        for r in radii:
            found = _free_place(anchor, size, [*placed, *obstacles, *soft], bounds, r, pad)
            if found is None and soft:
                found = _free_place(anchor, size, [*placed, *obstacles], bounds, r, pad)
            if found is not None:
                break
        if found is not None:
            placed.append(found)
        out.append(found)
    return out


def _free_place(
    anchor: tuple[float, float],
    size: tuple[float, float],
    taken: list[Rect],
    bounds: Rect,
    r: float,
    pad: float,
) -> Rect | None:
    """The first of the eight places at gap ``r`` around ``anchor`` that is inside
    ``bounds`` and clear of ``taken``."""
    (ax, ay), (w, h) = anchor, size
    for dx, dy in _DIRECTIONS:
        x0 = ax + r if dx > 0 else ax - r - w if dx < 0 else ax - w / 2
        y0 = ay + r if dy > 0 else ay - r - h if dy < 0 else ay - h / 2
        rect = (x0, y0, x0 + w, y0 + h)
        grown = (x0 - pad, y0 - pad, x0 + w + pad, y0 + h + pad)
        inside = (
            rect[0] >= bounds[0]
            and rect[1] >= bounds[1]
            and rect[2] <= bounds[2]
            and rect[3] <= bounds[3]
        )
        if inside and not any(_overlaps(grown, o) for o in taken):
            return rect
    return None


# ---------------------------------------------------------------- Pareto plot

_FAMILY_COLOURS = {"baseline": "black", "hamming": "tab:blue", "l1": "tab:orange"}
_OTHER_COLOURS = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
_MARKERS = "osD^v<>"


def _family_label(entry: dict[str, Any]) -> str:
    fam = entry["family"]
    if fam == "baseline" or is_baseline(entry):
        return "baseline"
    return {"hamming": "HamQ (hamming)", "l1": "L1"}.get(fam, fam)


def _point_label(entry: dict[str, Any]) -> str:
    """λ for a setting named by its lambda (``w8-hamming-0.5`` -> "λ 0.5"), else ""."""
    lam = entry.get("lambda")
    if is_baseline(entry) or not isinstance(lam, (int, float)):
        return ""
    return f"λ {lam:g}" if entry["setting"].endswith(f"-{lam:g}") else ""


def _series(entry: dict[str, Any]) -> str:
    """The plotted method of a setting: its family, every baseline as "baseline"."""
    return "baseline" if is_baseline(entry) else entry["family"]


def _colours(summary: list[dict[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    others = itertools.cycle(_OTHER_COLOURS)  # many families repeat colours, not fail
    for s in summary:
        fam = _series(s)
        if fam not in out:
            out[fam] = _FAMILY_COLOURS.get(fam) or next(others)
    return out


def plot_pareto(summary: list[dict[str, Any]], path: Path) -> str:
    """Accuracy against cost, one point per setting (mean ± sd over seeds); returns the
    caption for the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [s for s in summary if "accuracy" in s]
    use_energy = bool(pts) and all("e_cb_j" in s for s in pts)
    cost = "e_cb_j" if use_energy else "cells_on"
    unit, size = energy_unit(s["e_cb_j"] for s in pts) if use_energy else ("", 1.0)
    xs = [s[cost] / size for s in pts]
    ys = [100 * s["accuracy"] for s in pts]
    xe = [(s.get(f"{cost}_sd") or 0.0) / size for s in pts]
    ye = [100 * (s.get("accuracy_sd") or 0.0) for s in pts]
    multi = any(s["seeds"] > 1 for s in pts)

    fig, ax = plt.subplots(figsize=(7.6, 4.8), dpi=120)
    colours = _colours(pts)
    bits = sorted({s["w_bits"] for s in pts}, key=lambda b: -(b or 0))
    for fam, colour in colours.items():
        for j, b in enumerate(bits):
            idx = [i for i, s in enumerate(pts) if _series(s) == fam and s["w_bits"] == b]
            if not idx:
                continue
            label = _family_label(pts[idx[0]]) + (f", {b}-bit" if len(bits) > 1 or b else "")
            ax.errorbar(
                [xs[i] for i in idx],
                [ys[i] for i in idx],
                xerr=[xe[i] for i in idx] if multi else None,
                yerr=[ye[i] for i in idx] if multi else None,
                fmt=_MARKERS[j % len(_MARKERS)],
                color=colour,
                ms=5,
                elinewidth=0.8,
                capsize=2,
                label=label,
                zorder=3,
            )
    front = pareto_front(list(zip(xs, ys, strict=True)))
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "k--", lw=0.9, label="Pareto front",
            zorder=2)  # fmt: skip
    over = "folds" if pts and all(s["unit"] == "folds" for s in pts) else "seeds"
    mean = f", mean over {over}" if multi else ""
    ax.set_xlabel((f"E_cb per inference ({unit})" if use_energy else "ON cells") + mean)
    ax.set_ylabel("top-1 test accuracy (%)" + (", mean" if multi else ""))
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    # Room for labels at the edges: pad the limits by 4% of the span on each side.
    for lim, get in ((ax.set_xlim, ax.get_xlim), (ax.set_ylim, ax.get_ylim)):
        lo, hi = get()
        span = (hi - lo) or 1.0
        lim(lo - 0.04 * span, hi + 0.04 * span)
    fig.tight_layout()
    bars = (xe, ye) if multi else None
    tints = [colours[_series(s)] for s in pts]
    unplaced = _label_points(fig, ax, pts, xs, ys, front, bars, tints)
    fig.savefig(path, dpi=fig.dpi)
    plt.close(fig)

    n = sorted({s["seeds"] for s in pts})
    how = (
        f"mean over {n[0] if len(n) == 1 else f'{n[0]} to {n[-1]}'} {over}, error bars ±1 "
        f"sample standard deviation over {over} on both axes"
        if multi
        else "one seed, so no error bars"
    )
    caption = (
        f"Accuracy against {'E_cb per inference' if use_energy else 'ON cells'}: one point "
        f"per setting ({how}); dashed: the Pareto front of the points; labels give λ, the "
        "colour the method, the marker the weight bit width."
    )
    if unplaced:
        caption += " Not labelled (no free space): " + ", ".join(unplaced) + "."
    return caption


def _label_points(
    fig: Any,
    ax: Any,
    pts: list[dict[str, Any]],
    xs: list[float],
    ys: list[float],
    front: list[int],
    bars: tuple[list[float], list[float]] | None,
    tints: list[str],
) -> list[str]:
    """Place every point's λ label without overlap (front first), clear of the markers and
    if possible of the error bars (``bars``: x and y half-widths in data units); returns the
    settings whose label found no room."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    anchors = [tuple(to_px((x, y))) for x, y in zip(xs, ys, strict=True)]
    marker = 5.0  # half a marker's size in pixels (ms=5 points at 120 dpi, with margin)
    obstacles = [(x - marker, y - marker, x + marker, y + marker) for x, y in anchors]
    soft: list[Rect] = []
    for i, (px, py) in enumerate(anchors) if bars else ():
        (x0, y0), (x1, y1) = (
            to_px((xs[i] - bars[0][i], ys[i] - bars[1][i])),
            to_px((xs[i] + bars[0][i], ys[i] + bars[1][i])),
        )
        soft += [(px - 2, y0, px + 2, y1), (x0, py - 2, x1, py + 2)]
    box = ax.get_window_extent(renderer)
    bounds = (box.x0 + 2, box.y0 + 2, box.x1 - 2, box.y1 - 2)
    order = list(front) + sorted((i for i in range(len(pts)) if i not in front),
                                 key=lambda i: anchors[i])  # fmt: skip
    order = [i for i in order if _point_label(pts[i])]
    sizes = []
    for i in order:
        t = ax.text(0, 0, _point_label(pts[i]), fontsize=7)
        bb = t.get_window_extent(renderer)
        t.remove()
        sizes.append((bb.width, bb.height))
    rects = place_labels([anchors[i] for i in order], sizes, obstacles, bounds, soft=soft)
    unplaced = []
    for i, rect in zip(order, rects, strict=True):
        if rect is None:
            unplaced.append(pts[i]["setting"])
            continue
        ax_, ay_ = anchors[i]
        far = math.hypot(max(rect[0] - ax_, ax_ - rect[2], 0), max(rect[1] - ay_, ay_ - rect[3], 0))
        ax.annotate(
            _point_label(pts[i]),
            xy=(xs[i], ys[i]),
            xytext=(rect[0] - ax_, rect[1] - ay_),
            textcoords="offset pixels",
            ha="left",
            va="bottom",
            fontsize=7,
            color=tints[i],
            arrowprops=dict(arrowstyle="-", lw=0.5, color=tints[i]) if far > 6 else None,
        )
    return unplaced


# ---------------------------------------------------------------- per-layer energy


def pick_layer_setting(
    summary: list[dict[str, Any]], max_loss_pp: float = LAYER_PLOT_MAX_LOSS_PP
) -> tuple[dict[str, Any] | None, bool]:
    """The setting for ``layers.png``: the largest mean E_cb reduction among the settings
    whose mean accuracy loss is within ``max_loss_pp`` of their baseline; when none is, the
    one with the smallest mean loss. Returns (entry, whether it was within the budget);
    (None, False) when no regularized setting has energies."""
    cands = [s for s in summary if not is_baseline(s) and "e_cb_reduction" in s]
    if not cands:
        return None, False
    within = [s for s in cands if s["accuracy_delta_pp"] >= -max_loss_pp - BUDGET_TOL_PP]
    if within:
        return max(within, key=lambda s: s["e_cb_reduction"]), True
    return max(cands, key=lambda s: s["accuracy_delta_pp"]), False


def _load_energy(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / "energy.json").read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("layers"), list)
    return data if ok and all("name" in x and "e_cb_j" in x for x in data["layers"]) else None


def mean_layers(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per layer, the mean over ``reports`` (energy.json dicts of the same model) of
    ``e_cb_j`` and ``e_adc_j`` (joules per inference)."""
    names = [x["name"] for x in reports[0]["layers"]]
    for r in reports[1:]:
        if [x["name"] for x in r["layers"]] != names:
            raise ValueError("energy reports of different models cannot be averaged")
    return [
        {
            "name": name,
            **{
                k: sum(r["layers"][i][k] for r in reports) / len(reports)
                for k in ("e_cb_j", "e_adc_j")
            },
        }
        for i, name in enumerate(names)
    ]


def layer_pair(
    rows: list[dict[str, Any]], entry: dict[str, Any], folder: Path
) -> dict[str, Any] | None:
    """Mean per-layer energies of ``entry``'s runs and of their baselines, over the seeds
    for which both run folders hold an energy report: ``base`` and ``best`` (lists of
    {name, e_cb_j, e_adc_j}), ``base_setting`` and ``seeds``; None when there is no such
    seed."""
    ok = [r for r in rows if r.get("status") == "ok"]
    base_of = {
        r.get("seed"): r for r in ok if is_baseline(r) and r.get("w_bits") == entry["w_bits"]
    }
    pairs, seeds, base_names = [], [], []
    for r in ok:
        if setting_of(r) != entry["setting"] or r.get("seed") not in base_of:
            continue
        mine = _load_energy(folder / str(r["name"]))
        base = _load_energy(folder / str(base_of[r.get("seed")]["name"]))
        if mine is not None and base is not None:
            pairs.append((base, mine))
            seeds.append(r.get("seed"))
            base_names.append(setting_of(base_of[r.get("seed")]))
    if not pairs:
        return None
    return {
        "base": mean_layers([b for b, _ in pairs]),
        "best": mean_layers([m for _, m in pairs]),
        "base_setting": base_names[0],
        "seeds": seeds,
    }


def plot_layers(
    base: list[dict[str, Any]], best: list[dict[str, Any]], names: tuple[str, str], path: Path
) -> None:
    """Horizontal grouped bars, one group per layer: E_cb (left panel) and E_adc (right),
    baseline against the chosen setting, each panel in its own readable unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [x["name"] for x in base]
    n = len(layers)
    fig, axes = plt.subplots(
        1, 2, figsize=(8.4, 1.6 + 0.32 * n), dpi=120, sharey=True, squeeze=False
    )
    ys = list(range(n))
    for ax, key, title in zip(
        axes[0], ("e_cb_j", "e_adc_j"), ("E_cb (crossbar cells)", "E_adc (ADC conversions)"),
        strict=True,
    ):  # fmt: skip
        unit, size = energy_unit([x[key] for x in base] + [x[key] for x in best])
        for rows, off, colour, label in (
            (base, -0.2, "0.55", names[0]),
            (best, 0.2, "tab:blue", names[1]),
        ):
            ax.barh([y + off for y in ys], [x[key] / size for x in rows], height=0.4,
                    color=colour, label=label)  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"per inference ({unit})", fontsize=8)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(ys, layers)
    axes[0][0].invert_yaxis()  # first layer on top
    # The legend above both panels, where it can cover no bar.
    handles, labels = axes[0][0].get_legend_handles_labels()
    height = 1.6 + 0.32 * n
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.28 / height))
    fig.savefig(path, dpi=fig.dpi)
    plt.close(fig)


def layers_section(
    rows: list[dict[str, Any]], summary: list[dict[str, Any]], folder: Path
) -> list[str]:
    """Write ``layers.png`` when the run folders allow it; the report lines either way."""
    entry, within = pick_layer_setting(summary)
    if entry is None:
        return []
    pair = layer_pair(rows, entry, folder)
    if pair is None:
        return [
            "No per-layer energy plot: the run folders of "
            f"`{entry['setting']}` and its baseline hold no readable `energy.json`.",
            "",
        ]
    base, best, seeds = pair["base"], pair["best"], pair["seeds"]
    plot_layers(base, best, (pair["base_setting"], entry["setting"]), folder / "layers.png")
    tb, tm = (sum(x["e_cb_j"] for x in layers) for layers in (base, best))
    e_unit, size = energy_unit([tb, tm])
    how = (
        f"the setting with the largest mean E_cb reduction among those within "
        f"{LAYER_PLOT_MAX_LOSS_PP:g} pp of their baseline"
        if within
        else f"no setting is within {LAYER_PLOT_MAX_LOSS_PP:g} pp of its baseline; this is "
        "the one with the smallest mean loss"
    )
    unit = entry["unit"]  # "seeds" or "folds"
    listed = ", ".join(map(str, seeds))
    over = f"mean over {unit} {listed}" if len(seeds) > 1 else f"{unit[:-1]} {listed}"
    return [
        "![per-layer energy](layers.png)",
        "",
        f"Per-layer E_cb and E_adc per inference of `{entry['setting']}` against its "
        f"baseline: {how} (mean Δacc {entry['accuracy_delta_pp']:+.2f} pp, mean E_cb "
        f"reduction {100 * entry['e_cb_reduction']:.1f}%); {over}, from each run's "
        f"`energy.json`. Total E_cb {tb / size:.4g} -> {tm / size:.4g} {e_unit}.",
        "",
    ]


# ---------------------------------------------------------------- Hamming-weight histogram


def pick_hamq(rows: list[dict[str, Any]], max_loss_pp: float = 2.0) -> dict[str, Any] | None:
    """The HamQ run with the fewest ON cells within ``max_loss_pp``, else the most accurate."""
    ham = [
        r
        for r in rows
        if r.get("status") == "ok" and r.get("regularizer") == "hamming" and r.get("hw_hist")
    ]
    if not ham:
        return None
    within = [r for r in ham if r.get("accuracy_delta_pp", -1e9) >= -max_loss_pp]
    if within:
        return min(within, key=lambda r: r["cells_on"])
    return max(ham, key=lambda r: r["accuracy"])


def plot_hw_hist(rows: list[dict[str, Any]], path: Path) -> bool:
    """Chosen HamQ run vs the baseline of its bit width and seed; False when either (or its
    histogram) is missing."""
    ham = pick_hamq(rows)
    if ham is None:
        return False
    same = [
        r
        for r in rows
        if is_baseline(r)
        and r.get("status") == "ok"
        and r.get("hw_hist")
        and (r.get("w_bits"), r.get("seed")) == (ham.get("w_bits"), ham.get("seed"))
    ]
    if not same:
        return False
    base = same[0]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = [i for r in (base, ham) for i, v in enumerate(r["hw_hist"]) if v]
    n = max(used) + 1
    xs = list(range(n))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r, off, name in (
        (base, -0.2, f"baseline ({base['name']})"),
        (ham, 0.2, f"HamQ ({ham['name']})"),
    ):
        h = (r["hw_hist"] + [0] * n)[:n]
        total = max(1, sum(h))
        ax.bar([x + off for x in xs], [v / total for v in h], width=0.4, label=name)
    ax.set_xlabel("Hamming weight of a weight's stored word(s)")
    ax.set_ylabel("fraction of weights")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- the report


def write_report(rows: list[dict[str, Any]], out: Path, title: str, command: str) -> Path:
    """Write results.csv, results.json, the plots and report.md into ``out`` (the sweep
    folder, whose sub-folders are the runs)."""
    write_csv(rows, out / "results.csv")
    atomic_write_text(out / "results.json", json.dumps(rows, indent=2))
    atomic_write_text(out / "command.txt", command + "\n")
    ok = [r for r in rows if r.get("status") == "ok"]
    parts = [f"# {title}", "", f"Command: `{command}`", "", "## Runs", "", format_table(rows), ""]
    summary = seed_summary(rows)
    regularized = [s for s in summary if not is_baseline(s)]
    if any(s["seeds"] > 1 for s in summary):
        unit = summary[0]["unit"]
        parts += [f"## Over {unit}", "", f"Mean ± sample standard deviation over {unit}:", ""]
        parts += [format_seed_table(summary), "", format_seed_notes(summary), ""]
    elif regularized:
        only = (
            "the per-run 95% interval above is the only measure of uncertainty (test-set "
            "sampling only, not training noise)"
            if any(r.get("test_samples") for r in ok)
            else "these results do not even record the test-set size for a per-run interval"
        )
        parts += [
            "One seed per setting: no spread over seeds can be estimated and no significance "
            f"test is possible; {only}.",
            "",
        ]
    if regularized:
        parts += ["## Within an accuracy-loss budget", "", format_budget_table(summary), ""]
        comparisons = compare_methods(summary)
        if comparisons:
            unit = summary[0]["unit"]
            parts += [
                "Each method's best setting against L1's best at the same budget and bit "
                f"width: mean ± sd over the {unit} both ran (n) of the paired difference, "
                "its 95% t-interval and the p-value of the paired t-test (two-sided; "
                "significant at 5% when p < 0.05; no test with n < 2):",
                "",
                format_comparison_table(comparisons),
                "",
            ]
    if ok:
        parts += ["## Plots", ""]
        if summary:
            caption = plot_pareto(summary, out / "pareto.png")
            parts += ["![accuracy vs cost](pareto.png)", "", caption, ""]
        parts += layers_section(rows, summary, out)
        if plot_hw_hist(rows, out / "hw_hist.png"):
            parts += ["![Hamming weight histogram](hw_hist.png)", ""]
    pending = [r["name"] for r in rows if r.get("status") == NOT_RUN]
    if pending:
        parts += [f"Not run yet ({len(pending)}; `hamq sweep` again trains them): "
                  + ", ".join(pending) + ".", ""]  # fmt: skip
    failed = [r for r in rows if r.get("status") not in ("ok", NOT_RUN)]
    if failed:
        parts += ["Failed runs:", ""] + [f"- {r['name']}: {r['status']}" for r in failed] + [""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path


_INT_COLUMNS = {"seed", "w_bits", "fold", "folds", "test_samples", "cells_on", "cells_total"}
_TEXT_COLUMNS = {"name", "status", "regularizer", "overrides"}


def parse_csv_row(raw: dict[str, str]) -> dict[str, Any]:
    """A ``results.csv`` row back as ``run_sweep`` wrote it: empty cells dropped, counts as
    int, other numbers as float (Python writes floats round-trip exactly), text kept."""
    row: dict[str, Any] = {}
    for key, text in raw.items():
        if key is None or text is None or text == "":
            continue
        if key in _TEXT_COLUMNS:
            row[key] = text
        elif key in _INT_COLUMNS:
            row[key] = int(float(text))
        else:
            try:
                row[key] = float(text)
            except ValueError:
                row[key] = text
    return row


#: What a finished run's row must hold for the report, and the types allowed.
_OK_ROW_FIELDS: dict[str, tuple[type, ...]] = {
    "accuracy": (int, float),
    "cells_on": (int, float),
    "w_bits": (int, float),
    "regularizer": (str,),
}


def check_rows(rows: object, folder: Path) -> None:
    """HamqError naming the first row or field of a sweep's results that the report cannot
    use (hand-edited or damaged results), with the fix."""
    from hamq.errors import HamqError

    fix = f"rerun hamq sweep into '{folder}' (finished runs are reused) to rewrite them"
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise HamqError(f"'{folder}': its results are not a list of rows; {fix}")
    for i, r in enumerate(rows):
        if not isinstance(r.get("name"), str) or not isinstance(r.get("status"), str):
            raise HamqError(f"'{folder}': result row {i} has no name or status; {fix}")
        if r["status"] != "ok":
            continue
        for key, types in _OK_ROW_FIELDS.items():
            value = r.get(key)
            if not isinstance(value, types) or isinstance(value, bool):
                raise HamqError(
                    f"'{folder}': result row '{r['name']}' has {key} = {value!r}; {fix}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise HamqError(
                    f"'{folder}': result row '{r['name']}' has {key} = {value!r}; {fix}"
                )


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """The rows of a sweep folder: ``results.csv`` (else ``results.json``), with the
    Hamming-weight histograms the CSV does not hold taken from ``results.json`` or from the
    run folders' ``run.json``."""
    from hamq.errors import HamqError

    csv_path, json_path = folder / "results.csv", folder / "results.json"
    saved: list[dict[str, Any]] = []
    try:
        if json_path.is_file():
            saved = json.loads(json_path.read_text())
        if csv_path.is_file():
            with csv_path.open(newline="") as f:
                rows = [parse_csv_row(r) for r in csv.DictReader(f)]
        elif saved:
            rows = saved
        else:
            raise HamqError(
                f"'{folder}' has no results.csv: run hamq sweep (or hamq demo) there first"
            )
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise HamqError(f"'{folder}': cannot read its results ({err})") from None
    if not isinstance(saved, list):
        saved = []  # a damaged results.json adds nothing; the CSV (checked below) decides
    check_rows(rows, folder)
    # The CSV decides; results.json adds what the CSV has no column for (hw_hist, ...).
    by_name = {r.get("name"): r for r in saved if isinstance(r, dict)}
    rows = [{**by_name.get(r.get("name"), {}), **r} for r in rows]
    for r in rows:
        if r.get("hw_hist") or r.get("status") != "ok":
            continue
        try:
            record = json.loads((folder / str(r["name"]) / "run.json").read_text())
            r["hw_hist"] = _total_hw_hist(record)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no run folder: the histogram plot is left out
    return rows


def rerender(folder: Path, title: str | None = None) -> Path:
    """Rewrite a sweep folder's report and plots from its results and run folders."""
    rows = read_rows(folder)
    cmd = folder / "command.txt"
    command = cmd.read_text().strip() if cmd.is_file() else f"hamq report {folder}"
    return write_report(rows, folder, title or f"Sweep {folder.name}", command)
