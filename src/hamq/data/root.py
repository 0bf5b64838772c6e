"""The ``data.root`` folder check shared by every folder data set."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hamq.errors import HamqError

if TYPE_CHECKING:
    from hamq.data import DataConfig


def require_root(cfg: DataConfig, what: str) -> Path:
    if cfg.root is None:
        raise HamqError(f"data set '{what}' needs data.root, the folder that holds it")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise HamqError(f"data.root '{root}' is not a folder (data set '{what}')")
    return root
