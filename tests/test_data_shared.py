"""Unpacking the shared archives, and smoke tests on slices of the real data sets.

The smoke tests need ``../shared/data`` beside the checkout (or ``$HAMQ_SHARED_DATA``) and
skip with the reason where it is absent; they extract only a slice into a temporary folder.
"""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch

from hamq.data import DataConfig, load_dataset
from hamq.data.shared import shared_data_dir, unpack
from hamq.errors import HamqError


def make_archive(path: Path, top: str, names: list[str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for n in names:
            data = n.encode()
            info = tarfile.TarInfo(f"{top}/{n}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_unpack_once(tmp_path: Path) -> None:
    archive = tmp_path / "thing.tar.gz"
    make_archive(archive, "thing", ["a/x.txt", "b.txt"])
    dest = tmp_path / "data"
    out = unpack(archive, dest)
    assert out == dest / "thing" and (out / "a" / "x.txt").read_text() == "a/x.txt"
    (out / "b.txt").write_text("kept")  # a second call does not extract again
    assert unpack(archive, dest) == out and (out / "b.txt").read_text() == "kept"
    assert sorted(p.name for p in dest.iterdir()) == [".thing.tar.gz.unpacked", "thing"]
    make_archive(archive, "thing", ["b.txt"])  # a new archive replaces the old folder
    assert unpack(archive, dest) == out and not (out / "a").exists()


def test_unpack_errors(tmp_path: Path) -> None:
    with pytest.raises(HamqError, match="does not exist"):
        unpack(tmp_path / "none.tar.gz", tmp_path)
    archive = tmp_path / "two.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for top in ("one", "two"):
            info = tarfile.TarInfo(f"{top}/f")
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(HamqError, match="2 top-level entries"):
        unpack(archive, tmp_path / "d")


def shared_archive(name: str) -> Path:
    folder = shared_data_dir()
    if folder is None or not (folder / name).is_file():
        pytest.skip(f"needs ../shared/data/{name} (the shared data sets are absent here)")
    return folder / name


def extract_slice(archive: Path, dest: Path, per_folder: int) -> Path:
    """Extract at most ``per_folder`` files of each leaf folder (streaming, in archive order)."""
    seen: Counter[str] = Counter()
    top = None
    with tarfile.open(archive, "r|gz") as tar:
        for m in tar:
            top = top or m.name.split("/", 1)[0]
            if not m.isfile():
                continue
            parent = m.name.rsplit("/", 1)[0]
            if seen[parent] < per_folder:
                seen[parent] += 1
                tar.extract(m, dest, filter="data")
    assert top is not None
    return dest / top


@pytest.mark.data
def test_real_speech_commands_slice(tmp_path: Path) -> None:
    root = extract_slice(shared_archive("speech_commands_v0.02_test.flac.tar.gz"), tmp_path, 40)
    cfg = DataConfig(name="speech_commands", root=str(root), cache_dir=str(tmp_path / "c"))
    b = load_dataset(cfg)
    n = b.train_x.shape[0] + b.test_x.shape[0]
    assert 300 < n <= 12 * 40 and b.test_x.shape[0] > 0
    assert set(b.train_y.tolist()) == set(range(12))  # every class in training
    assert b.transform.noise is not None  # the training _silence_ clips
    x, _ = next(b.train_batches(64, torch.Generator().manual_seed(0)))
    assert x.shape == (64, 1, 49, 10) and torch.isfinite(x).all()


@pytest.mark.data
def test_real_cifar10_jpeg_slice(tmp_path: Path) -> None:
    root = extract_slice(shared_archive("cifar10-jpeg.tar.gz"), tmp_path, 8)
    b = load_dataset(DataConfig(name="cifar10", root=str(root), cache=False, validation_percent=0))
    assert b.train_x.shape == (80, 3, 32, 32) and b.test_x.shape == (80, 3, 32, 32)
    assert torch.bincount(b.train_y).tolist() == [8] * 10
    x, _ = next(b.train_batches(32, torch.Generator().manual_seed(0)))
    assert x.shape == (32, 3, 32, 32)
    # roughly CIFAR statistics after normalization (zero padding pulls the mean down)
    assert abs(float(b.transform(b.test_x, False, None).mean())) < 0.5
