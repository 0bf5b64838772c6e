"""A hardware study: trained runs measured on a grid of hardware variants, crossbar accuracy
and energy side by side (``hamq study CONFIG --out DIR``).

A study file names trained run folders (globs) and hardware variants; every run is measured
on every variant, with :func:`~hamq.training.crossbar_eval.crossbar_evaluation` for the
accuracy as the crossbars compute it and ``estimate_energy`` (each layer at its planned ADC
bits) for E_cb, E_adc, E_cb&AD, TOPS/W, cycles and the mapped arrays::

    runs: [runs/huang-kws/w8-*]         # run folders (globs); a setting = name less -sN
    baseline: w8-baseline               # optional: the setting others are compared with
    variants:                           # one hardware each: a preset or file, --set style
      - {name: naive, hw: rram-1b, set: [array.representation=differential, adc.policy=full]}
      - {name: shifted-opt, hw: rram-1b, set: [array.representation=shifted, adc.policy=optimized]}
    reference: naive                    # ratios against this variant, run by run
    samples: 1000                       # test samples per measurement
    calibration_samples: 500            # calibration (validation) samples per ADC plan
    subset: stratified                  # which samples when fewer than a split's (or first)

Each (run, variant) result is written atomically to ``OUT/cells/<run>__<variant>.json`` as
soon as it is measured, with what it was measured from (hamq version, run folder,
variant, sample counts), so an interrupted study resumes where it stopped and a changed
one re-measures only what changed; ``study.json`` and ``study.md`` are rewritten from the
cells at the end.
"""

from __future__ import annotations

import glob
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from hamq import __version__
from hamq.config_base import Section, validate
from hamq.data.bundle import EvalSubset
from hamq.errors import HamqError
from hamq.files import load_yaml_file
from hamq.training.checkpoint import atomic_write_text

#: Figures of a (run, variant) measurement, in the order of the tables.
FIGURES = (
    "crossbar_accuracy",
    "accuracy",
    "e_cb_j",
    "e_adc_j",
    "e_cb_ad_j",
    "tops_per_w",
    "cycles",
    "tiles",
    "mapped_cols",
    "adc_bits_mean",
)


