"""Issue 11's twofold-sparsity table from a sweep's ``results.json``: every run by family
(bit-level term, LFSR pruning, both, both with HamQ, HamQ, L1) and sparsity, its accuracy
and crossbar accuracy against the dense unregularized baseline, E_cb and E_cb&AD and their
gains (baseline energy / run energy), then the issue's targets checked on those rows.

    python scripts/twofold_table.py runs/twofold-cifar-r20
    python scripts/twofold_table.py runs/twofold-cifar-r20 --energies sec   # sec/<run>.json

Reads only what the sweep wrote; a sweep still running gives the table of its finished runs.
A run is compared with a finished baseline trained on the same QAT schedule (as many QAT
epochs, the same distillation weight, the same seed; each run's ``config.yaml``), else
with the sweep's first baseline, and marked † then.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from hamq.errors import HamqError
from hamq.experiments.energy_reports import ReportError, on_cells, read_reports
from hamq.experiments.markdown import markdown_table
from hamq.experiments.stats import format_p, one_sample_t

FAMILIES = {
    ("none", False): "baseline",
    ("l1", False): "L1",
    ("hamming", False): "HamQ",
    ("energy", False): "energy",
    ("bits", False): "bits",
    ("none", True): "prune",
    ("bits", True): "twofold (prune + bits)",
    ("hamming", True): "twofold + HamQ",
    ("energy", True): "twofold + energy",
}
CLEARED = " + cleared columns"
TWOFOLD_GAIN_X = 5.0  # issue 11: twofold + best regularizer, E_cb&AD gain ...
TWOFOLD_LOSS_PP = 1.5  # ... at no more than this loss
HAMQ_E_CB_RED = 0.60  # HamQ alone: E_cb reduction ...
HAMQ_LOSS_PP = 1.0  # ... at no more than this loss
PAPER = (0.54, 1.5)  # the HamQ paper's ResNet-18 point: -54% E_cb at -1.5 pp


def sparsity_of(row: dict[str, Any], run_dir: Path | None = None) -> float:
    """The fraction of the quantized layers' weights the run pruned: from its ``run.json``
    (the masks' kept counts over every layer's weights, so per-layer sparsities count
    as trained), else the ``sparsity.sparsity`` override; 0 for a dense run."""
    if not row.get("pruned"):
        return 0.0
    try:
        record = json.loads((run_dir / "run.json").read_text()) if run_dir else {}
        total = sum(int(x["weights"]) for x in record["layers"])
        pruned = sum(math.prod(m["shape"]) - int(m["kept"]) for m in record["masks"])
        return pruned / total
    except (OSError, ValueError, KeyError, TypeError):
        m = re.search(r"(?:^| )sparsity\.sparsity=([0-9.]+)", row.get("overrides", ""))
        return float(m.group(1)) if m else 0.0


def qat_epochs_of(run_dir: Path) -> tuple[int, float, int] | None:
    """The run's QAT schedule as it trained (its ``config.yaml``): ``train.qat_epochs``,
    ``train.distill`` (0 when absent) and the seed (0 when absent; a `-qsN` run trains QAT
    with seed N from the seed-0 float stage, so it pairs with the baseline of seed N); None
    when the folder holds no readable config."""
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        train = cfg["train"]
        return int(train["qat_epochs"]), float(train.get("distill", 0.0)), int(cfg.get("seed", 0))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        return None


def family_of(row: dict[str, Any]) -> str:
    """The row's family; ``energy`` with ``regularizer.activity=batch`` (trained on the
    inputs too) is marked ``(batch)``, and a run that cleared its nearly empty columns at
    the end (``sparsity.clear_columns`` above 0) ``+ cleared columns``."""
    key = (row.get("regularizer", "none"), bool(row.get("pruned")))
    name = FAMILIES.get(key, f"{key[0]}{' + prune' if key[1] else ''}")
    overrides = row.get("overrides", "").split()
    if "regularizer.activity=batch" in overrides:
        name += " (batch)"
    if any(o.startswith("sparsity.clear_columns=") and o != "sparsity.clear_columns=0"
           for o in overrides):  # fmt: skip
        name += CLEARED
    return name


def base_family(family: str) -> str:
    """The family without its ``(batch)`` and cleared-columns marks."""
    return family.removesuffix(CLEARED).removesuffix(" (batch)")


def reprice(rows: list[dict[str, Any]], energies: Path) -> list[dict[str, Any]]:
    """``rows`` priced on another hardware setting: each run's energies, ON cells and
    arrays from ``energies/<run name>.json`` (a ``hamq energy --json`` report); runs
    without one are left out, and every report must be priced as the first
    (``hamq.experiments.energy_reports``). The crossbar accuracy, measured on the sweep's
    own hardware, is dropped, since the other setting may convert differently."""
    named = [(r, energies / f"{r['name']}.json") for r in rows]
    named = [(r, p) for r, p in named if p.is_file()]
    if not named:
        raise HamqError(f"'{energies}' holds no <run name>.json report of a finished run; "
                        "write them with `hamq energy RUN --json > DIR/RUN.json`")  # fmt: skip
    try:
        reports = read_reports([p for _, p in named])
    except ReportError as e:
        raise HamqError(str(e)) from None
    out = []
    for (r, path), rep in zip(named, reports, strict=True):
        t = rep["totals"]
        if "dense_tiles" not in t:
            raise HamqError(f"{path}: totals lack dense_tiles; rerun `hamq energy --json`")
        out.append({**r, "e_cb_j": t["e_cb_j"], "e_cb_ad_j": t["e_cb_j"] + t["e_adc_j"],
                    "crossbar_accuracy": None, "hardware_source": rep.get("hardware_source", ""),
                    "_report": rep})  # fmt: skip
    return out


def rows_of(
    folder: Path, energies: Path | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    path = folder / "results.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        msg = f"cannot read '{path}' ({e}); run `hamq sweep` into that folder first"
        raise HamqError(msg) from e
    ok = [r for r in rows if r.get("status") == "ok" and "e_cb_ad_j" in r]
    if energies is not None:
        ok = reprice(ok, energies)
    first = next((r for r in ok if family_of(r) == "baseline"), None)
    if first is None:
        raise HamqError(f"'{path}' has no finished baseline run with energies")
    for r in ok:
        r["qat_epochs"] = qat_epochs_of(folder / r["name"])
    bases: dict[tuple[int, float, int] | None, dict[str, Any]] = {}
    for r in ok:
        if family_of(r) == "baseline":
            bases.setdefault(r["qat_epochs"], r)
    for r in ok:
        r["family"], r["sparsity"] = family_of(r), sparsity_of(r, folder / r["name"])
        # against the baseline trained on the same QAT schedule, when the sweep has one
        base = bases.get(r["qat_epochs"], first)
        r["other_schedule"] = r["qat_epochs"] != base["qat_epochs"]
        r["gain_cb"] = base["e_cb_j"] / r["e_cb_j"]
        r["gain_cb_ad"] = base["e_cb_ad_j"] / r["e_cb_ad_j"]
        r["dacc_pp"] = 100 * (r["accuracy"] - base["accuracy"])
        xb, xb0 = r.get("crossbar_accuracy"), base.get("crossbar_accuracy")
        r["dxb_pp"] = None if xb is None or xb0 is None else 100 * (xb - xb0)
    for r in ok:
        rep = r.pop("_report", None)
        r.update(mapped_counts(folder / r["name"]) if rep is None else counts_of(rep))
    base = first
    order = list(dict.fromkeys(FAMILIES.values()))
    ok.sort(key=lambda r: (order.index(base_family(r["family"]))
                           if base_family(r["family"]) in order else 99,
                           r["sparsity"], r.get("lambda", 0.0)))  # fmt: skip
    return base, ok


def counts_of(report: dict[str, Any]) -> dict[str, int]:
    """ON cells, arrays and dense arrays of the layout an energy report measured."""
    totals = report["totals"]
    return {"on_cells": on_cells(report), "arrays": int(totals["tiles"]),
            "dense_arrays": int(totals["dense_tiles"])}  # fmt: skip


def mapped_counts(run_dir: Path) -> dict[str, int]:
    """ON cells, arrays and dense arrays of the run as its energy was measured (the run's
    ``energy.json``, the sweep's ``energy_hw``), which need not be the representation the
    run trained with; {} when the run has no readable energy.json."""
    try:
        return counts_of(json.loads((run_dir / "energy.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _pp(x: float | None) -> str:
    return "" if x is None else f"{x:+.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = ["family", "sparsity", "λ", "run", "accuracy", "Δacc (pp)", "crossbar acc.",
            "Δxbar (pp)", "ON cells", "arrays (dense)", "E_cb (µJ)", "E_cb&AD (µJ)",
            "E_cb gain", "E_cb&AD gain"]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        xb = r.get("crossbar_accuracy")
        out.append("| " + " | ".join([
            r["family"], f"{100 * r['sparsity']:.0f}%", f"{r.get('lambda', 0):g}",
            r["name"] + (" †" if r["other_schedule"] else ""),
            f"{100 * r['accuracy']:.2f}%", _pp(r["dacc_pp"]),
            "" if xb is None else f"{100 * xb:.2f}%", _pp(r["dxb_pp"]),
            str(r.get("on_cells", "")),
            f"{r['arrays']} ({r['dense_arrays']})" if "arrays" in r else "",
            f"{1e6 * r['e_cb_j']:.2f}", f"{1e6 * r['e_cb_ad_j']:.2f}",
            f"{r['gain_cb']:.2f}x", f"{r['gain_cb_ad']:.2f}x",
        ]) + " |")  # fmt: skip
    return "\n".join(out)


def _best(rows: list[dict[str, Any]], key: str, loss_pp: float) -> dict[str, Any] | None:
    """The row with the largest ``key`` among those losing at most ``loss_pp``; {} when
    some rows exist but none is within the budget, None when there are no rows."""
    within = [r for r in rows if r["dacc_pp"] >= -loss_pp]
    return max(within, key=lambda r: r[key]) if within else ({} if rows else None)


def _verdict(name: str, best: dict[str, Any] | None, what: str, met: bool,
             seeds: dict[str, list[dict[str, Any]]] | None = None) -> str:  # fmt: skip
    if best is None:
        return f"- {name}: no finished run of this family yet: **not measured**."
    if not best:
        return f"- {name}: no finished run within the loss budget: **not met**."
    word = "**met**" if met else "**not met**"
    line = f"- {name}: best is `{best['name']}`, {what} at {best['dacc_pp']:+.2f} pp: {word}"
    group = QAT_SEED.sub("", best["name"])
    if seeds and group in seeds:  # one seed of several: the mean decides, not the best seed
        n = len(seeds[group])
        line += f" for this run, one of {n} QAT seeds of `{group}` (their mean below)"
    return line + "."


def targets(rows: list[dict[str, Any]]) -> str:
    seeds = seed_groups(rows)
    twofold = [r for r in rows if r["family"].startswith("twofold")]
    hamq = [r for r in rows if base_family(r["family"]) == "HamQ"]
    lines = []
    b = _best(twofold, "gain_cb_ad", TWOFOLD_LOSS_PP)
    lines.append(_verdict(
        f"Twofold + a regularizer, ≥ {TWOFOLD_GAIN_X:g}x less E_cb&AD at ≤ {TWOFOLD_LOSS_PP} pp",
        b, f"{b['gain_cb_ad']:.2f}x" if b else "", bool(b and b["gain_cb_ad"] >= TWOFOLD_GAIN_X),
        seeds,
    ))  # fmt: skip
    b = _best(hamq, "gain_cb", HAMQ_LOSS_PP)
    red = 1 - 1 / b["gain_cb"] if b else 0.0
    lines.append(_verdict(
        f"HamQ alone, ≥ {100 * HAMQ_E_CB_RED:.0f}% less E_cb at ≤ {HAMQ_LOSS_PP} pp",
        b, f"{100 * red:.1f}% less E_cb", red >= HAMQ_E_CB_RED, seeds,
    ))  # fmt: skip
    for fam in ("HamQ", "L1"):
        b = _best([r for r in rows if base_family(r["family"]) == fam], "gain_cb", PAPER[1])
        red = 1 - 1 / b["gain_cb"] if b else 0.0
        lines.append(_verdict(
            f"{fam} against the HamQ paper's -{100 * PAPER[0]:.0f}% E_cb at -{PAPER[1]} pp",
            b, f"{100 * red:.1f}% less E_cb", red >= PAPER[0],
        ))  # fmt: skip
    return "\n".join(lines)


QAT_SEED = re.compile(r"-qs(\d+)$")


def seed_groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Settings trained on more than one QAT seed: a run ``NAME-qsN`` (QAT seed N on the
    seed-0 float stage) joins ``NAME``; only groups of two runs or more, each run compared
    with the baseline of its own seed (``rows_of``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(QAT_SEED.sub("", r["name"]), []).append(r)
    return {k: v for k, v in groups.items() if len(v) >= 2}


def _mean_sd(values: list[float], fmt: str) -> str:
    sd = format(statistics.stdev(values), fmt.lstrip("+"))
    return f"{format(statistics.fmean(values), fmt)} ± {sd}"


def seeds_table(groups: dict[str, list[dict[str, Any]]]) -> str:
    """Mean ± sd over the QAT seeds of each group, with the one-sample t-test of its Δacc
    (p, and the 95% t-interval of the mean loss)."""
    head = ["setting", "QAT seeds", "accuracy", "Δacc (pp)", "Δacc 95% CI", "p (Δacc = 0)",
            "E_cb red.", "E_cb&AD gain"]  # fmt: skip
    out = []
    for name, rs in groups.items():
        d = [r["dacc_pp"] for r in rs]
        t = one_sample_t(d)
        red = [100 * (1 - 1 / r["gain_cb"]) for r in rs]
        out.append([
            name, str(len(rs)), _mean_sd([100 * r["accuracy"] for r in rs], ".2f") + "%",
            _mean_sd(d, "+.2f"), "" if t is None else f"[{t.ci_low:+.2f}, {t.ci_high:+.2f}]",
            "" if t is None else format_p(t.p), _mean_sd(red, ".1f") + "%",
            _mean_sd([r["gain_cb_ad"] for r in rs], ".2f") + "x",
        ])  # fmt: skip
    return markdown_table(head, out)


def seed_verdicts(groups: dict[str, list[dict[str, Any]]]) -> str:
    """The issue's targets on the mean over QAT seeds: HamQ alone (E_cb reduction) for a
    HamQ group, the twofold target (E_cb&AD gain) for a twofold group."""
    lines = []
    for name, rs in groups.items():
        fam = base_family(rs[0]["family"])
        d = statistics.fmean(r["dacc_pp"] for r in rs)
        if fam == "HamQ":
            red = statistics.fmean(1 - 1 / r["gain_cb"] for r in rs)
            met = red >= HAMQ_E_CB_RED and d >= -HAMQ_LOSS_PP
            what = (f"HamQ alone over {len(rs)} QAT seeds, ≥ {100 * HAMQ_E_CB_RED:.0f}% less "
                    f"E_cb at ≤ {HAMQ_LOSS_PP} pp: `{name}`, "
                    f"mean {100 * red:.1f}% less E_cb")  # fmt: skip
        elif fam.startswith("twofold"):
            gain = statistics.fmean(r["gain_cb_ad"] for r in rs)
            met = gain >= TWOFOLD_GAIN_X and d >= -TWOFOLD_LOSS_PP
            what = (f"Twofold over {len(rs)} QAT seeds, ≥ {TWOFOLD_GAIN_X:g}x less E_cb&AD at "
                    f"≤ {TWOFOLD_LOSS_PP} pp: `{name}`, mean {gain:.2f}x")  # fmt: skip
        else:
            continue
        lines.append(f"- {what} at {d:+.2f} pp: {'**met**' if met else '**not met**'}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", type=Path, help="a sweep folder (holding results.json)")
    p.add_argument("--energies", type=Path, metavar="DIR", help="price the runs on "
                   "DIR/<run name>.json, `hamq energy --json` reports of one other hardware "
                   "setting (the baseline's too); runs without one are left out")  # fmt: skip
    args = p.parse_args(argv)
    try:
        _, rows = rows_of(args.sweep, args.energies)
    except HamqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.energies is not None:
        print(f"Energies from {args.energies}: {rows[0].get('hardware_source', '')}\n")
    print(table(rows), "", targets(rows), sep="\n")
    groups = seed_groups(rows)
    if groups:
        print("", "Over QAT seeds (mean ± sd; each seed against its own baseline):", "",
              seeds_table(groups), "", seed_verdicts(groups), sep="\n")  # fmt: skip
    if any(r["other_schedule"] for r in rows):
        print("\n† trained on another QAT schedule than every finished baseline: compared "
              "with the sweep's own baseline")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
