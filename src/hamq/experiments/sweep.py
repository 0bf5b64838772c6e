"""Sweeps: a baseline, L1 and HamQ over a lambda grid (and weight bit widths), each a
normal run folder; resumable (finished runs are reused, a failed run is recorded and the
others go on); results gathered into one table.

A sweep file (YAML)::

    recipe: ../recipes/dscnn-kws-8bit.yaml   # a run config (path relative to this file)
    base: {train: {qat_epochs: 10}}          # overrides of the recipe
    bits: [8, 6]                    # weight bits; each width gets its own baseline
    l1: [1.0e-2]                    # L1 lambdas
    hamming: [0.5, 2.0]             # HamQ lambdas
    energy: []                      # lambdas of the energy regularizer
    extra:                          # any other runs, as --set overrides
      - {name: sin-2, set: [regularizer.name=hamming, regularizer.surrogate=sin]}
    energy_hw: rram-1b              # hardware for the energy columns (default: each run's own)
    energy_samples: 1000            # test samples the energy is measured on
    share_float: true               # float pre-training once per seed, reused by all runs

With ``share_float`` the first run of each seed trains its float stage and saves
``float.safetensors``; every other run of that seed starts QAT from those weights
(``train.init_from``, ``train.float_epochs=0``), so a grid of N runs pays for one float
stage. The float stage depends only on the seed, model, data and float optimizer, none of
which the grid varies; a sweep whose extra runs change those must set share_float: false.
"""

from __future__ import annotations

import csv
import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, model_validator

from hamq.config_base import Section, validate
from hamq.errors import HamqError
from hamq.training.checkpoint import atomic_write_text
from hamq.training.config import TrainConfig, apply_overrides


class ExtraRun(Section):
    """A run beyond the grid: a name and ``--set``-style overrides of the base config."""

    name: str
    set: list[str] = Field(default_factory=list)


class SweepConfig(Section):
    """What a sweep trains (see the module docstring).

    folds: speaker-disjoint k-fold (audio data sets): the i-th seed's runs test on fold i
        (``data.folds = folds``, ``data.fold = i``), so the seeds together test every clip
        once; ``seeds`` must then list ``folds`` seeds (default ``0 .. folds - 1``).
    """

    @model_validator(mode="before")
    @classmethod
    def _fold_seeds(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("folds") is not None and "seeds" not in data:
            folds = data["folds"]
            if isinstance(folds, int) and not isinstance(folds, bool) and 2 <= folds <= 100:
                return {**data, "seeds": list(range(folds))}
        return data

    @model_validator(mode="after")
    def _fold_count(self) -> SweepConfig:
        if self.folds is not None and len(self.seeds) != self.folds:
            raise ValueError(
                f"folds = {self.folds} needs one seed per fold, but seeds lists "
                f"{len(self.seeds)}; give {self.folds} seeds or leave seeds out"
            )
        return self

    recipe: str | None = None
    base: dict[str, Any] = Field(default_factory=dict)
    bits: list[int] = Field(default_factory=lambda: [8])
    l1: list[float] = Field(default_factory=list)
    hamming: list[float] = Field(default_factory=list)
    energy: list[float] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0])
    folds: int | None = Field(None, ge=2, le=100)
    extra: list[ExtraRun] = Field(default_factory=list)
    share_float: bool = True
    energy_hw: str | None = None
    energy_samples: int = Field(1000, ge=1)


def variants(sweep: SweepConfig, folder: Path | None = None) -> list[tuple[str, list[str]]]:
    """(run name, --set overrides) of every run of the sweep, baselines first.

    With ``share_float`` and a ``folder``, runs after the first of each seed start from the
    first run's float weights.
    """
    out: list[tuple[str, list[str]]] = []
    for i, seed in enumerate(sweep.seeds):
        first = len(out)
        sfx = f"-s{seed}" if len(sweep.seeds) > 1 else ""
        for b in sweep.bits:
            common = [f"quant.w_bits={b}", f"seed={seed}"]
            if sweep.folds is not None:
                common += [f"data.folds={sweep.folds}", f"data.fold={i}"]
            out.append((f"w{b}-baseline{sfx}", [*common, "regularizer.name=none"]))
            for name in ("l1", "hamming", "energy"):
                for lam in getattr(sweep, name):
                    out.append(
                        (
                            f"w{b}-{name}-{lam:g}{sfx}",
                            [*common, f"regularizer.name={name}", f"regularizer.lambda={lam}"],
                        )
                    )
            for run in sweep.extra:
                out.append((f"w{b}-{run.name}{sfx}", [*common, *run.set]))
        float_epochs = run_config(sweep, []).train.float_epochs
        if sweep.share_float and folder is not None and float_epochs > 0:
            source = folder / out[first][0]
            shared = [f"train.init_from={source}", "train.float_epochs=0"]
            out[first + 1 :] = [(n, [*ov, *shared]) for n, ov in out[first + 1 :]]
    return out