class Variant(Section):
    """One hardware variant: ``hw`` (preset or YAML file) with ``set`` overrides."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    hw: str
    set: list[str] = Field(default_factory=list)


class StudyConfig(Section):
    """A hardware study (see the module docstring)."""

    runs: list[str] = Field(min_length=1)
    variants: list[Variant] = Field(min_length=1)
    reference: str | None = None
    baseline: str | None = None
    samples: int | None = Field(1000, ge=1)
    calibration_samples: int | None = Field(None, ge=1)
    # stratified: a fixed class-proportional sample; first: the first N in stored order,
    # as hamq 0.4 measured (the studies behind RESULTS.md before 0.5 say so to reproduce).
    subset: EvalSubset = "stratified"

    @model_validator(mode="after")
    def _names(self) -> StudyConfig:
        names = [v.name for v in self.variants]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"variants: name {', '.join(dup)} is used more than once")
        if self.reference is not None and self.reference not in names:
            raise ValueError(
                f"reference = {self.reference!r} is not a variant; variants: {', '.join(names)}"
            )
        return self


def load_study(path: str | Path) -> StudyConfig:
    data = load_yaml_file(path, "study file")
    return validate(StudyConfig, data, source=f"study file {path}")


def study_runs(cfg: StudyConfig, base: Path) -> list[Path]:
    """The run folders the study's globs match (relative globs from ``base``), sorted,
    each with a ``run.json``; refuses a glob that matches no run."""
    found: list[Path] = []
    for pattern in cfg.runs:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        hits = sorted(Path(p) for p in glob.glob(full) if (Path(p) / "run.json").is_file())
        if not hits:
            raise HamqError(
                f"runs: {pattern!r} matches no finished run folder (one holding run.json); "
                f"train them first (hamq sweep / hamq train)"
            )
        found += [h for h in hits if h not in found]
    return found


def measure(
    run_dir: Path,
    variant: Variant,
    samples: int | None,
    calib: int | None,
    subset: EvalSubset = "stratified",
) -> dict:
    """One (run, variant) cell: both accuracies, the ADC plan and the energy figures, on
    ``samples`` test and ``calib`` calibration samples picked by ``subset``."""
    from hamq.hardware.estimate import estimate_energy
    from hamq.training.crossbar_eval import adc_bits_of, crossbar_evaluation
    from hamq.training.run_hardware import resolve_hardware
    from hamq.training.runs import load_run

    run = load_run(run_dir)
    hw = resolve_hardware(
        run.record, run.config, f"{run_dir}/run.json", variant.hw, variant.set
    ).spec
    data = run.data()
    data.eval_subset = subset
    xb = crossbar_evaluation(run.model, data, hw, test_samples=samples,
                             calibration_samples=calib)  # fmt: skip
    bits = adc_bits_of(xb)
    report = estimate_energy(run.model, data, hw, samples=samples, adc_bits=bits)
    t = report.to_dict()["totals"]
    layers = report.layers
    return {
        "run": run_dir.name,
        "variant": variant.name,
        "seed": run.config.seed,
        "crossbar_accuracy": xb["crossbar_accuracy"],
        "accuracy": xb["accuracy"],
        "test_samples": xb["test_samples"],
        "subset": subset,
        "e_cb_j": t["e_cb_j"],
        "e_adc_j": t["e_adc_j"],
        "e_cb_ad_j": t["e_cb_ad_j"],
        "tops_per_w": t["tops_per_w"],
        "cycles": sum(layer.cycles for layer in layers),
        "tiles": sum(layer.tiles for layer in layers),
        "mapped_cols": sum(layer.mapped_cols for layer in layers),
        "adc_bits_mean": statistics.fmean(bits.values()),
        "adc": xb["adc"],
        "calibration": xb["calibration"],
        "hardware_spec": hw.model_dump(mode="json"),
    }


def setting_of(run_name: str) -> str:
    """``w8-baseline-s2`` -> ``w8-baseline``: the run's name less its seed suffix."""
    head, _, tail = run_name.rpartition("-s")
    return head if head and tail.isdigit() else run_name


def run_study(
    cfg: StudyConfig,
    out: Path,
    base: Path,
    log: Callable[[str], None] = print,
    measure_fn: Callable[[Path, Variant, int | None, int | None, EvalSubset], dict] = measure,
) -> list[dict[str, Any]]:
    """Measure every (run, variant) not measured yet; return all cells."""
    runs = study_runs(cfg, base)
    cells_dir = out / "cells"
    cells = []
    for run_dir in runs:
        for v in cfg.variants:
            path = cells_dir / f"{run_dir.name}__{v.name}.json"
            key = {
                "hamq": __version__,  # a new version may compute a cell differently
                "source": str(run_dir.resolve()),
                "variant": v.model_dump(mode="json"),
                "samples": cfg.samples,
                "calibration_samples": cfg.calibration_samples,
            }
            if cfg.subset != "first":  # cells measured before subsets existed took the first
                key["subset"] = cfg.subset
            if path.is_file():
                cell = json.loads(path.read_text())
                if cell.get("_key") == key:  # measured the same way: keep
                    cells.append(cell)
                    continue
            cell = measure_fn(run_dir, v, cfg.samples, cfg.calibration_samples, cfg.subset)
            cell["_key"] = key
            atomic_write_text(path, json.dumps(cell, indent=2))
            log(
                f"{run_dir.name} on {v.name}: crossbar {100 * cell['crossbar_accuracy']:.2f}% "
                f"(ideal {100 * cell['accuracy']:.2f}%), E_cb&AD {cell['e_cb_ad_j']:.4g} J, "
                f"{cell['tops_per_w']:.4g} TOPS/W"
            )
            cells.append(cell)
    return cells


