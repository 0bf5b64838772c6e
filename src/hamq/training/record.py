"""The run record (``run.json``): what a run was, what it reached, what it stores."""

from __future__ import annotations

import platform
from typing import Any

import torch
from torch import nn

from hamq.hardware.spec import HardwareSpec
from hamq.hardware.stats import cell_stats
from hamq.quantization import ConversionReport, quantized_layers
from hamq.training.run_hardware import hardware_record


def machine_info(device: torch.device) -> dict[str, Any]:
    import hamq

    info = {
        "hamq": hamq.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def model_cells(model: nn.Module, hw: HardwareSpec) -> dict[str, Any]:
    """Exact ON-cell statistics of every quantized layer and of the whole model."""
    layers = []
    for name, layer in quantized_layers(model):
        s = cell_stats(layer.weight_int().cpu(), layer.w_bits, hw.representation, hw.cell_bits)
        layers.append(
            {"name": name, "w_bits": layer.w_bits, "weights": layer.weight.numel(), **s.to_dict()}
        )
    on = sum(x["cells_on"] for x in layers)
    total = sum(x["cells_total"] for x in layers)
    return {
        "cells": {
            "on": on,
            "total": total,
            "on_fraction": on / max(1, total),
            "hamming_weight": sum(x["hamming_weight"] for x in layers),
            "representation": hw.representation,
            "cell_bits": hw.cell_bits,
        },
        "layers": layers,
    }


def build_record(
    cfg: Any,
    model: nn.Module,
    history: list[dict[str, Any]],
    hw: HardwareSpec,
    conversion: ConversionReport | None,
    device: torch.device,
    wall_s: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """The JSON record of a finished run (timing under ``timing``, the only varying part).

    ``accuracy`` is the test accuracy of the kept weights (``evaluation``: which epoch was
    kept and why, validation accuracy, test samples; see ``trainer.py``).
    """
    n_test = evaluation["test_samples"]
    return {
        "config": cfg.to_plain(),
        "seed": cfg.seed,
        "accuracy": evaluation["test_correct"] / max(1, n_test),
        "evaluation": evaluation,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        **model_cells(model, hw),
        "hardware": hardware_record(hw),
        "conversion": conversion.to_dict() if conversion is not None else None,
        "history": history,
        "machine": machine_info(device),
        "timing": {"wall_s_last_session": wall_s},
    }
