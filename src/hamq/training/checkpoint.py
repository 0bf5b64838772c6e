"""Checkpoints without pickle: one safetensors file whose header metadata holds JSON.

Tensors go in the safetensors body (model state as ``model/<key>``, optimizer state as
``optim/<param index>/<name>``); everything else (epoch, stage, history, optimizer
hyper-parameters, config) is JSON in the header under the key ``hamq``. One file means one
atomic ``os.replace``: a crash leaves either the old checkpoint or the new, never half.
Loading never executes code from the file: safetensors holds only raw tensors.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from hamq.errors import HamqError

FORMAT = "hamq-checkpoint-1"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Atomically write ``tensors`` and JSON ``meta`` to one safetensors file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        body = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_file(body, tmp, metadata={"hamq": json.dumps({"format": FORMAT, **meta})})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; HamqError if missing or corrupt."""
    if not path.is_file():
        raise HamqError(f"checkpoint '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise HamqError(
            f"checkpoint '{path}' is corrupt or not a safetensors file ({err}); delete it and "
            f"rerun (without --resume) to train from the start"
        ) from None
    try:
        meta = json.loads(header["hamq"])
    except (KeyError, json.JSONDecodeError):
        raise HamqError(f"checkpoint '{path}' has no hamq metadata: not written by hamq") from None
    if meta.get("format") != FORMAT:
        raise HamqError(f"checkpoint '{path}' has format {meta.get('format')!r}, expected {FORMAT}")
    return tensors, meta


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
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Restore optimizer state written by :func:`optimizer_to_flat`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in split_prefix(tensors, "optim").items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, rest in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(rest)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
