"""CIFAR-10 from official-format batches and from image folders; the safe unpickler."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hamq.data import DataConfig, load_dataset
from hamq.data.cifar import CLASSES, MEAN, STD
from hamq.errors import HamqError


class Py2StylePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes a pickle as Python 2's cPickle wrote the official batches: protocol 2, byte
    strings as BINSTRING opcodes, numpy's array constructor under ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        if getattr(obj, "__name__", "") == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj: object) -> bytes:
    import io

    buf = io.BytesIO()
    Py2StylePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def image_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def write_batches(folder: Path, n: int = 2) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        data, labels = image_rows(n, i), [(i + j) % 10 for j in range(n)]
        batch = {
            b"batch_label": f"batch {i}".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
        (folder / name).write_bytes(py2_pickle(batch))
        written[name] = (data, labels)
    meta = {b"num_cases_per_batch": n, b"label_names": [c.encode() for c in CLASSES]}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return written


def test_py2_style_pickle_really_uses_old_opcodes() -> None:
    import pickletools

    ops = {op.name for op, _, _ in pickletools.genops(py2_pickle({b"data": image_rows(1, 0)}))}
    assert {"SHORT_BINSTRING", "BINSTRING", "GLOBAL"} <= ops
    assert "BINBYTES" not in ops


@pytest.mark.parametrize("inner", ["", "cifar-10-batches-py"])
def test_official_batches_load(tmp_path: Path, inner: str) -> None:
    written = write_batches(tmp_path / inner if inner else tmp_path / "b")
    root = tmp_path if inner else tmp_path / "b"
    b = load_dataset(DataConfig(name="cifar10", root=str(root), validation_percent=0))
    assert b.train_x.shape == (10, 3, 32, 32) and b.train_x.dtype == torch.uint8
    assert b.test_x.shape == (2, 3, 32, 32)
    data, labels = written["data_batch_2"]
    # row layout: 1024 red, then green, then blue values, each plane row-major
    assert torch.equal(b.train_x[2, 1, 3, 5], torch.tensor(data[0, 1024 + 3 * 32 + 5]))
    assert b.train_y[2:4].tolist() == labels
    assert b.test_y.tolist() == written["test_batch"][1]
    assert b.classes == list(CLASSES)


def test_numpy2_pickle_also_loads(tmp_path: Path) -> None:
    write_batches(tmp_path)
    data = image_rows(3, 9)
    (tmp_path / "test_batch").write_bytes(
        pickle.dumps({b"data": data, b"labels": [1, 2, 3]}, protocol=4)
    )
    b = load_dataset(DataConfig(name="cifar10", root=str(tmp_path), validation_percent=0))
    assert torch.equal(b.test_x.reshape(3, -1), torch.from_numpy(data))


class _Evil:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.sentinel}",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    write_batches(tmp_path)
    sentinel = tmp_path / "pwned"
    bad = tmp_path / "data_batch_3"
    bad.write_bytes(py2_pickle({b"data": _Evil(sentinel), b"labels": []}))
    with pytest.raises(HamqError, match="data_batch_3") as err:
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    assert "system" in str(err.value) and "\n" not in str(err.value)
    assert not sentinel.exists()
    # other globals that could run code are refused as well
    (tmp_path / "data_batch_3").write_bytes(py2_pickle({b"x": eval}))
    with pytest.raises(HamqError, match=r"refused global _*builtins?_*\.eval"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)))


def test_malformed_batch_names_file(tmp_path: Path) -> None:
    write_batches(tmp_path)
    (tmp_path / "test_batch").write_bytes(py2_pickle({b"data": b"nope", b"labels": [1]}))
    with pytest.raises(HamqError, match=r"test_batch.*lacks b'data'"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    (tmp_path / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(HamqError, match="cannot read CIFAR-10 batch"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)))


def write_image_folder(root: Path, classes: list[str], size: int = 32, ext: str = "png") -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("test", 1)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for k in range(n):
                arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{k:04d}.{ext}")


def test_cifar_image_folder_layout_and_cache(tmp_path: Path) -> None:
    root = tmp_path / "cifar10-jpeg"
    write_image_folder(root, list(CLASSES))
    cfg = DataConfig(
        name="cifar10", root=str(root), cache_dir=str(tmp_path / "cache"), validation_percent=0
    )
    b = load_dataset(cfg)
    assert b.train_x.shape == (20, 3, 32, 32) and b.test_x.shape == (10, 3, 32, 32)
    assert b.train_y.tolist() == [i // 2 for i in range(20)]
    png = np.asarray(Image.open(root / "train" / "cat" / "0001.png"))
    assert torch.equal(b.train_x[7], torch.tensor(png).permute(2, 0, 1))
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    again = load_dataset(cfg)
    assert torch.equal(again.train_x, b.train_x) and torch.equal(again.test_y, b.test_y)
    # eval transform: (x / 255 - mean) / std per channel
    x = b.transform(b.test_x[:2], False, None)
    ref = (
        b.test_x[:2].double() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1).double()
    ) / torch.tensor(STD).view(1, 3, 1, 1).double()
    torch.testing.assert_close(x.double(), ref, atol=1e-5, rtol=0)


def test_cifar_folder_with_wrong_classes(tmp_path: Path) -> None:
    write_image_folder(tmp_path, ["cat", "dog"])
    with pytest.raises(HamqError, match="expected exactly"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), cache=False))


def test_generic_image_folder(tmp_path: Path) -> None:
    write_image_folder(tmp_path, ["a", "b", "c"], size=12, ext="jpg")
    b = load_dataset(
        DataConfig(name="image_folder", root=str(tmp_path), cache=False, validation_percent=0)
    )
    assert b.classes == ["a", "b", "c"] and b.input_shape == (3, 12, 12)
    x = b.transform(b.train_x, False, None)  # normalized by its own training statistics
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    g = torch.Generator().manual_seed(0)
    xb, _ = next(b.train_batches(4, g))
    assert xb.shape == (4, 3, 12, 12) and xb.dtype == torch.float32


def test_mixed_image_sizes_rejected(tmp_path: Path) -> None:
    write_image_folder(tmp_path, ["a"], size=8)
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "test" / "a" / "odd.png")
    with pytest.raises(HamqError, match=r"odd\.png' is 8x9 pixels"):
        load_dataset(DataConfig(name="image_folder", root=str(tmp_path), cache=False))


def test_missing_or_malformed_root_messages(tmp_path: Path) -> None:
    with pytest.raises(HamqError, match=r"needs data\.root"):
        load_dataset(DataConfig(name="cifar10"))
    with pytest.raises(HamqError, match="is not a folder"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path / "nope")))
    with pytest.raises(HamqError) as err:
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    msg = str(err.value)
    assert "no 'train' and 'test' sub-folders and no cifar-10-batches-py files" in msg
    assert "data_batch_1..5" in msg and "\n" not in msg
    with pytest.raises(HamqError, match="no 'train' and 'test' sub-folders"):
        load_dataset(DataConfig(name="image_folder", root=str(tmp_path)))