def run_config(sweep: SweepConfig, overrides: list[str]) -> TrainConfig:
    return validate(TrainConfig, apply_overrides(sweep.base, overrides), source="sweep run")


EnergyFn = Callable[[Path, str | None, int], dict[str, Any] | None]


def measure_energy(run_dir: Path, hw: str | None, samples: int) -> dict[str, Any] | None:
    """Per-inference energy of a finished run on at most ``samples`` test samples, on ``hw``
    (a preset or file) or, when None, on the hardware the run recorded; cached in
    ``energy.json`` (keyed by the resolved hardware description and the sample count)."""
    from hamq.hardware.estimate import estimate_energy
    from hamq.training.run_hardware import resolve_hardware
    from hamq.training.runs import load_run

    run = load_run(run_dir)
    resolved = resolve_hardware(run.record, run.config, f"{run_dir}/run.json", hw)
    spec = resolved.spec.model_dump(mode="json")
    cache = run_dir / "energy.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("_hw_spec") == spec and cached.get("_requested_samples") == samples:
            return cached
    report = estimate_energy(run.model, run.data(), resolved.spec, samples=samples)
    result = {
        **report.to_dict(),
        "_hw": resolved.source,
        "_hw_spec": spec,
        "_requested_samples": samples,
    }
    atomic_write_text(cache, json.dumps(result, indent=2))
    return result


