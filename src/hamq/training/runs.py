"""Open a finished run folder: its config, its trained (converted) model, its data.

A run folder states its config three times: ``config.yaml`` (for people), ``run.json``
(the record) and the metadata of ``model.safetensors`` (beside the weights it describes),
and ``run.json`` holds the SHA-256 of ``model.safetensors``. :func:`load_run` refuses a
folder where these disagree (a hand-edited ``quant.w_bits`` or ``hardware.preset``, weights
copied from another run), so that ``hamq eval`` and ``hamq energy`` never report numbers
for weights the config does not describe. Folders from hamq 0.2.0, whose run.json has no
checksum yet, are checked on their configs and weight shapes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from hamq.config_base import validate
from hamq.data import DataBundle, load_dataset
from hamq.errors import HamqError
from hamq.files import load_json_file, load_yaml_file
from hamq.models import build_model
from hamq.quantization import quantize_model
from hamq.sparsity.layers import restore_masks
from hamq.training import checkpoint as ckpt
from hamq.training.config import TrainConfig
from hamq.training.trainer import CONFIG, MODEL, RECORD

#: Bounds of run.json's ``input_shape`` (C, H, W or C, L) and ``num_classes``: far above any
#: model hamq builds, low enough that a hand-edited record cannot allocate gigabytes.
MAX_INPUT_DIMS = 4
MAX_INPUT_ELEMENTS = 1 << 24
MAX_CLASSES = 100_000


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


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """The dotted path of the first place where two plain (JSON-like) values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                return sub
            found = first_difference(a[key], b[key], sub)
            if found is not None:
                return found
        return None
    return None if a == b else (where or "(top level)")


def _lookup(plain: dict[str, Any], dotted: str) -> Any:
    node: Any = plain
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return "(absent)"
        node = node[part]
    return node


def _check_same_config(path: Path, cfg: TrainConfig, other: Any, where: str) -> None:
    """Refuse ``config.yaml`` (``cfg``) disagreeing with the config recorded in ``where``."""
    if not isinstance(other, dict):
        raise HamqError(
            f"'{path}' {where} holds no config mapping: the run folder was edited or damaged; "
            "train the run again"
        )
    recorded = validate(TrainConfig, other, source=f"config in '{path}' {where}").to_plain()
    mine = cfg.to_plain()
    diff = first_difference(mine, recorded)
    if diff is not None:
        raise HamqError(
            f"'{path / CONFIG}' disagrees with the config in {where} at {diff} "
            f"({_lookup(mine, diff)!r} vs {_lookup(recorded, diff)!r}): the weights were "
            f"trained with the recorded one; restore config.yaml, or train a new run"
        )


def _record_shape(path: Path, record: dict[str, Any]) -> tuple[tuple[int, ...], int]:
    """run.json's input_shape and num_classes, checked to be plain, bounded ints."""
    shape, classes = record.get("input_shape"), record.get("num_classes")
    if shape is None or classes is None:
        raise HamqError(f"'{path / RECORD}' lacks input_shape/num_classes; retrain the run")
    ok_shape = (
        isinstance(shape, list)
        and 1 <= len(shape) <= MAX_INPUT_DIMS
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    )
    if ok_shape:
        n = 1
        for d in shape:
            n *= d
        ok_shape = n <= MAX_INPUT_ELEMENTS
    if not ok_shape:
        raise HamqError(
            f"'{path / RECORD}' has input_shape {str(shape)[:60]}, not a list of 1 to "
            f"{MAX_INPUT_DIMS} positive sizes of at most {MAX_INPUT_ELEMENTS} elements; the "
            "record was edited or damaged: restore it or train the run again"
        )
    if not (isinstance(classes, int) and not isinstance(classes, bool)) or not (
        2 <= classes <= MAX_CLASSES
    ):
        raise HamqError(
            f"'{path / RECORD}' has num_classes {str(classes)[:30]!s}, not a whole number from "
            f"2 to {MAX_CLASSES}; the record was edited or damaged: restore it or train again"
        )
    return tuple(shape), classes


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run folder written by ``hamq train``; HamqError names what is wrong.

    Refuses a folder whose config.yaml disagrees with run.json's config or with the config
    stored beside the weights, whose model.safetensors differs from the one run.json
    recorded, or whose weights do not fit the model of its config.
    """
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise HamqError(f"'{path}' is a file, not a run folder; give the folder hamq train wrote")
    if not path.is_dir():
        raise HamqError(
            f"run folder '{path}' does not exist; train one with: hamq train --out {path}"
        )
    for name in (CONFIG, MODEL, RECORD):
        if (path / name).is_dir():
            raise HamqError(f"'{path / name}' is a folder, not a file: the run folder is damaged")
        if not (path / name).is_file():
            hint = (
                "the run has not finished; continue it with hamq train --resume --out " + str(path)
                if (path / "checkpoint.safetensors").exists()
                else "it is not a hamq run folder"
            )
            raise HamqError(f"'{path}' has no {name}: {hint}")
    raw = load_yaml_file(path / CONFIG, "run config")
    if not isinstance(raw, dict):
        raise HamqError(
            f"run config '{path / CONFIG}' holds a {type(raw).__name__}, not a mapping of "
            "sections; restore it (run.json holds the config too)"
        )
    record = load_json_file(path / RECORD, "run record")
    if not isinstance(record, dict):
        raise HamqError(
            f"run record '{path / RECORD}' holds a {type(record).__name__}, not a mapping; "
            "restore it or train the run again"
        )
    cfg = validate(TrainConfig, raw, source=f"'{path / CONFIG}'")
    _check_same_config(path, cfg, record.get("config"), RECORD)
    data_shape, classes = _record_shape(path, record)
    digest = record.get("model_sha256")
    if digest is not None and digest != ckpt.file_sha256(path / MODEL):
        raise HamqError(
            f"'{path / MODEL}' is not the file this run wrote (its SHA-256 differs from the one "
            f"in {RECORD}): it was replaced or damaged; restore it or train the run again"
        )
    tensors, meta = ckpt.load_checkpoint(path / MODEL)
    _check_same_config(path, cfg, meta.get("config"), MODEL)
    model = build_model(cfg.model, data_shape, classes)
    quantize_model(model, cfg.quant)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise HamqError(
            f"'{path / MODEL}' does not match its config ({detail[:200]}); "
            "restore the run's files or train it again"
        ) from None
    restore_masks(model, cfg.sparsity, cfg.quant.skip, meta.get("masks"), f"'{path / MODEL}'")
    model.eval()
    return LoadedRun(path, cfg, model, record)
