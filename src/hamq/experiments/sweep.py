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
    energy_subset: stratified       # which, when fewer than the test split (or first)
    crossbar: false                 # also the accuracy as the crossbars compute it (slower)
    noise_t: null                   # e.g. 1d: also the accuracy on noisy arrays at that time
    noise_repeats: 3                # ... mean +- sd over this many programmings (energy_hw,
                                    # energy_samples; docs/noise.md)
    noise_adapt_bn: false           # ... with BatchNorm re-estimated through the noisy
                                    # arrays at that time (hamq eval --adapt-bn, AdaBS)
    share_float: true               # float pre-training once per seed, reused by all runs

With ``share_float`` the first run of each seed trains its float stage and saves
``float.safetensors``; every other run of that seed starts QAT from those weights
(``train.init_from``, ``train.float_epochs=0``), so a grid of N runs pays for one float
stage. The float stage depends only on the seed, model, data and float optimizer, none of
which the grid varies; a sweep whose extra runs change those must set share_float: false.
An extra run that sets ``train.float_epochs`` itself keeps it (its overrides come after the
shared ones): a float stage of its own from the shared float weights, e.g. a float retrain
of a pruned network (``sparsity.from_float``).

One function trains and measures one run (``train_and_measure``); a backend only schedules
those calls: ``local_backend`` (default, one after the other) or ``ray_sweep.RayBackend``
(one Ray Tune trial per run; docs/sweeps.md). The rows and report do not depend on which.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import json
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from filelock import FileLock
from pydantic import Field, field_validator, model_validator

from hamq.config_base import Section, validate
from hamq.data.bundle import DataBundle, EvalSubset
from hamq.errors import HamqError, closest
from hamq.files import load_yaml_file
from hamq.training.checkpoint import atomic_write_text
from hamq.training.config import TrainConfig, apply_overrides


class ExtraRun(Section):
    """A run beyond the grid: a name and ``--set``-style overrides of the base config.

    float_from: the name of an earlier extra run with a float stage of its own (it sets
        ``train.float_epochs``) whose float weights this run starts QAT from, instead of
        the shared ones: several QAT runs then share, e.g., one float retrain of a pruned
        network (``sparsity.from_float``; the masks must agree, which the run checks).
    teacher_from: ``baseline`` (the seed's first run, whose float stage the others share)
        or an earlier extra run with a float stage of its own: its float weights teach this
        run (``train.teacher``; the run needs ``train.distill`` above 0), e.g. the dense
        float model for a pruned run.
    """

    name: str
    set: list[str] = Field(default_factory=list)
    float_from: str | None = None
    teacher_from: str | None = None

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        # the name becomes a folder of the sweep: no separators, no '..', no hidden names
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}", v):
            raise ValueError(
                "must be 1 to 100 letters, digits or . _ + = - (not starting with . or -); "
                "it names the run's folder"
            )
        return v


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
    # stratified: a fixed class-proportional sample; first: the first N in stored order,
    # as hamq 0.4 measured (class-sorted for folder data sets; see data/bundle.py)
    energy_subset: EvalSubset = "stratified"
    crossbar: bool = False
    noise_t: str | None = None
    noise_repeats: int = Field(3, ge=1, le=1000)
    noise_adapt_bn: bool = False

    @model_validator(mode="after")
    def _noise_time(self) -> SweepConfig:
        if self.noise_t is not None:
            from hamq.hardware.noise import parse_time

            try:
                parse_time(self.noise_t)
            except HamqError as err:
                raise ValueError(f"noise_t: {err}") from None
        return self

    @model_validator(mode="after")
    def _grid(self) -> SweepConfig:
        for name in ("bits", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty: a sweep needs at least one value")
        for name in ("bits", "seeds", "l1", "hamming", "energy"):
            values = getattr(self, name)
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"{name} lists {dup[0]!r} twice: each run would be trained once")
        names = [run.name for run in self.extra]
        dup_names = sorted({n for n in names if names.count(n) > 1})
        if dup_names:
            raise ValueError(f"extra names the run '{dup_names[0]}' twice; give each its own name")
        for i, run in enumerate(self.extra):
            before = {r.name: r for r in self.extra[:i]}
            if run.teacher_from is not None and run.teacher_from != "baseline":
                src = before.get(run.teacher_from)
                if src is None or not any(o.startswith("train.float_epochs=") for o in src.set):
                    raise ValueError(
                        f"extra run '{run.name}': teacher_from = '{run.teacher_from}' is "
                        f"neither 'baseline' nor an extra run listed before it that trains a "
                        f"float stage of its own{closest(run.teacher_from, before)}"
                    )
            if run.float_from is None:
                continue
            src = before.get(run.float_from)
            if src is None:
                raise ValueError(
                    f"extra run '{run.name}': float_from = '{run.float_from}' is not an extra "
                    f"run listed before it{closest(run.float_from, before)}"
                )
            if not any(o.startswith("train.float_epochs=") for o in src.set):
                raise ValueError(
                    f"extra run '{run.name}': float_from = '{run.float_from}', which trains no "
                    f"float stage of its own; give that run train.float_epochs"
                )
        return self


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
                own = [*common, *run.set]
                if run.float_from is not None and folder is not None:
                    source = folder / f"w{b}-{run.float_from}{sfx}"
                    own += [f"train.init_from={source}", "train.float_epochs=0"]
                if run.teacher_from is not None and folder is not None:
                    own += [f"train.teacher={folder / f'w{b}-{run.teacher_from}{sfx}'}"]
                out.append((f"w{b}-{run.name}{sfx}", own))
        float_epochs = run_config(sweep, []).train.float_epochs
        if sweep.share_float and folder is not None and float_epochs > 0:
            source = folder / out[first][0]
            shared = [f"train.init_from={source}", "train.float_epochs=0"]
            # (before the run's own overrides, so an extra run that sets train.float_epochs
            # keeps it: a float retrain from the shared weights, e.g. sparsity.from_float)
            out[first + 1 :] = [(n, [*shared, *ov]) for n, ov in out[first + 1 :]]
    return out


