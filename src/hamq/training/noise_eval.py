"""Accuracy on noisy, drifting arrays over time: N programmings, each read at chosen times.

:func:`noise_evaluation` plans every layer's ADC on the noiseless arrays (as
:func:`~hamq.training.crossbar_eval.crossbar_evaluation`: a calibration split, never the
test split), then, for each of ``repeats`` programmings (seed ``seed`` + the repeat's
index), programs every cell of every layer once (``hardware/noise.py``) and reads the
arrays at each time: drift and read noise, the drift compensation (per layer or per
column), the noisy bitline sums through the planned ADCs; with ``adapt_bn``, the BatchNorm
statistics re-estimated on the calibration split through those arrays
(``training/adabs.py``), then a fresh read for the test pass. The
accuracy at a time is the mean ± sd over the programmings (sample sd, ``n - 1``).

A run folder keeps each result in ``noise/<digest>.json`` with a plot of accuracy over
time beside it, and a summary (per time: mean, sd) under ``noise`` in ``run.json``; all
writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hamq.data.bundle import DataBundle
from hamq.errors import HamqError
from hamq.hardware.noise import time_label
from hamq.hardware.simulate import (
    count_correct_batches,
    crossbar_accuracy,
    crossbar_layers,
    plan_adc,
    simulating,
)
from hamq.hardware.spec import HardwareSpec
from hamq.training.adabs import adapt_batchnorm, kept_batchnorm_stats
from hamq.training.checkpoint import atomic_write_text
from hamq.training.crossbar_eval import calibration_split, hardware_digest

#: Default times after programming: 1 s, 1 h, 1 day, 1 year.
DEFAULT_TIMES_S = (1.0, 3600.0, 86400.0, 365.25 * 86400.0)
#: Most programmings one evaluation may ask for.
MAX_REPEATS = 10_000


def check_noise_hardware(hw: HardwareSpec) -> None:
    """Refuse a hardware description without usable conductance levels (one line, the
    fix)."""
    problem = hw.device_problem()
    if problem is None:
        return
    if hw.device is None:
        raise HamqError(
            f"{problem}, so --noise has nothing to draw from; use a preset that has one "
            f"(pcm-14nm, rram-1b, rram-2b-40nm) or add device: {{model: pcm, g_levels_us: "
            f"[...]}} to the YAML"
        )
    raise HamqError(f"--noise on hardware {hw.name}: {problem}")


def _seed(*parts: int) -> int:
    """A 63-bit generator seed from integers (stable across runs and machines)."""
    digest = hashlib.sha256(",".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def noise_evaluation(
    model: nn.Module,
    data: DataBundle,
    hw: HardwareSpec,
    times_s: list[float],
    repeats: int,
    seed: int = 0,
    batch_size: int = 256,
    test_samples: int | None = None,
    calibration_samples: int | None = None,
    adapt_bn: bool = False,
) -> dict[str, Any]:
    """Test accuracy of a converted model on noisy arrays at each of ``times_s`` (seconds
    after programming), over ``repeats`` programmings; a JSON-ready dict. ``adapt_bn``:
    at each time, re-estimate the BatchNorm statistics on the calibration split through
    the noisy arrays, then read them again for the test pass (AdaBS,
    ``training/adabs.py``)."""
    check_noise_hardware(hw)
    assert hw.device is not None
    if not 1 <= repeats <= MAX_REPEATS:
        raise HamqError(f"--repeats = {repeats}: must be in 1 .. {MAX_REPEATS}")
    if not times_s:
        raise HamqError("no times to evaluate at; give --t, e.g. --t 1s,1h,1d,1y")
    sims = crossbar_layers(model, hw)
    calib, split = calibration_split(data, calibration_samples, batch_size)
    plan = plan_adc(model, sims, hw, calib)
    batches = list(data.test_batches(batch_size, test_samples))
    if not batches:
        raise HamqError(f"{data.name}: the test split is empty; nothing to evaluate")
    noiseless, total = crossbar_accuracy(model, sims, batches)
    was_training = model.training
    model.eval()
    try:
        ideal, _ = count_correct_batches(model, batches)
    finally:
        model.train(was_training)
    acc = torch.zeros(repeats, len(times_s), dtype=torch.float64)
    adapted = 0
    try:
        with kept_batchnorm_stats(model):
            for r in range(repeats):
                gen = torch.Generator().manual_seed(_seed(seed, r))
                for s in sims:
                    s.program(hw.device, gen)
                for j, t in enumerate(times_s):
                    gen_t = torch.Generator().manual_seed(_seed(seed, r, j))
                    for s in sims:
                        s.read_at(t, hw.device, gen_t)
                    if adapt_bn:
                        with simulating(model, sims):
                            adapted = adapt_batchnorm(model, calib)
                        # the test pass reads again: the same programmed, drifted cells with
                        # fresh read noise, not the draw the statistics were taken on
                        gen_read = torch.Generator().manual_seed(_seed(seed, r, j, 1))
                        for s in sims:
                            s.read_at(t, hw.device, gen_read)
                    correct, _ = crossbar_accuracy(model, sims, batches)
                    acc[r, j] = correct / total
    finally:
        for s in sims:
            s.clear_noise()
    per_time = []
    for j, t in enumerate(times_s):
        col = acc[:, j]
        sd = float(col.std(unbiased=True)) if repeats > 1 else 0.0
        per_time.append({"t_s": t, "label": time_label(t), "mean": float(col.mean()),
                         "sd": sd, "accuracies": [float(a) for a in col]})  # fmt: skip
    return {
        "hardware": hw.name,
        "hardware_digest": hardware_digest(hw),
        "device": hw.device.model,
        "compensation": hw.device.compensation and hw.device.model == "pcm",
        "compensation_scope": hw.device.compensation_scope,
        "devices_per_cell": hw.array.devices_per_cell,
        "seed": seed,
        "repeats": repeats,
        "accuracy": ideal / total,
        "crossbar_accuracy": noiseless / total,
        "test_samples": total,
        "subset": _subset_used(data, total, sum(int(y.numel()) for _, y in calib)),
        "calibration": {"split": split, "samples": sum(int(y.numel()) for _, y in calib)},
        **(
            {"adapt_bn": {"split": split, "samples": adapted, "test_read": "fresh"}}
            if adapt_bn
            else {}
        ),
        "times": per_time,
        "adc": [p.to_dict() for p in plan],
    }


def _subset_used(data: DataBundle, test_used: int, calibration_used: int) -> str:
    """``all`` when the evaluation took whole splits, else ``data.eval_subset``."""
    cal = data.val_samples if data.val_samples > 0 else int(data.train_y.numel())
    whole = test_used >= int(data.test_y.numel()) and calibration_used >= cal
    return "all" if whole else data.eval_subset


def result_key(result: dict[str, Any]) -> str:
    """File stem of a result: the hardware digest and the evaluation's own settings."""
    fields = [result["seed"], result["repeats"], result["test_samples"],
              [t["t_s"] for t in result["times"]]]  # fmt: skip
    if result.get("subset", "first") == "stratified":  # results before subsets: first N
        fields.append("stratified")
    if "adapt_bn" in result:
        fields.append("adapt-bn, fresh read")
    settings = json.dumps(fields)
    return f"{result['hardware_digest']}-{hashlib.sha256(settings.encode()).hexdigest()[:8]}"


