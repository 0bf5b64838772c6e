"""Hostile drill: data folders (CIFAR-10 batches, image folders, audio folders, Speech
Commands lists), through ``hamq train``. Tiny files are built in tmp_path."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from hostile import TINY, refused
from test_data_cifar import py2_pickle, write_batches

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def train_args(tmp_path: Path, name: str, root: Path, model: str = "mlp") -> list[str]:
    return [
        "train", "--out", str(tmp_path / "run"), *TINY,
        "--set", f"data.name={name}", "--set", f"data.root={root}", "--set", "data.cache=false",
        "--set", "data.batch_size=2", "--set", f"model.name={model}", "--set", "model.width=0.25",
    ]  # fmt: skip


# ---- CIFAR-10 python batches ------------------------------------------------------------


def full_batches(root: Path) -> None:
    """Official-format batches in which every class has training and test images."""
    write_batches(root, n=10)
    rows = np.random.default_rng(0).integers(0, 256, (10, 3072), dtype=np.uint8)
    for name in [*TRAIN_BATCHES, "test_batch"]:
        (root / name).write_bytes(py2_pickle({b"data": rows, b"labels": list(range(10))}))


def put(name: str, obj: object) -> Callable[[Path], None]:
    return lambda root: (root / name).write_bytes(py2_pickle(obj))


def terabyte_array(root: Path) -> None:
    """A pickle that asks numpy's own array constructor (an allowed global) for 10^12 bytes."""
    n = (10**12).to_bytes(6, "little")
    raw = (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + b"\x8a\x06" + n + b"\x85" + b"U\x01b" + b"\x87R."
    )  # fmt: skip
    (root / "data_batch_1").write_bytes(raw)


def long_string(root: Path) -> None:
    """A BINSTRING claiming 2 GB in a file of a few bytes."""
    (root / "data_batch_1").write_bytes(b"\x80\x02T\xff\xff\xff\x7f" + b"abc")


def tera_bytes8(root: Path) -> None:
    """A BINBYTES8 claiming 2^40 bytes (the unpickler would try to allocate them)."""
    (root / "data_batch_1").write_bytes(b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


ZEROS = np.zeros((2, 3072), np.uint8)

CIFAR_CASES: list[tuple[str, Callable[[Path], object], list[str]]] = [
    ("a terabyte array", terabyte_array, ["data_batch_1", "larger than any CIFAR-10 batch"]),
    ("a 2 GB string in 11 bytes", long_string, ["data_batch_1", "2147483647 bytes"]),
    ("a 1 TB bytes8 in 20 bytes", tera_bytes8, ["data_batch_1", "1099511627776 bytes"]),
    (
        "os.system global",
        lambda r: (r / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil()}, protocol=2)),
        ["data_batch_1", "refused global"],
    ),
    (
        "a set (protocol 4 opcodes)",
        lambda r: (r / "data_batch_1").write_bytes(pickle.dumps({b"data": {1, 2}}, protocol=4)),
        ["data_batch_1", "EMPTY_SET", "refused"],
    ),
    (
        "a bytearray",
        lambda r: (r / "data_batch_1").write_bytes(
            pickle.dumps({b"data": bytearray(b"xy")}, protocol=5)
        ),
        ["data_batch_1", "BYTEARRAY8", "refused"],
    ),
    (
        "an object array",
        put("data_batch_1", {b"data": np.array([[1]], dtype=object), b"labels": [0]}),
        ["data_batch_1", "object"],
    ),
    (
        "float labels",
        put("data_batch_1", {b"data": ZEROS, b"labels": [0.5, 1.5]}),
        ["data_batch_1", "label 0.5"],
    ),
    (
        "boolean labels",
        put("data_batch_1", {b"data": ZEROS, b"labels": [True, False]}),
        ["data_batch_1", "label True"],
    ),
    (
        "byte-string labels",
        put("data_batch_1", {b"data": ZEROS, b"labels": [b"a", b"b"]}),
        ["data_batch_1", "label b'a'"],
    ),
    (
        "label 2^70",
        put("data_batch_1", {b"data": ZEROS, b"labels": [2**70, 1]}),
        ["data_batch_1", "0..9"],
    ),
    (
        "label 10",
        put("data_batch_1", {b"data": ZEROS, b"labels": [10, 1]}),
        ["data_batch_1", "label 10"],
    ),
    (
        "too few labels",
        put("data_batch_1", {b"data": ZEROS, b"labels": [1]}),
        ["data_batch_1", "lacks b'data'"],
    ),
    (
        "images of the wrong size",
        put("data_batch_1", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
        ["data_batch_1", "(N, 3072)"],
    ),
    (
        "float images",
        put("data_batch_1", {b"data": ZEROS.astype(np.float32), b"labels": [0, 1]}),
        ["data_batch_1", "uint8"],
    ),
    (
        "truncated pickle",
        lambda r: (r / "data_batch_1").open("r+b").truncate(100),
        ["data_batch_1", "cannot read CIFAR-10 batch"],
    ),
    (
        "empty batch file",
        lambda r: (r / "data_batch_1").write_bytes(b""),
        ["data_batch_1", "exhausted before seeing STOP"],
    ),
    (
        "a list, not a dict",
        lambda r: (r / "data_batch_1").write_bytes(b"\x80\x02" + b"]" * 1000 + b"."),
        ["data_batch_1", "list"],
    ),
    (
        "nesting 13 levels",
        put("data_batch_1", {b"x": [[[[[[[[[[[[1]]]]]]]]]]]]}),
        ["data_batch_1", "nested"],
    ),
    (
        "batch over 256 MiB",
        lambda r: (r / "data_batch_1").open("r+b").truncate(300 << 20),
        ["data_batch_1", "bytes"],
    ),
    (
        "a batch is a folder",
        lambda r: ((r / "data_batch_2").unlink(), (r / "data_batch_2").mkdir()),
        ["lacks data_batch_2"],
    ),
    (
        "wrong class names",
        put("batches.meta", {b"label_names": [b"a"] * 10}),
        ["batches.meta", "airplane"],
    ),
    ("class names an int", put("batches.meta", {b"label_names": 5}), ["batches.meta", "5"]),
    (
        "class names not UTF-8",
        put("batches.meta", {b"label_names": [b"\xff"] * 10}),
        ["batches.meta", "xff"],
    ),
    (
        "one class only",
        lambda r: [put(n, {b"data": ZEROS, b"labels": [0, 0]})(r) for n in TRAIN_BATCHES],
        ["no training samples", "automobile"],
    ),
    (
        "a class absent from the test batch",
        put("test_batch", {b"data": ZEROS, b"labels": [0, 1]}),
        ["no test samples", "bird"],
    ),
    (
        "no training images",
        lambda r: [
            put(n, {b"data": np.zeros((0, 3072), np.uint8), b"labels": []})(r)
            for n in TRAIN_BATCHES
        ],
        ["no training samples"],
    ),
]


