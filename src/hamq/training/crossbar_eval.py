"""Accuracy as the hardware computes it, for a trained model and its data.

:func:`crossbar_evaluation` plans every layer's ADC (``hardware/simulate.py``) on a
calibration split, never the test split, then measures the test accuracy of the model
computed by its crossbars. The calibration split is the validation part
(``data.validation_percent``) when the run has one, else the first training samples
(without augmentation); which one, and how many samples, is recorded. A run folder keeps
each result in ``crossbar/<hardware digest>.json`` (atomic), beside the hardware it holds
for, so the ADC ranges used for a reported accuracy can be read back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hamq.data.bundle import DataBundle
from hamq.errors import HamqError
from hamq.hardware.simulate import (
    LayerAdc,
    count_correct_batches,
    crossbar_accuracy,
    crossbar_layers,
    plan_adc,
)
from hamq.hardware.spec import HardwareSpec
from hamq.training.checkpoint import atomic_write_text

#: Calibration samples used by default (all of a smaller split).
DEFAULT_CALIBRATION_SAMPLES = 1000


def calibration_split(
    data: DataBundle, samples: int | None, batch_size: int
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], str]:
    """Batches of the calibration split and its name (``validation`` or ``train``).

    ``samples``: how many (None: ``DEFAULT_CALIBRATION_SAMPLES`` or the whole split if
    smaller), chosen by ``data.eval_subset``. Raises :class:`HamqError` naming
    ``--calibration-samples`` when the split holds fewer than asked for.
    """
    if data.val_samples > 0:
        x, y, split = data.val_x, data.val_y, "validation"
    else:
        x, y, split = data.train_x, data.train_y, "train"
    assert x is not None and y is not None
    have = int(y.numel())
    if samples is None:
        samples = min(have, DEFAULT_CALIBRATION_SAMPLES)
    elif samples > have:
        raise HamqError(
            f"--calibration-samples = {samples}: the {split} split of {data.name} holds only "
            f"{have} samples; ask for at most {have}"
        )
    x, y = data.limited(x, y, samples)  # which samples: data.eval_subset
    batches = [
        (data.transform(x[i : i + batch_size], False, None), y[i : i + batch_size])
        for i in range(0, samples, batch_size)
    ]
    return batches, split


#: Hardware fields added after results were first cached under these digests, with their
#: defaults: each enters the digest only when set away from its default, so a result
#: cached before the field existed keeps its key (and is reused, not recomputed).
LATER_FIELDS: dict[tuple[str, str], object] = {
    ("device", "compensation_scope"): "layer",
    ("array", "devices_per_cell"): 1,
}


def canonical_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A hardware description's JSON (``model_dump(mode="json")``, or one stored with a
    cached result) without the :data:`LATER_FIELDS` left at their defaults: equal for the
    same hardware before and after those fields existed."""
    data = json.loads(json.dumps(spec))
    for (section, name), default in LATER_FIELDS.items():
        part = data.get(section)
        if isinstance(part, dict) and part.get(name, default) == default:
            part.pop(name, None)
    return data


def hardware_digest(hw: HardwareSpec) -> str:
    """First 12 hex digits of the SHA-256 of the hardware description's JSON
    (:func:`canonical_spec`)."""
    text = json.dumps(canonical_spec(hw.model_dump(mode="json")), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def crossbar_evaluation(
    model: nn.Module,
    data: DataBundle,
    hw: HardwareSpec,
    batch_size: int = 256,
    test_samples: int | None = None,
    calibration_samples: int | None = None,
) -> dict[str, Any]:
    """Ideal and crossbar test accuracy of a converted model on ``hw``, with its ADC plan.

    Returns a JSON-ready dict: ``accuracy`` (ideal, the integer network),
    ``crossbar_accuracy``, ``test_samples``, ``calibration`` (split, samples, method) and
    ``adc`` (one :class:`~hamq.hardware.simulate.LayerAdc` per layer).
    """
    sims = crossbar_layers(model, hw)
    calib, split = calibration_split(data, calibration_samples, batch_size)
    plan = plan_adc(model, sims, hw, calib)
    correct, total = crossbar_accuracy(model, sims, data.test_batches(batch_size, test_samples))
    was_training = model.training
    model.eval()
    try:
        ideal, _ = count_correct_batches(model, data.test_batches(batch_size, test_samples))
    finally:
        model.train(was_training)
    if total == 0:
        raise HamqError(f"{data.name}: the test split is empty; nothing to evaluate")
    return {
        "hardware": hw.name,
        "hardware_digest": hardware_digest(hw),
        "accuracy": ideal / total,
        "crossbar_accuracy": correct / total,
        "test_samples": total,
        "calibration": {
            "split": split,
            "samples": sum(int(y.numel()) for _, y in calib),
            "range": hw.adc.calibration,
            "percentile": hw.adc.percentile if hw.adc.calibration == "percentile" else None,
            "tolerance_pp": hw.adc.tolerance_pp,
        },
        "adc": [p.to_dict() for p in plan],
    }


def adc_bits_of(result: dict[str, Any]) -> dict[str, int]:
    """Layer name -> ADC bits of a :func:`crossbar_evaluation` result (for the energy)."""
    return {a["name"]: int(a["bits"]) for a in result["adc"]}


def save_crossbar_result(run_dir: str | Path, result: dict[str, Any], hw: HardwareSpec) -> Path:
    """Write ``result`` with the hardware it holds for to ``RUN/crossbar/<digest>.json``."""
    path = Path(run_dir) / "crossbar" / f"{result['hardware_digest']}.json"
    atomic_write_text(
        path, json.dumps({**result, "hardware_spec": hw.model_dump(mode="json")}, indent=2)
    )
    return path


def format_adc_plan(plan: list[dict[str, Any]] | list[LayerAdc]) -> list[str]:
    """One line per layer: name, policy, bits (lossless bits), range."""
    lines = []
    for p in plan:
        d = p.to_dict() if isinstance(p, LayerAdc) else p
        lines.append(
            f"  {d['name']:<24} {d['policy']:<9} {d['bits']:>2} bits (lossless "
            f"{d['lossless_bits']:>2})  step {d['step']:.3g}  {d['range_from']}"
        )
    return lines
