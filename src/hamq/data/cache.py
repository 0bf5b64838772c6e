"""A cache of decoded data sets: safetensors tensors plus a JSON sidecar, never pickle.

Decoding 60,000 JPEGs or 5,000 FLAC clips takes seconds to minutes; the decoded tensors load
in well under a second. An entry is keyed by a *fingerprint* of its source: the sorted list
of files (path relative to the root, size in bytes, mtime in ns) plus the loader's own
options and format version, hashed with SHA-256. Any change of a source file, of the file
list or of an option gives a new key, so a stale entry is never read.

Files per entry, in the cache folder (``$HAMQ_CACHE``, else ``~/.cache/hamq``):

    <kind>-<key>.safetensors   the tensors
    <kind>-<key>.json          {"format", "kind", "fingerprint", "sha256", "root", "files"}

Both are written to a temporary file in the same folder and moved into place with
``os.replace`` (atomic on POSIX and Windows), the sidecar last, so a reader never sees a half
written entry. On load the SHA-256 of the tensor file must match the sidecar; a missing,
truncated or corrupt entry is reported with a warning and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hamq.files import file_mode

CACHE_FORMAT = 1
_HASH_CHUNK_BYTES = 1 << 22


def default_cache_dir() -> Path:
    """``$HAMQ_CACHE`` if set, else ``~/.cache/hamq``."""
    env = os.environ.get("HAMQ_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hamq"


def fingerprint(root: Path, files: Sequence[Path], options: dict[str, Any]) -> str:
    """SHA-256 hex digest of the file list (relative path, size, mtime_ns) and ``options``.

    ``options`` must be JSON-serializable: everything besides the files that changes the
    decoded tensors (target sample rate, loader version, ...).
    """
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "options": options}, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(tmp)`` to a temporary file beside ``path``, then os.replace it."""
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600 files; keep the user's umask
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def entry_paths(cache_dir: Path, kind: str, key: str) -> tuple[Path, Path]:
    """(tensor file, sidecar) of the entry ``kind`` with fingerprint ``key``."""
    stem = f"{kind}-{key[:24]}"
    return cache_dir / f"{stem}.safetensors", cache_dir / f"{stem}.json"


def load_entry(cache_dir: Path, kind: str, key: str) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None when absent; a corrupt entry warns and returns None."""
    data_path, meta_path = entry_paths(cache_dir, kind, key)
    if not meta_path.exists() or not data_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != CACHE_FORMAT or meta.get("fingerprint") != key:
            raise ValueError("sidecar does not match the source fingerprint")
        if meta.get("sha256") != _file_sha256(data_path):
            raise ValueError("tensor file checksum differs from its sidecar")
        return load_file(data_path)
    except Exception as err:  # any defect means: rebuild; never trust a damaged file
        warnings.warn(
            f"data cache entry {data_path} is unreadable ({err}); rebuilding it", stacklevel=3
        )
        return None


def save_entry(
    cache_dir: Path, kind: str, key: str, tensors: dict[str, torch.Tensor], root: Path, n: int
) -> None:
    """Store ``tensors`` atomically; the sidecar is written last."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_path, meta_path = entry_paths(cache_dir, kind, key)
    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    _atomic_write(data_path, lambda tmp: save_file(contiguous, str(tmp)))
    meta = {
        "format": CACHE_FORMAT,
        "kind": kind,
        "fingerprint": key,
        "sha256": _file_sha256(data_path),
        "root": str(root),
        "files": n,
    }
    _atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))


def cached(
    kind: str,
    root: Path,
    files: Sequence[Path],
    options: dict[str, Any],
    build: Callable[[], dict[str, torch.Tensor]],
    cache_dir: Path | None,
) -> dict[str, torch.Tensor]:
    """``build()``'s tensors, from the cache when an entry for this source exists.

    Args:
        kind: entry name prefix (``"cifar10-folder"``, ``"speech"``, ...).
        root: the source folder; ``files`` lie under it.
        files: every source file the tensors are decoded from.
        options: loader options that change the result (JSON-serializable).
        build: decodes the files; called only on a cache miss.
        cache_dir: cache folder, or None to decode without caching.
    """
    if cache_dir is None:
        return build()
    key = fingerprint(root, files, {"kind": kind, **options})
    hit = load_entry(cache_dir, kind, key)
    if hit is not None:
        return hit
    tensors = build()
    try:
        save_entry(cache_dir, kind, key, tensors, root, len(files))
    except OSError as err:  # a read-only or full disk costs speed, not correctness
        warnings.warn(f"could not write data cache in {cache_dir} ({err})", stacklevel=2)
    return tensors


def resolve_cache_dir(enabled: bool, folder: str | None) -> Path | None:
    """The cache folder for ``DataConfig.cache``/``cache_dir``; None when caching is off."""
    if not enabled:
        return None
    return Path(folder).expanduser() if folder else default_cache_dir()
