"""Sweep report: ``results.csv``, ``report.md`` with the paper-style table, and plots.

``report.md`` holds the per-run table, then (with more than one seed) mean ± sd over seeds
per setting, then the largest mean reduction within each accuracy-loss budget
(``hamq.experiments.summary``).

Plots (PNG, matplotlib's Agg backend, no display needed):
- ``pareto.png``: accuracy against E_cb per inference (against ON cells when no energy was
  measured), every run a point, the Pareto front drawn, one series per regularizer;
- ``hw_hist.png``: histogram of the stored Hamming weight per weight, baseline against the
  HamQ run with the most ON cells removed within 2 points of accuracy (else the most accurate).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hamq.experiments.summary import format_budget_table, format_seed_table, seed_summary
from hamq.experiments.sweep import format_table, write_csv
from hamq.training.checkpoint import atomic_write_text


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


def _cost_key(rows: list[dict[str, Any]]) -> tuple[str, str]:
    if all("e_cb_j" in r for r in rows):
        return "e_cb_j", "E_cb per inference (J)"
    return "cells_on", "ON cells"


def plot_pareto(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    key, label = _cost_key(ok)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = "osD^v<>"
    bits = sorted({r["w_bits"] for r in ok}, reverse=True)
    for reg in sorted({r["regularizer"] for r in ok}):
        for j, b in enumerate(bits):
            sel = [r for r in ok if r["regularizer"] == reg and r["w_bits"] == b]
            if sel:
                xs, ys = [r[key] for r in sel], [100 * r["accuracy"] for r in sel]
                mark = markers[j % len(markers)]
                ax.scatter(xs, ys, label=f"{reg}, {b}-bit", s=30, marker=mark)
    for r in ok:
        ax.annotate(r["name"], (r[key], 100 * r["accuracy"]), fontsize=6, alpha=0.7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    front = pareto_front([(r[key], r["accuracy"]) for r in ok])
    ax.plot(
        [ok[i][key] for i in front],
        [100 * ok[i]["accuracy"] for i in front],
        "k--",
        lw=1,
        label="Pareto front",
    )
    ax.set_xlabel(label)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pick_hamq(rows: list[dict[str, Any]], max_loss_pp: float = 2.0) -> dict[str, Any] | None:
    """The HamQ run with the fewest ON cells within ``max_loss_pp``, else the most accurate."""
    ham = [r for r in rows if r.get("status") == "ok" and r.get("regularizer") == "hamming"]
    if not ham:
        return None
    within = [r for r in ham if r.get("accuracy_delta_pp", -1e9) >= -max_loss_pp]
    if within:
        return min(within, key=lambda r: r["cells_on"])
    return max(ham, key=lambda r: r["accuracy"])


def plot_hw_hist(rows: list[dict[str, Any]], path: Path) -> bool:
    """Chosen HamQ run vs the baseline of its bit width and seed; False when either is missing."""
    ham = pick_hamq(rows)
    if ham is None:
        return False
    same = [
        r
        for r in rows
        if r.get("regularizer") == "none"
        and r.get("status") == "ok"
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


def write_report(rows: list[dict[str, Any]], out: Path, title: str, command: str) -> Path:
    """Write results.csv, pareto.png, hw_hist.png and report.md into ``out``."""
    write_csv(rows, out / "results.csv")
    atomic_write_text(out / "results.json", json.dumps(rows, indent=2))
    atomic_write_text(out / "command.txt", command + "\n")
    ok = [r for r in rows if r.get("status") == "ok"]
    parts = [f"# {title}", "", f"Command: `{command}`", "", format_table(rows), ""]
    summary = seed_summary(rows)
    if any(s["seeds"] > 1 for s in summary):
        head = "Mean ± sample standard deviation over seeds:"
        parts += [head, "", format_seed_table(summary), ""]
    if any(s["regularizer"] != "none" for s in summary):
        parts += [format_budget_table(summary), ""]
    if ok:
        plot_pareto(rows, out / "pareto.png")
        parts += ["![accuracy vs cost](pareto.png)", ""]
        if plot_hw_hist(rows, out / "hw_hist.png"):
            parts += ["![Hamming weight histogram](hw_hist.png)", ""]
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        parts += ["Failed runs:", ""] + [f"- {r['name']}: {r['status']}" for r in failed] + [""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path


def rerender(folder: Path, title: str | None = None) -> Path:
    """Rewrite a sweep folder's report and plots from its ``results.json``."""
    from hamq.errors import HamqError

    src = folder / "results.json"
    if not src.is_file():
        raise HamqError(
            f"'{folder}' has no results.json: run hamq sweep (or hamq demo) there first"
        )
    rows = json.loads(src.read_text())
    cmd = folder / "command.txt"
    command = cmd.read_text().strip() if cmd.is_file() else f"hamq report {folder}"
    return write_report(rows, folder, title or f"Sweep {folder.name}", command)
