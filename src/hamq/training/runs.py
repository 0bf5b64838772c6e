"""Open a finished run folder: its config, its trained (converted) model, its data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from hamq.config_base import validate
from hamq.data import DataBundle, load_dataset
from hamq.errors import HamqError
from hamq.models import build_model
from hamq.quantization import quantize_model
from hamq.sparsity.layers import restore_masks
from hamq.training import checkpoint as ckpt
from hamq.training.config import TrainConfig
from hamq.training.trainer import CONFIG, MODEL, RECORD


@dataclass
class LoadedRun:
    """A finished run: ``config``, ``model`` (converted, weights loaded, eval mode), ``record``."""

    path: Path
    config: TrainConfig
    model: nn.Module
    record: dict[str, Any]

    def data(self) -> DataBundle:
        """The run's data set (loaded on demand)."""
        return load_dataset(self.config.data)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run folder written by ``hamq train``; HamqError names what is missing."""
    path = Path(run_dir)
    if not path.is_dir():
        raise HamqError(
            f"run folder '{path}' does not exist; train one with: hamq train --out {path}"
        )
    for name in (CONFIG, MODEL, RECORD):
        if not (path / name).is_file():
            hint = (
                "the run has not finished; continue it with hamq train --resume --out " + str(path)
                if (path / "checkpoint.safetensors").exists()
                else "it is not a hamq run folder"
            )
            raise HamqError(f"'{path}' has no {name}: {hint}")
    try:
        raw = yaml.safe_load((path / CONFIG).read_text())
        record = json.loads((path / RECORD).read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise HamqError(f"'{path}' has a corrupt {CONFIG} or {RECORD} ({err})") from None
    cfg = validate(TrainConfig, raw or {}, source=f"'{path / CONFIG}'")
    tensors, meta = ckpt.load_checkpoint(path / MODEL)
    data_shape = record.get("input_shape")
    classes = record.get("num_classes")
    if data_shape is None or classes is None:
        raise HamqError(f"'{path / RECORD}' lacks input_shape/num_classes; retrain the run")
    model = build_model(cfg.model, tuple(data_shape), int(classes))
    quantize_model(model, cfg.quant)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise HamqError(
            f"'{path / MODEL}' does not match its config ({str(err).splitlines()[0]})"
        ) from None
    restore_masks(model, cfg.sparsity, cfg.quant.skip, meta.get("masks"), f"'{path / MODEL}'")
    model.eval()
    return LoadedRun(path, cfg, model, record)