def run_config(sweep: SweepConfig, overrides: list[str]) -> TrainConfig:
    return validate(TrainConfig, apply_overrides(sweep.base, overrides), source="sweep run")


EnergyFn = Callable[[Path, str | None, int, bool, EvalSubset], dict[str, Any] | None]


def subset_used(data: DataBundle, samples: int, calibration: bool, subset: EvalSubset) -> str:
    """What a measurement of ``samples`` test samples uses: ``all`` when it takes whole
    splits (the test split, and with ``calibration`` the default calibration split
    whole too), else ``subset``."""
    from hamq.training.crossbar_eval import DEFAULT_CALIBRATION_SAMPLES

    whole = samples >= int(data.test_y.numel())
    if calibration:
        cal = data.val_samples if data.val_samples > 0 else int(data.train_y.numel())
        whole = whole and cal <= DEFAULT_CALIBRATION_SAMPLES
    return "all" if whole else subset


_P = ParamSpec("_P")
_R = TypeVar("_R")

MEASURE_LOCK = ".measure.lock"
"""Lock file in a run folder, held while a process measures the run (energy, noise)."""


def measuring(run_dir: Path) -> FileLock:
    """An exclusive lock on measuring ``run_dir``, across processes (``filelock``: an OS
    file lock, released when its holder exits, however it exits).

    Two ``--only`` lanes of one sweep folder each report every finished run at their end;
    without it, a lane that finds a run another lane has just finished, but not measured
    yet, measures it again beside it (minutes of a crossbar evaluation, twice). With it the
    second waits, then reads the first one's cache.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(run_dir / MEASURE_LOCK)


def _one_measurer(
    measure: Callable[Concatenate[Path, _P], _R],
) -> Callable[Concatenate[Path, _P], _R]:
    """``measure(run_dir, ...)`` under ``measuring(run_dir)``."""

    @functools.wraps(measure)
    def locked(run_dir: Path, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with measuring(run_dir):
            return measure(run_dir, *args, **kwargs)

    return locked


@_one_measurer
def measure_energy(
    run_dir: Path,
    hw: str | None,
    samples: int,
    crossbar: bool = False,
    subset: EvalSubset = "stratified",
) -> dict[str, Any] | None:
    """Per-inference energy of a finished run on at most ``samples`` test samples (picked by
    ``subset`` when fewer than the split), on ``hw`` (a preset or file) or, when None, on
    the hardware the run recorded; cached in ``energy.json`` (keyed by the resolved hardware
    description, the sample count, the subset and ``crossbar``). With ``crossbar`` (or an
    ``optimized`` ADC policy) the crossbar accuracy on the same samples is measured too
    (``training.crossbar_eval``), and each layer's conversions cost its planned ADC bits.
    One process at a time measures a run (``measuring``)."""
    from hamq.hardware.estimate import estimate_energy
    from hamq.quantization.convert import quantized_layers
    from hamq.training.crossbar_eval import adc_bits_of, canonical_spec, crossbar_evaluation
    from hamq.training.run_hardware import resolve_hardware
    from hamq.training.runs import load_run

    run = load_run(run_dir)
    resolved = resolve_hardware(run.record, run.config, f"{run_dir}/run.json", hw)
    spec = resolved.spec.model_dump(mode="json")
    cache = run_dir / "energy.json"
    names = [n for n, _ in quantized_layers(run.model)]
    data = run.data()
    data.eval_subset = subset
    xb_needed = crossbar or any(resolved.spec.adc_policy(n)[0] == "optimized" for n in names)
    used = subset_used(data, samples, xb_needed, subset)
    if cache.exists():
        cached = json.loads(cache.read_text())
        # written before subsets existed: the first `samples` (or all of them)
        old = "all" if used == "all" else "first"
        if (
            isinstance(cached.get("_hw_spec"), dict)
            and canonical_spec(cached["_hw_spec"]) == canonical_spec(spec)
            and cached.get("_requested_samples") == samples
            and bool(cached.get("_crossbar")) == crossbar
            and cached.get("_subset", old) == used
        ):
            return cached
    xb = None
    if xb_needed:
        xb = crossbar_evaluation(run.model, data, resolved.spec, test_samples=samples)
    bits = None if xb is None else adc_bits_of(xb)
    report = estimate_energy(run.model, data, resolved.spec, samples=samples,
                             adc_bits=bits)  # fmt: skip
    result = {
        **report.to_dict(),
        "_hw": resolved.source,
        "_hw_spec": spec,
        "_requested_samples": samples,
        "_crossbar": crossbar,
        "_subset": used,
    }
    if xb is not None:
        result["crossbar"] = xb
    atomic_write_text(cache, json.dumps(result, indent=2))
    return result


@_one_measurer
def measure_noise(
    run_dir: Path,
    hw: str | None,
    samples: int,
    t_label: str,
    repeats: int,
    subset: EvalSubset = "stratified",
    adapt_bn: bool = False,
) -> dict[str, Any]:
    """Accuracy of a finished run on noisy arrays ``t_label`` after programming, mean and
    sd over ``repeats`` programmings (seed: the run's), on ``hw`` (None: the run's own),
    with ``adapt_bn`` the BatchNorm statistics re-estimated through those arrays; reused
    from the run's ``noise/`` when the same evaluation was done before. One process at a
    time measures a run (``measuring``)."""
    from hamq.hardware.noise import parse_time
    from hamq.training.crossbar_eval import hardware_digest
    from hamq.training.noise_eval import noise_evaluation, result_key, save_noise_result
    from hamq.training.run_hardware import resolve_hardware
    from hamq.training.runs import load_run

    run = load_run(run_dir)
    resolved = resolve_hardware(run.record, run.config, f"{run_dir}/run.json", hw)
    t_s = parse_time(t_label)
    data = run.data()
    data.eval_subset = subset
    n = min(samples, int(data.test_y.numel()))
    probe = {"hardware_digest": hardware_digest(resolved.spec), "seed": run.config.seed,
             "repeats": repeats, "test_samples": n, "times": [{"t_s": t_s}],
             "subset": subset_used(data, samples, True, subset)}  # fmt: skip
    if adapt_bn:
        probe["adapt_bn"] = True
    cached = run_dir / "noise" / f"{result_key(probe)}.json"
    if cached.is_file():
        result = json.loads(cached.read_text())
    else:
        result = noise_evaluation(run.model, data, resolved.spec, [t_s], repeats,
                                  run.config.seed, test_samples=samples,
                                  adapt_bn=adapt_bn)  # fmt: skip
        save_noise_result(run_dir, result, resolved.spec)
    t = result["times"][0]
    return {"noisy_accuracy": t["mean"], "noisy_accuracy_sd": t["sd"], "noise_t": t["label"],
            "noise_adapt_bn": "adapt_bn" in result}  # fmt: skip


ERROR_FILE = "error.txt"
"""What broke a run (a traceback, or Tune's error), in its run folder."""


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep, as a backend schedules it.

    ``needs``: the runs whose float weights this one starts from (``share_float``); a
    backend that trains runs side by side must finish those first. ``finished``: the run
    folder already holds this run's final weights and record (from any backend or command).
    ``float_ready``: the run folder holds this run's float weights (``float.safetensors``,
    written with this run's config), all that a run that ``needs`` it reads from it.
    """

    name: str
    overrides: list[str]
    run_dir: Path
    needs: tuple[str, ...] = ()
    finished: bool = False
    float_ready: bool = False


NOT_RUN = "not run yet"
"""Status of a run that ``run_sweep(..., finished_only=True)`` found unfinished."""

RunOne = Callable[[SweepRun], dict[str, Any]]
"""Trains and measures one run and returns its result row (never raises for a failed run)."""

Backend = Callable[[list[SweepRun], RunOne, Callable[[str], None]], list[dict[str, Any]]]
"""Schedules ``run_one`` over the runs, logs each row's line, returns the rows in run order."""


def sweep_runs(sweep: SweepConfig, out: Path) -> list[SweepRun]:
    """The runs of ``sweep`` with their folders under ``out``, in ``variants`` order."""
    named = variants(sweep, out)
    needs = {
        name: tuple(
            n
            for n, _ in named
            if f"train.init_from={out / n}" in overrides or f"train.teacher={out / n}" in overrides
        )
        for name, overrides in named
    }
    needed = {n for deps in needs.values() for n in deps}
    runs = []
    for name, overrides in named:
        run_dir = out / name
        ready = name in needed and _float_ready(sweep, overrides, run_dir)
        finished = _finished(sweep, overrides, run_dir)
        runs.append(SweepRun(name, overrides, run_dir, needs[name], finished, ready))
    return runs


def _finished(sweep: SweepConfig, overrides: list[str], run_dir: Path) -> bool:
    from hamq.training.trainer import finished_record

    try:
        return finished_record(run_config(sweep, overrides), run_dir) is not None
    except (HamqError, ValueError):  # invalid run or unreadable record: training it says why
        return False


def _float_ready(sweep: SweepConfig, overrides: list[str], run_dir: Path) -> bool:
    from hamq.training import checkpoint as ckpt
    from hamq.training.trainer import FLOAT, same_config

    if not (run_dir / FLOAT).is_file():
        return False
    try:
        _, meta = ckpt.load_checkpoint(run_dir / FLOAT)
        return same_config(meta.get("config"), run_config(sweep, overrides))
    except (HamqError, ValueError):  # unreadable or another config: training it says why
        return False


def run_sweep(
    sweep: SweepConfig,
    out: Path,
    progress: bool = True,
    energy_fn: EnergyFn = measure_energy,
    log: Callable[[str], None] = print,
    backend: Backend | None = None,
    finished_only: bool = False,
    only: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Train every variant into ``out/<name>`` and return one result row per run.

    ``backend`` schedules the runs (default: one after the other in this process; see
    ``hamq.experiments.ray_sweep.RayBackend`` for Ray Tune); rows and reductions are the
    same whichever backend trained them. ``finished_only`` trains nothing: it measures the
    runs already finished (energies from their cache when it holds them) and gives every
    other run the status ``NOT_RUN``, so a sweep still training, or stopped, can be read.
    ``only`` (glob patterns of run names, see ``select_runs``) trains just those runs and
    the runs they start from whose float weights are not there yet; every other run is
    reported as with ``finished_only``.
    """
    if finished_only and only:
        raise HamqError("--finished-only trains nothing, so it takes no --only; drop one")
    out.mkdir(parents=True, exist_ok=True)
    run_one = functools.partial(train_and_measure, sweep, progress=progress, energy_fn=energy_fn)
    runs = sweep_runs(sweep, out)
    chosen = set() if finished_only else select_runs(runs, only)
    to_train = [r for r in runs if r.name in chosen]
    trained = {r.name: row for r, row in zip(to_train, (backend or local_backend)(
        to_train, run_one, log), strict=True)}  # fmt: skip
    # finished is asked again now, not taken from the start: another process training
    # other runs of the same folder (``--only`` lanes) may have finished some meanwhile,
    # and a report written from the earlier view would drop them from results.json
    rows = [
        trained[r.name] if r.name in trained
        else run_one(r) if r.finished or _finished(sweep, r.overrides, r.run_dir)
        else {"name": r.name, "overrides": " ".join(r.overrides), "status": NOT_RUN}
        for r in runs
    ]  # fmt: skip
    add_reductions(rows)
    return rows


def select_runs(runs: Sequence[SweepRun], patterns: Sequence[str] = ()) -> set[str]:
    """Names of the runs to train: all of them without ``patterns``; otherwise the runs
    whose name matches one of the glob patterns (``fnmatch``, case-sensitive, e.g.
    ``w8-rows-0.9-*``), plus, transitively, the runs whose float weights they start from
    (``needs``) where those weights are not there yet (``float_ready``); such a run is
    trained whole (QAT and measurement too). A run whose float weights are there (its float
    stage finished, or was restored from scripts/float_cache.py) is left as it is.

    Raises ``HamqError`` for a pattern that matches no run, naming the closest run and
    the first few there are.
    """
    if not patterns:
        return {r.name for r in runs}
    names = [r.name for r in runs]
    chosen: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            more = f", ... ({len(names)} in all)" if len(names) > 6 else ""
            raise HamqError(
                f"--only '{pattern}' matches no run of this sweep{closest(pattern, names)}; "
                f"its runs: {', '.join(names[:6])}{more}"
            )
        chosen.update(hits)
    needs = {r.name: r.needs for r in runs}
    ready = {r.name for r in runs if r.float_ready}
    todo = list(chosen)
    while todo:
        for dep in needs[todo.pop()]:
            if dep not in chosen and dep not in ready:
                chosen.add(dep)
                todo.append(dep)
    return chosen


def local_backend(
    runs: list[SweepRun], run_one: RunOne, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Every run in turn, in this process (the default backend)."""
    rows = []
    for run in runs:
        rows.append(run_one(run))
        log(row_message(rows[-1], run.run_dir))
    return rows


def train_and_measure(
    sweep: SweepConfig,
    run: SweepRun,
    progress: bool = True,
    energy_fn: EnergyFn = measure_energy,
) -> dict[str, Any]:
    """Train (or reuse) one run of the sweep, measure its energy, return its result row.

    A failure is recorded in the row's ``status`` ("failed: ..."), with the traceback in
    the run's ``error.txt`` for anything but a user error; a stale ``error.txt`` of an
    earlier attempt is removed first.
    """
    from hamq.training.trainer import train_run

    row: dict[str, Any] = {"name": run.name, "overrides": " ".join(run.overrides)}
    (run.run_dir / ERROR_FILE).unlink(missing_ok=True)
    try:
        cfg = run_config(sweep, run.overrides)
        row.update(
            seed=cfg.seed,
            w_bits=cfg.quant.w_bits,
            regularizer=cfg.regularizer.name,
            **{"lambda": cfg.regularizer.lambda_},
            pruned=cfg.sparsity.enabled,
        )
        record = train_run(cfg, run.run_dir, resume=True, progress=progress)
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
        energy = energy_fn(run.run_dir, sweep.energy_hw, sweep.energy_samples, sweep.crossbar,
                           sweep.energy_subset)  # fmt: skip
        if energy is not None:
            t = energy["totals"]
            row.update(e_cb_j=t["e_cb_j"], e_cb_ad_j=t["e_cb_ad_j"], e_total_j=t["e_total_j"])
            if "e_cb_floor_j" in t:  # energy.json files before 2026-12-07 lack it
                row.update(e_cb_floor_j=t["e_cb_floor_j"])
            if "crossbar" in energy:
                row.update(crossbar_accuracy=energy["crossbar"]["crossbar_accuracy"])
        if sweep.noise_t is not None:
            row.update(measure_noise(run.run_dir, sweep.energy_hw, sweep.energy_samples,
                                     sweep.noise_t, sweep.noise_repeats,
                                     sweep.energy_subset, sweep.noise_adapt_bn))  # fmt: skip
    except HamqError as err:
        row.update(status=f"failed: {err}")
    except Exception as err:  # a broken run must not stop the sweep
        record_failure(run.run_dir, traceback.format_exc())
        row.update(status=f"failed: {type(err).__name__}: {err}")
    return row


def record_failure(run_dir: Path, details: str) -> None:
    """Write what broke a run into its ``error.txt``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / ERROR_FILE, details)


def row_message(row: dict[str, Any], run_dir: Path) -> str:
    """The one log line of a finished or failed run."""
    if row.get("status") == "ok":
        return f"{row['name']}: accuracy {row['accuracy']:.4f}, ON cells {row['cells_on']}"
    see = f"; see {run_dir / ERROR_FILE}" if (run_dir / ERROR_FILE).is_file() else ""
    return f"{row['name']}: {row.get('status')}{see}"


def _total_hw_hist(record: dict[str, Any]) -> list[int]:
    """Histogram of stored Hamming weight per weight, summed over the layers."""
    hists = [layer["hw_hist"] for layer in record["layers"]]
    n = max(len(h) for h in hists)
    return [sum(h[i] for h in hists if i < len(h)) for i in range(n)]


def add_reductions(rows: list[dict[str, Any]]) -> None:
    """Add reductions and accuracy change against the baseline of the same bits and seed:
    the first run of that bits and seed with no regularizer and no pruning mask, which is
    the grid's own baseline (runs are listed baselines first). An extra run without a
    regularizer (another range code, a longer schedule) is compared with it, never used
    as the reference; when the grid's baseline did not finish, nothing is compared."""
    bases: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in rows:
        if r.get("regularizer") == "none" and not r.get("pruned"):
            bases.setdefault((r.get("w_bits"), r.get("seed")), r)
    for r in rows:
        b = bases.get((r.get("w_bits"), r.get("seed")))
        if b is None or b.get("status") != "ok" or r.get("status") != "ok":
            continue
        r["accuracy_delta_pp"] = 100 * (r["accuracy"] - b["accuracy"])
        r["cells_on_reduction"] = 1 - r["cells_on"] / b["cells_on"]
        for key in ("e_cb_j", "e_cb_ad_j"):
            if key in r and key in b:
                r[f"{key[:-2]}_reduction"] = 1 - r[key] / b[key]
        if r.get("crossbar_accuracy") is not None and b.get("crossbar_accuracy") is not None:
            r["crossbar_delta_pp"] = 100 * (r["crossbar_accuracy"] - b["crossbar_accuracy"])


COLUMNS = [
    "name",
    "status",
    "seed",
    "w_bits",
    "regularizer",
    "lambda",
    "fold",
    "folds",
    "accuracy",
    "test_samples",
    "val_accuracy",
    "selected_epoch",
    "accuracy_delta_pp",
    "cells_on",
    "cells_total",
    "cells_on_reduction",
    "e_cb_j",
    "e_cb_floor_j",
    "e_cb_ad_j",
    "e_total_j",
    "e_cb_reduction",
    "e_cb_ad_reduction",
    "crossbar_accuracy",
    "crossbar_delta_pp",
    "noise_t",
    "noisy_accuracy",
    "noisy_accuracy_sd",
    "noise_adapt_bn",
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


def format_table(rows: list[dict[str, Any]], notes: bool = True) -> str:
    """The paper-style table (Markdown): accuracy with its 95% interval, ON cells, E_cb,
    E_cb&AD (each energy column in the SI unit that reads best), reductions; with ``notes``
    one line under it per column saying what it is."""
    from hamq.experiments.stats import wilson_interval
    from hamq.experiments.units import energy_unit

    ok = [r for r in rows if r.get("status") == "ok"]
    has_energy = any("e_cb_j" in r for r in rows)
    has_n = any(r.get("test_samples") for r in ok)
    has_xb = any(r.get("crossbar_accuracy") is not None for r in ok)
    noise_t = next((r["noise_t"] for r in ok if r.get("noise_t")), None)
    head = ["run", "accuracy", *(["95% CI"] if has_n else []), "Δacc (pp)"]
    head += [*(["crossbar acc."] if has_xb else [])]
    head += [*([f"noisy acc. at {noise_t}"] if noise_t else []), "ON cells", "ON red."]
    units = {k: energy_unit(r.get(k) for r in ok) for k in ("e_cb_j", "e_cb_ad_j")}
    if has_energy:
        head += [f"E_cb ({units['e_cb_j'][0]})", f"E_cb&AD ({units['e_cb_ad_j'][0]})"]
        head += ["E_cb red.", "E_cb&AD red."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['name']} | {r.get('status')} |" + " |" * (len(head) - 2))
            continue
        cells = [r["name"], f"{100 * r['accuracy']:.2f}%"]
        if has_n:
            n = int(r.get("test_samples") or 0)
            ci = wilson_interval(round(r["accuracy"] * n), n) if n else None
            cells.append("" if ci is None else f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]")
        cells.append(_fmt(r.get("accuracy_delta_pp"), "{:+.2f}"))
        if has_xb:
            xb = r.get("crossbar_accuracy")
            cells.append("" if xb is None else f"{100 * xb:.2f}%")
        if noise_t:
            nz, sd = r.get("noisy_accuracy"), r.get("noisy_accuracy_sd")
            cells.append("" if nz is None else f"{100 * nz:.2f}% ± {100 * (sd or 0):.2f}")
        cells += [
            str(r["cells_on"]),
            _pct(r.get("cells_on_reduction")),
        ]
        if has_energy:
            cells += [_fmt(_in(r.get(k), units[k][1]), "{:.4g}") for k in ("e_cb_j", "e_cb_ad_j")]
            cells += [_pct(r.get("e_cb_reduction")), _pct(r.get("e_cb_ad_reduction"))]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *_column_notes(ok, has_energy, has_n, has_xb)]
        if noise_t:
            lines.append(
                f"- noisy acc. at {noise_t}: crossbar test accuracy {noise_t} after "
                f"programming on noisy, drifting arrays (docs/noise.md), mean ± sd over the "
                f"programmings, on the energy samples"
                + (
                    "; BatchNorm re-estimated through the noisy arrays on the calibration "
                    "split at that time (AdaBS)."
                    if any(r.get("noise_adapt_bn") for r in ok)
                    else "."
                )
            )
    return "\n".join(lines)


def _column_notes(
    ok: list[dict[str, Any]], has_energy: bool, has_n: bool, has_xb: bool = False
) -> list[str]:
    """One line per column of :func:`format_table`, and what the method names mean."""
    notes = ["- accuracy: top-1 accuracy on the test set."]
    if has_n:
        sizes = sorted({int(r["test_samples"]) for r in ok if r.get("test_samples")})
        n = ", ".join(map(str, sizes))
        gaps = any(not r.get("test_samples") for r in ok)
        missing = "; blank where a run does not record its test-set size" if gaps else ""
        notes.append(
            f"- 95% CI: Wilson score interval of the accuracy on the run's n = {n} test "
            f"samples (%){missing}."
        )
    else:
        notes.append(
            "- No 95% interval of the accuracy: these results do not record how many test "
            "samples it was measured on."
        )
    notes += [
        "- Δacc (pp): accuracy minus the baseline's (same bit width and seed), in "
        "percentage points.",
        *(
            [
                "- crossbar acc.: test accuracy as the crossbars compute it, every partial "
                "sum through the layer's ADC (docs/crossbar.md), on the energy samples."
            ]
            if has_xb
            else []
        ),
        "- ON cells: crossbar cells storing a non-zero level, counted exactly from the stored "
        "weights; ON red.: fewer ON cells than the baseline, in %.",
    ]
    if has_energy:
        notes += [
            "- E_cb: modeled crossbar cell read energy per inference (every read of a cell on "
            "a driven row, at its level's energy).",
            "- E_cb&AD: E_cb plus the energy of the ADC conversions, per inference.",
            "- E_cb red., E_cb&AD red.: their reductions against the baseline, in %.",
        ]
    notes.append(
        '- Methods: "hamming" is HamQ (the Hamming-weight regularizer), "l1" is L1 on the '
        'weights, "baseline" has no regularizer; `w8-hamming-0.5` is 8-bit weights, HamQ '
        "λ 0.5 (a trailing -sN names the seed)."
    )
    return notes


def _in(x: float | None, unit: float) -> float | None:
    return None if x is None else x / unit


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
    """The sweep in ``path`` with ``--set`` overrides of its base, checked before any run
    trains: the file, its recipe, every run's config and hardware, the run names, and the
    hardware the energy is measured on."""
    from hamq.hardware.spec import load_hardware
    from hamq.training.trainer import hardware_of

    data = load_yaml_file(path, "sweep file")
    if not isinstance(data, dict):
        raise HamqError(
            f"sweep file '{path}' must hold a mapping (recipe:, base:, hamming: ...), not a "
            f"{type(data).__name__}"
        )
    sweep = validate(SweepConfig, data, source=f"sweep '{path}'")
    if sweep.recipe is not None:
        recipe = path.parent / sweep.recipe
        if not recipe.exists() and not recipe.is_symlink():
            raise HamqError(f"sweep '{path}': recipe '{sweep.recipe}' not found at '{recipe}'")
        base = load_yaml_file(recipe, "recipe")
        if not isinstance(base, dict):
            raise HamqError(
                f"recipe '{recipe}' must hold a mapping of sections, not a {type(base).__name__}"
            )
        sweep = sweep.model_copy(update={"base": deep_merge(base, sweep.base), "recipe": None})
    if overrides:
        sweep = sweep.model_copy(update={"base": apply_overrides(sweep.base, overrides)})
    # Validate every run's config now, so a typo fails before hours of training.
    seen: set[str] = set()
    for name, ov in variants(sweep):
        if name in seen:
            raise HamqError(
                f"sweep '{path}' names the run '{name}' twice (an extra run repeats a grid "
                "run's name); rename the extra run"
            )
        seen.add(name)
        cfg = run_config(sweep, ov)
        try:
            hardware_of(cfg)
        except HamqError as err:
            raise HamqError(f"sweep '{path}', run '{name}': {err}") from None
    if sweep.energy_hw is not None:  # else each run's own hardware, checked above
        try:  # the energy columns' hardware, before any run trains
            load_hardware(sweep.energy_hw)
        except HamqError as err:
            raise HamqError(f"sweep '{path}': energy_hw: {err}") from None
    return sweep