def summarize(
    cells: list[dict[str, Any]], reference: str | None, baseline: str | None = None
) -> list[dict[str, Any]]:
    """One entry per (setting, variant): mean and sd over seeds of every figure, and,
    with a reference variant, the mean over runs of each run's ratio to its own reference
    measurement (TOPS/W, cycles, tiles, E_cb&AD) and its crossbar-accuracy change (pp).

    With a ``baseline`` setting, paired by seed: ``vs_baseline`` (E_cb&AD reduction
    against the baseline on the same variant, and on the reference variant, as fractions;
    crossbar-accuracy change in pp with its one-sample t-test), each mean and sd."""
    from hamq.experiments.stats import one_sample_t

    ref = {c["run"]: c for c in cells if c["variant"] == reference}
    base = {
        (c["seed"], c["variant"]): c
        for c in cells
        if baseline is not None and setting_of(c["run"]) == baseline
    }
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((setting_of(c["run"]), c["variant"]), []).append(c)
    out = []
    for (setting, variant), group in groups.items():
        entry: dict[str, Any] = {"setting": setting, "variant": variant, "runs": len(group)}
        for f in FIGURES:
            vals = [float(c[f]) for c in group]
            entry[f] = statistics.fmean(vals)
            entry[f"{f}_sd"] = statistics.stdev(vals) if len(vals) > 1 else None
        paired = [(c, ref[c["run"]]) for c in group if c["run"] in ref]
        if paired:
            for f in ("tops_per_w", "cycles", "tiles", "e_cb_ad_j"):
                entry[f"{f}_ratio"] = statistics.fmean(a[f] / b[f] for a, b in paired)
            entry["crossbar_delta_pp"] = statistics.fmean(
                100 * (a["crossbar_accuracy"] - b["crossbar_accuracy"]) for a, b in paired
            )
        same = [(c, base[c["seed"], variant]) for c in group if (c["seed"], variant) in base]
        if same and setting != baseline:
            entry["vs_baseline"] = _versus(same, base, reference, one_sample_t)
        out.append(entry)
    return out


def _versus(
    same: list[tuple[dict[str, Any], dict[str, Any]]],
    base: dict[tuple[int, str], dict[str, Any]],
    reference: str | None,
    t_test: Callable[[list[float]], Any],
) -> dict[str, Any]:
    """Paired-by-seed comparison of a setting's runs with the baseline's."""

    def stat(values: list[float]) -> dict[str, float | None]:
        sd = statistics.stdev(values) if len(values) > 1 else None
        return {"mean": statistics.fmean(values), "sd": sd}

    red = [1 - a["e_cb_ad_j"] / b["e_cb_ad_j"] for a, b in same]
    delta = [100 * (a["crossbar_accuracy"] - b["crossbar_accuracy"]) for a, b in same]
    out: dict[str, Any] = {
        "seeds": len(same),
        "e_cb_ad_reduction": stat(red),
        "crossbar_delta_pp": stat(delta),
        "crossbar_delta_p": getattr(t_test(delta), "p", None),
    }
    at_ref = [
        1 - a["e_cb_ad_j"] / base[a["seed"], reference]["e_cb_ad_j"]
        for a, _ in same
        if reference is not None and (a["seed"], reference) in base
    ]
    if len(at_ref) == len(same):
        out["e_cb_ad_reduction_vs_reference"] = stat(at_ref)
    return out


def _pm(entry: dict[str, Any], key: str, fmt: str, scale: float = 1.0) -> str:
    sd = entry.get(f"{key}_sd")
    text = fmt.format(entry[key] * scale)
    return text if sd is None else f"{text} ± {fmt.format(sd * scale)}"


