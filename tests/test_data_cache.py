"""The decoded-data cache: hits, invalidation, corruption, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hamq.data.cache import cached, default_cache_dir, entry_paths, fingerprint


def make_source(root: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = [root / "a.bin", root / "b.bin"]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]) * 10)
    return files


def test_hit_miss_and_invalidation(tmp_path: Path) -> None:
    files = make_source(tmp_path / "src")
    cache = tmp_path / "cache"
    calls = []

    def build() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"x": torch.arange(6, dtype=torch.int16).view(2, 3), "y": torch.tensor([1, 2])}

    first = cached("t", tmp_path / "src", files, {"v": 1}, build, cache)
    second = cached("t", tmp_path / "src", files, {"v": 1}, build, cache)
    assert len(calls) == 1 and torch.equal(first["x"], second["x"])
    assert second["x"].dtype == torch.int16
    cached("t", tmp_path / "src", files, {"v": 2}, build, cache)  # option changed
    assert len(calls) == 2
    files[0].write_bytes(b"changed, longer")  # a source file changed
    cached("t", tmp_path / "src", files, {"v": 1}, build, cache)
    assert len(calls) == 3
    assert not list(cache.glob("*.tmp"))  # atomic writes leave no temporary files
    cached("t", tmp_path / "src", files, {"v": 1}, build, None)  # caching off
    assert len(calls) == 4


def test_corrupt_entry_is_rebuilt(tmp_path: Path) -> None:
    files = make_source(tmp_path / "src")
    cache = tmp_path / "cache"

    def build() -> dict[str, torch.Tensor]:
        return {"x": torch.ones(4)}

    cached("t", tmp_path / "src", files, {}, build, cache)
    key = fingerprint(tmp_path / "src", files, {"kind": "t"})
    data, meta = entry_paths(cache, "t", key)
    assert data.exists() and meta.exists()
    blob = bytearray(data.read_bytes())
    blob[-1] ^= 0xFF
    data.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="unreadable.*checksum"):
        out = cached("t", tmp_path / "src", files, {}, build, cache)
    assert torch.equal(out["x"], torch.ones(4))
    # rebuilt and rewritten: the next load is a clean hit
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached("t", tmp_path / "src", files, {}, build, cache)
    meta.write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        cached("t", tmp_path / "src", files, {}, build, cache)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HAMQ_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("HAMQ_CACHE")
    assert default_cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "hamq"
