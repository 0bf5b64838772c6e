"""Checkpoints without pickle: one safetensors file whose header metadata holds JSON.

Tensors go in the safetensors body (model state as ``model/<key>``, optimizer state as
``optim/<param index>/<name>``); everything else (epoch, stage, history, optimizer
hyper-parameters, config) is JSON in the header under the key ``hamq``. One file means one
atomic ``os.replace``: a crash leaves either the old checkpoint or the new, never half.
Loading never executes code from the file: safetensors holds only raw tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from hamq.errors import HamqError
from hamq.files import file_mode

FORMAT = "hamq-checkpoint-1"
_HASH_CHUNK_BYTES = 1 << 22


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """Atomically write ``tensors`` and JSON ``meta`` to one safetensors file.

    Returns the SHA-256 of the written file (run.json records the final model's).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        body = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_file(body, tmp, metadata={"hamq": json.dumps({"format": FORMAT, **meta})})
        os.chmod(tmp, file_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        digest = file_sha256(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; HamqError if missing or corrupt."""
    if path.is_dir():
        raise HamqError(f"checkpoint '{path}' is a folder, not a file; remove it")
    if not path.is_file():
        raise HamqError(f"checkpoint '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, MemoryError) as err:
        raise HamqError(
            f"checkpoint '{path}' is corrupt or not a safetensors file ({err}); delete it and "
            f"rerun (without --resume) to train from the start"
        ) from None
    try:
        meta = json.loads(header["hamq"])
    except (KeyError, json.JSONDecodeError, RecursionError):
        raise HamqError(f"checkpoint '{path}' has no hamq metadata: not written by hamq") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise HamqError(f"checkpoint '{path}' has format {found!r}, expected {FORMAT}")
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise HamqError(
                f"checkpoint '{path}' holds non-finite values (NaN or inf) in '{key}': it "
                "comes from a diverged run or is damaged; delete it and train again"
            )
    return tensors, meta


def check_resume_meta(meta: dict[str, Any], path: Path, float_epochs: int, epochs: int) -> None:
    """Refuse a training checkpoint whose metadata cannot be resumed (hand-edited or damaged).

    ``epoch`` is the last finished epoch (0 .. epochs - 1), ``stage`` the stage it ended in
    (``float`` before ``float_epochs``, else ``qat``), ``history`` one entry per epoch.
    """

    def bad(what: str) -> HamqError:
        return HamqError(
            f"checkpoint '{path}' has {what} in its metadata: it was edited or damaged; "
            "delete it and rerun without --resume to train from the start"
        )

    for key in ("epoch", "stage", "history", "optimizer", "config"):
        if key not in meta:
            raise bad(f"no '{key}'")
    epoch = meta["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch < epochs:
        raise bad(f"epoch {epoch!r} (this config trains epochs 0..{epochs - 1})")
    expected = "float" if epoch < float_epochs else "qat"
    if meta["stage"] != expected:
        raise bad(f"stage {meta['stage']!r} at epoch {epoch} (expected {expected!r})")
    history = meta["history"]
    if not isinstance(history, list) or len(history) != epoch + 1:
        raise bad(f"a history that is not one entry per epoch up to {epoch}")
    if not all(isinstance(entry, dict) for entry in history):
        raise bad("a history entry that is not a mapping")
    opt = meta["optimizer"]
    if (
        not isinstance(opt, dict)
        or not isinstance(opt.get("param_groups"), list)
        or not isinstance(opt.get("scalars"), dict)
    ):
        raise bad("an optimizer state without param_groups and scalars")
    if not isinstance(meta["config"], dict):
        raise bad("a config that is not a mapping")


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix/`` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def optimizer_to_flat(
    opt: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state as (tensors for safetensors, JSON-able rest)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    opt: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    path: Path | None = None,
) -> None:
    """Restore optimizer state written by :func:`optimizer_to_flat`.

    Raises HamqError (naming ``path``) when the state does not fit ``opt``: unknown parameter
    indices, tensors whose shape differs from their parameter's, malformed groups.
    """
    where = f"checkpoint '{path}'" if path is not None else "the checkpoint"
    fix = "delete it and rerun without --resume to train from the start"
    params = [p for g in opt.param_groups for p in g["params"]]
    state: dict[int, dict[str, Any]] = {}
    try:
        for key, value in split_prefix(tensors, "optim").items():
            idx_text, name = key.split("/", 1)
            idx = int(idx_text)
            if not 0 <= idx < len(params):
                raise ValueError(f"optimizer state for parameter {idx} of {len(params)}")
            if value.dim() > 0 and value.shape != params[idx].shape:
                raise ValueError(
                    f"optimizer state '{key}' of shape {tuple(value.shape)} for a parameter of "
                    f"shape {tuple(params[idx].shape)}"
                )
            state.setdefault(idx, {})[name] = value
        for idx_text, rest in meta["scalars"].items():
            if not isinstance(rest, dict):
                raise ValueError(f"optimizer scalars of parameter {idx_text} are not a mapping")
            state.setdefault(int(idx_text), {}).update(rest)
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise HamqError(
            f"{where} has an optimizer state that does not fit ({err}); {fix}"
        ) from None