def run_sweep(
    sweep: SweepConfig,
    out: Path,
    progress: bool = True,
    energy_fn: EnergyFn = measure_energy,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train every variant into ``out/<name>`` and return one result row per run."""
    from hamq.training.trainer import train_run

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, overrides in variants(sweep, out):
        run_dir = out / name
        row: dict[str, Any] = {"name": name, "overrides": " ".join(overrides)}
        try:
            cfg = run_config(sweep, overrides)
            row.update(
                seed=cfg.seed,
                w_bits=cfg.quant.w_bits,
                regularizer=cfg.regularizer.name,
                **{"lambda": cfg.regularizer.lambda_},
                pruned=cfg.sparsity.enabled,
            )
            record = train_run(cfg, run_dir, resume=True, progress=progress)
            assert record is not None
            ev = record.get("evaluation", {})
            row.update(
                status="ok",
                accuracy=record["accuracy"],
                test_samples=ev.get("test_samples"),
                val_accuracy=ev.get("val_accuracy"),
                selected_epoch=ev.get("selected_epoch"),
                fold=cfg.data.fold if cfg.data.folds is not None else None,
                folds=cfg.data.folds,
                cells_on=record["cells"]["on"],
                cells_total=record["cells"]["total"],
                hw_hist=_total_hw_hist(record),
            )
            energy = energy_fn(run_dir, sweep.energy_hw, sweep.energy_samples)
            if energy is not None:
                t = energy["totals"]
                row.update(e_cb_j=t["e_cb_j"], e_cb_ad_j=t["e_cb_ad_j"], e_total_j=t["e_total_j"])
            log(f"{name}: accuracy {row['accuracy']:.4f}, ON cells {row['cells_on']}")
        except HamqError as err:
            row.update(status=f"failed: {err}")
            log(f"{name}: failed: {err}")
        except Exception as err:  # a broken run must not stop the sweep
            (run_dir / "error.txt").parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "error.txt", traceback.format_exc())
            row.update(status=f"failed: {type(err).__name__}: {err}")
            log(f"{name}: failed ({type(err).__name__}: {err}); see {run_dir / 'error.txt'}")
        rows.append(row)
    add_reductions(rows)
    return rows


def _total_hw_hist(record: dict[str, Any]) -> list[int]:
    """Histogram of stored Hamming weight per weight, summed over the layers."""
    hists = [layer["hw_hist"] for layer in record["layers"]]
    n = max(len(h) for h in hists)
    return [sum(h[i] for h in hists if i < len(h)) for i in range(n)]


def add_reductions(rows: list[dict[str, Any]]) -> None:
    """Add reductions and accuracy change against the baseline of the same bits and seed
    (no regularizer, no pruning mask)."""
    bases = {
        (r.get("w_bits"), r.get("seed")): r
        for r in rows
        if r.get("regularizer") == "none" and not r.get("pruned") and r.get("status") == "ok"
    }
    for r in rows:
        b = bases.get((r.get("w_bits"), r.get("seed")))
        if b is None or r.get("status") != "ok":
            continue
        r["accuracy_delta_pp"] = 100 * (r["accuracy"] - b["accuracy"])
        r["cells_on_reduction"] = 1 - r["cells_on"] / b["cells_on"]
        for key in ("e_cb_j", "e_cb_ad_j"):
            if key in r and key in b:
                r[f"{key[:-2]}_reduction"] = 1 - r[key] / b[key]


COLUMNS = [
    "name",
    "status",
    "seed",
    "w_bits",
    "regularizer",
    "lambda",
    "accuracy",
    "test_samples",
    "val_accuracy",
    "selected_epoch",
    "fold",
    "folds",
    "accuracy_delta_pp",
    "cells_on",
    "cells_total",
    "cells_on_reduction",
    "e_cb_j",
    "e_cb_ad_j",
    "e_total_j",
    "e_cb_reduction",
    "e_cb_ad_reduction",
    "overrides",
]


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """``results.csv``, one row per run (atomic)."""
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(path, buf.getvalue())


def format_table(rows: list[dict[str, Any]]) -> str:
    """The paper-style table (Markdown): accuracy, ON cells, E_cb, E_cb&AD, reductions."""
    has_energy = any("e_cb_j" in r for r in rows)
    head = ["run", "accuracy", "Δacc (pp)", "ON cells", "ON red."]
    if has_energy:
        head += ["E_cb (nJ)", "E_cb&AD (nJ)", "E_cb red.", "E_cb&AD red."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['name']} | {r.get('status')} |" + " |" * (len(head) - 2))
            continue
        cells = [
            r["name"],
            f"{100 * r['accuracy']:.2f}%",
            _fmt(r.get("accuracy_delta_pp"), "{:+.2f}"),
            str(r["cells_on"]),
            _pct(r.get("cells_on_reduction")),
        ]
        if has_energy:
            cells += [
                _fmt(_nj(r.get("e_cb_j")), "{:.4g}"),
                _fmt(_nj(r.get("e_cb_ad_j")), "{:.4g}"),
                _pct(r.get("e_cb_reduction")),
                _pct(r.get("e_cb_ad_reduction")),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _nj(x: float | None) -> float | None:
    return None if x is None else x * 1e9


def _fmt(x: float | None, spec: str) -> str:
    return "" if x is None else spec.format(x)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` updated by ``b``, recursing into nested mappings (neither is modified)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def load_sweep(path: Path, overrides: list[str] | None = None) -> SweepConfig:
    if not path.is_file():
        raise HamqError(f"sweep file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise HamqError(
            f"sweep file '{path}' is not valid YAML: {str(err).splitlines()[0]}"
        ) from None
    if not isinstance(data, dict):
        raise HamqError(f"sweep file '{path}' must hold a mapping")
    sweep = validate(SweepConfig, data, source=f"sweep '{path}'")
    if sweep.recipe is not None:
        recipe = path.parent / sweep.recipe
        if not recipe.is_file():
            raise HamqError(f"sweep '{path}': recipe '{sweep.recipe}' not found at '{recipe}'")
        base = yaml.safe_load(recipe.read_text()) or {}
        if not isinstance(base, dict):
            raise HamqError(f"recipe '{recipe}' must hold a mapping of sections")
        sweep = sweep.model_copy(update={"base": deep_merge(base, sweep.base), "recipe": None})
    if overrides:
        sweep = sweep.model_copy(update={"base": apply_overrides(sweep.base, overrides)})
    # Validate every run's config now, so a typo fails before hours of training.
    for _, ov in variants(sweep):
        run_config(sweep, ov)
    return sweep