@pytest.mark.parametrize(
    ("case", "damage", "needles"), CIFAR_CASES, ids=[c[0] for c in CIFAR_CASES]
)
def test_bad_cifar_batches_are_refused(
    case: str,
    damage: Callable[[Path], object],
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    root = tmp_path / "cifar"
    full_batches(root)
    damage(root)
    refused(capsys, train_args(tmp_path, "cifar10", root), needles)
    assert not (tmp_path / "pwned").exists()


def test_sound_cifar_batches_train(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The drill's baseline: the undamaged tiny batches train (so each refusal above is due
    to its damage)."""
    from hostile import call

    root = tmp_path / "cifar"
    full_batches(root)
    code, _, err = call(capsys, train_args(tmp_path, "cifar10", root))
    assert code == 0, err


# ---- image folders ----------------------------------------------------------------------


def image_folder(root: Path, classes: tuple[str, ...] = ("a", "b")) -> None:
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for k in range(2):
                Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(
                    root / split / c / f"{k}.png"
                )


def _truncated_jpeg(root: Path) -> None:
    rng = np.random.default_rng(0)
    path = root / "train" / "a" / "x.jpg"
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:200])


def _link_loop(root: Path) -> None:
    (root / "train" / "a" / "l1.png").symlink_to(root / "train" / "a" / "l2.png")
    (root / "train" / "a" / "l2.png").symlink_to(root / "train" / "a" / "l1.png")


IMAGE_CASES: list[tuple[str, Callable[[Path], object], list[str]]] = [
    (
        "empty class folder",
        lambda r: [p.unlink() for p in (r / "train" / "b").iterdir()],
        ["class 'b'", "no images", "train/b"],
    ),
    ("class missing from test", lambda r: shutil.rmtree(r / "test" / "b"), ["class 'b'", "test/b"]),
    (
        "test class without training images",
        lambda r: shutil.copytree(r / "test" / "a", r / "test" / "zz"),
        ["zz", "training images"],
    ),
    (
        "one class",
        lambda r: (shutil.rmtree(r / "train" / "b"), shutil.rmtree(r / "test" / "b")),
        ["1 class", "at least two"],
    ),
    (
        "corrupt PNG",
        lambda r: (r / "train" / "a" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage"),
        ["0.png", "cannot read image"],
    ),
    (
        "truncated PNG",
        lambda r: (r / "train" / "a" / "0.png").open("r+b").truncate(40),
        ["0.png", "cannot read image"],
    ),
    ("truncated JPEG", _truncated_jpeg, ["x.jpg", "cannot read image"]),
    (
        "image of another size",
        lambda r: Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(r / "test" / "a" / "z.png"),
        ["z.png", "8x9"],
    ),
    (
        "decompression bomb",
        lambda r: Image.new("1", (6000, 6000)).save(r / "train" / "a" / "bomb.png"),
        ["bomb.png", "6000x6000", "resize"],
    ),
    ("link loop", _link_loop, ["l1.png", "link loop"]),
    (
        "train is a file",
        lambda r: (shutil.rmtree(r / "train"), (r / "train").write_text("x")),
        ["no 'train' and 'test' sub-folders"],
    ),
]


@pytest.mark.parametrize(
    ("case", "damage", "needles"), IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES]
)
def test_bad_image_folders_are_refused(
    case: str,
    damage: Callable[[Path], object],
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    root = tmp_path / "images"
    image_folder(root)
    damage(root)
    refused(capsys, train_args(tmp_path, "image_folder", root), needles)


# ---- audio folders and Speech Commands --------------------------------------------------


def tone(rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def audio_folder(root: Path) -> None:
    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for k in range(2):
                sf.write(root / split / c / f"{k}.wav", tone(), 16000)
    (root / "_background_noise_").mkdir()  # (no warning about missing noise)
    sf.write(root / "_background_noise_" / "n.wav", tone(16000, 2.0), 16000)


A0 = Path("train") / "a" / "0.wav"


def _truncate(n: int) -> Callable[[Path], None]:
    return lambda r: (r / A0).open("r+b").truncate(n)


def _flac_truncated(root: Path) -> None:
    path = root / "train" / "a" / "9.flac"
    sf.write(path, (np.random.default_rng(0).random(16000) * 0.1).astype(np.float32), 16000)
    path.write_bytes(path.read_bytes()[:2000])


AUDIO_CASES: list[tuple[str, Callable[[Path], object], list[str]]] = [
    ("WAV header only", _truncate(30), ["0.wav", "cannot read audio"]),
    ("WAV data cut", _truncate(10000), ["0.wav", "truncated"]),
    (
        "WAV of zero samples",
        lambda r: sf.write(r / A0, np.zeros(0, np.float32), 16000),
        ["0.wav", "no samples"],
    ),
    ("empty file", lambda r: (r / A0).write_bytes(b""), ["0.wav", "cannot read audio"]),
    ("text named .wav", lambda r: (r / A0).write_text("hello"), ["0.wav", "cannot read audio"]),
    ("truncated FLAC", _flac_truncated, ["9.flac", "cannot read audio"]),
    (
        "sample rate 1 Hz",
        lambda r: sf.write(r / A0, np.zeros(10, np.float32), 1),
        ["0.wav", "1 Hz"],
    ),
    (
        "sample rate 2^31-1 Hz",
        lambda r: sf.write(r / A0, np.zeros(100, np.float32), 2**31 - 1),
        ["0.wav", "2147483647 Hz"],
    ),
    (
        "NaN samples",
        lambda r: sf.write(r / A0, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT"),
        ["0.wav", "NaN"],
    ),
    (
        "100 channels",
        lambda r: sf.write(r / A0, np.zeros((1600, 100), np.float32), 16000),
        ["0.wav", "100 channels"],
    ),
    (
        "empty class folder",
        lambda r: [p.unlink() for p in (r / "train" / "b").iterdir()],
        ["train/b", "no WAV/FLAC"],
    ),
    (
        "class missing from test",
        lambda r: shutil.rmtree(r / "test" / "b"),
        ["no test samples", "'b'"],
    ),
    (
        "test-only class",
        lambda r: shutil.copytree(r / "test" / "a", r / "test" / "zz"),
        ["zz", "no training clips"],
    ),
    (
        "broken link",
        lambda r: (r / "train" / "a" / "x.wav").symlink_to(r / "nowhere.wav"),
        ["x.wav", "broken"],
    ),
]


@pytest.mark.parametrize(
    ("case", "damage", "needles"), AUDIO_CASES, ids=[c[0] for c in AUDIO_CASES]
)
def test_bad_audio_folders_are_refused(
    case: str,
    damage: Callable[[Path], object],
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    root = tmp_path / "audio"
    audio_folder(root)
    damage(root)
    refused(capsys, train_args(tmp_path, "audio_folder", root, "ds-cnn"), needles)


def test_speech_commands_list_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "sc"
    for word in ("yes", "no"):
        (root / word).mkdir(parents=True)
        sf.write(root / word / "abcd1234_nohash_0.wav", tone(), 16000)
    (root / "testing_list.txt").write_bytes(b"yes/abcd1234_nohash_0.wav\n\xff\n")
    refused(
        capsys,
        train_args(tmp_path, "speech_commands", root, "ds-cnn"),
        ["testing_list.txt", "not UTF-8"],
    )


def test_data_root_problems(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    refused(capsys, train_args(tmp_path, "cifar10", afile), ["afile", "is not a folder"])
    refused(capsys, train_args(tmp_path, "cifar10", tmp_path / "none"), ["is not a folder"])
    refused(capsys, train_args(tmp_path, "image_folder", tmp_path), ["no 'train' and 'test'"])