def record_key(hw: HardwareSpec, adapt_bn: bool = False) -> str:
    """The key of a result in ``run.json``'s ``noise``: the preset's name when ``hw`` is
    that preset unchanged, else ``name@digest`` (an overridden preset is another array);
    ``+adapt-bn`` after it for results with re-estimated BatchNorm statistics."""
    from hamq.hardware.spec import load_hardware, preset_names

    suffix = "+adapt-bn" if adapt_bn else ""
    digest = hardware_digest(hw)
    if hw.name in preset_names() and hardware_digest(load_hardware(hw.name)) == digest:
        return hw.name + suffix
    return f"{hw.name}@{digest}{suffix}"


def save_noise_result(run_dir: str | Path, result: dict[str, Any], hw: HardwareSpec) -> Path:
    """Write ``result`` to ``RUN/noise/<key>.json`` (with its plot) and its summary to
    ``run.json``'s ``noise`` entry (:func:`record_key`); atomic writes."""
    folder = Path(run_dir) / "noise"
    path = folder / f"{result_key(result)}.json"
    atomic_write_text(
        path, json.dumps({**result, "hardware_spec": hw.model_dump(mode="json")}, indent=2)
    )
    plot_accuracy_over_time(result, path.with_suffix(".png"))
    record_path = Path(run_dir) / "run.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        summary = {k: result[k] for k in ("seed", "repeats", "crossbar_accuracy", "test_samples")}
        summary["times"] = [{k: t[k] for k in ("t_s", "label", "mean", "sd")}
                            for t in result["times"]]  # fmt: skip
        summary["file"] = str(path.relative_to(run_dir))
        record.setdefault("noise", {})[record_key(hw, "adapt_bn" in result)] = summary
        atomic_write_text(record_path, json.dumps(record, indent=2))
    return path


def plot_accuracy_over_time(result: dict[str, Any], path: Path) -> None:
    """Crossbar accuracy (mean ± sd over programmings) against time, log axis, PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = result["times"]
    x = [max(t["t_s"], 1e-1) for t in times]
    mean = [100 * t["mean"] for t in times]
    sd = [100 * t["sd"] for t in times]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.errorbar(x, mean, yerr=sd, marker="o", capsize=3,
                label=f"noisy, {result['repeats']} programmings")  # fmt: skip
    ax.axhline(100 * result["crossbar_accuracy"], color="grey", ls="--",
               label="noiseless crossbar")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(x, [t["label"] for t in times])
    ax.set_xlabel("time after programming")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{result['hardware']} ({result['device']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def format_noise(result: dict[str, Any]) -> list[str]:
    """The table of a result: one line per time."""
    lines = [
        f"noise: {result['device']} on {result['hardware']}, {result['repeats']} "
        f"programmings (seed {result['seed']}), {result['test_samples']} test samples; "
        f"noiseless crossbar {100 * result['crossbar_accuracy']:.2f}% (ideal "
        f"{100 * result['accuracy']:.2f}%)"
        + (
            f"; BatchNorm re-estimated on {result['adapt_bn']['samples']} "
            f"{result['adapt_bn']['split']} samples at each time"
            if "adapt_bn" in result
            else ""
        ),
        f"  {'t':>8}  {'accuracy':>17}  {'vs noiseless (pp)':>17}",
    ]
    for t in result["times"]:
        delta = 100 * (t["mean"] - result["crossbar_accuracy"])
        sd = "" if math.isnan(t["sd"]) else f" ± {100 * t['sd']:.2f}"
        lines.append(f"  {t['label']:>8}  {100 * t['mean']:>8.2f}%{sd:<8}  {delta:>+17.2f}")
    return lines


__all__ = [
    "DEFAULT_TIMES_S",
    "check_noise_hardware",
    "format_noise",
    "noise_evaluation",
    "plot_accuracy_over_time",
    "record_key",
    "save_noise_result",
]