def format_study(summary: list[dict[str, Any]], reference: str | None) -> str:
    """The study table (Markdown), one row per (setting, variant)."""
    head = ["setting", "variant", "runs", "crossbar acc. (%)", "ideal acc. (%)"]
    head += ["E_cb (nJ)", "E_adc (nJ)", "E_cb&AD (nJ)", "TOPS/W", "cycles", "arrays"]
    head += ["mean ADC bits"]
    if reference:
        head += [f"TOPS/W vs {reference}", "cycles vs", "arrays vs", "Δ crossbar acc. (pp)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summary:
        row = [e["setting"], e["variant"], str(e["runs"]),
               _pm(e, "crossbar_accuracy", "{:.2f}", 100), _pm(e, "accuracy", "{:.2f}", 100),
               _pm(e, "e_cb_j", "{:.4g}", 1e9), _pm(e, "e_adc_j", "{:.4g}", 1e9),
               _pm(e, "e_cb_ad_j", "{:.4g}", 1e9), _pm(e, "tops_per_w", "{:.4g}"),
               f"{e['cycles']:.4g}", f"{e['tiles']:.0f}", f"{e['adc_bits_mean']:.2f}"]  # fmt: skip
        if reference:
            if "tops_per_w_ratio" in e:
                row += [f"{e['tops_per_w_ratio']:.2f}x", f"{e['cycles_ratio']:.2f}x",
                        f"{e['tiles_ratio']:.2f}x", f"{e['crossbar_delta_pp']:+.2f}"]  # fmt: skip
            else:
                row += ["", "", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_versus(summary: list[dict[str, Any]], baseline: str, reference: str | None) -> str:
    """The table of each setting against the baseline, paired by seed (Markdown)."""
    from hamq.experiments.stats import format_p

    head = ["setting", "variant", "seeds", "E_cb&AD red. vs baseline, same hardware"]
    if reference:
        head.append(f"E_cb&AD red. vs baseline on {reference}")
    head += ["Δ crossbar acc. (pp)", "p (Δ = 0)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pm(d: dict[str, Any], scale: float, fmt: str) -> str:
        text = fmt.format(d["mean"] * scale)
        sd = None if d["sd"] is None else fmt.replace("+", "").format(d["sd"] * scale)
        return text if sd is None else f"{text} ± {sd}"

    for e in summary:
        v = e.get("vs_baseline")
        if v is None:
            continue
        row = [e["setting"], e["variant"], str(v["seeds"])]
        row.append(pm(v["e_cb_ad_reduction"], 100, "{:.1f}%"))
        if reference:
            r = v.get("e_cb_ad_reduction_vs_reference")
            row.append("" if r is None else pm(r, 100, "{:.1f}%"))
        row += [pm(v["crossbar_delta_pp"], 1, "{:+.2f}"), format_p(v["crossbar_delta_p"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_study(cells: list[dict[str, Any]], cfg: StudyConfig, out: Path, command: str) -> Path:
    """``study.json`` (cells and summary) and ``study.md`` (the tables), atomically."""
    summary = summarize(cells, cfg.reference, cfg.baseline)
    atomic_write_text(
        out / "study.json", json.dumps({"cells": cells, "summary": summary}, indent=2)
    )
    text = "\n".join(
        [
            "# Hardware study",
            "",
            f"Command: `{command}`",
            "",
            format_study(summary, cfg.reference),
            "",
            "- crossbar acc.: test accuracy as the crossbars compute it, every partial sum "
            "through the layer's planned ADC (docs/crossbar.md); ideal acc.: the integer "
            "network on the same samples.",
            "- Energies per inference; TOPS/W = 2 MACs / E_total; cycles: array cycles per "
            "inference (throughput); arrays: crossbar arrays mapped (area proxy).",
            "- Ratios and Δ are taken run by run against the same run on the reference "
            "variant, then averaged; ± is the sample sd over seeds.",
        ]
    )
    if cfg.baseline is not None:
        text += "\n".join(
            [
                "",
                "",
                f"## Against the baseline ({cfg.baseline}), paired by seed",
                "",
                format_versus(summary, cfg.baseline, cfg.reference),
                "",
                "- E_cb&AD red.: 1 - E_cb&AD / the baseline's of the same seed, on the same "
                "hardware variant, and on the reference variant (the baseline's own "
                "preset); mean ± sd over seeds.",
                "- Δ crossbar acc.: crossbar accuracy minus the baseline's (same seed and "
                "variant); p: two-sided one-sample t-test of those differences against 0.",
            ]
        )
    path = out / "study.md"
    atomic_write_text(path, text + "\n")
    return path
