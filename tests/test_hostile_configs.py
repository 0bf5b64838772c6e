"""Hostile drill: run configs (``--set`` values and config files) and meaningless runs.

Each case must be refused with exit 2 and one line naming the field or file and the problem,
before anything is trained (except the divergence cases, which stop at the first bad step).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hamq.training.checkpoint import load_checkpoint
from hostile import TINY, refused

# (id, --set overrides, words the error must contain)
SET_CASES = [
    (
        "seed above 2^63",
        ["seed=9223372036854775808"],
        ["seed", "9223372036854775808", "4294967295"],
    ),
    ("seed above 2^64", ["seed=18446744073709551617"], ["seed", "less than or equal"]),
    ("seed negative", ["seed=-1"], ["seed", "-1", "greater than or equal to 0"]),
    ("seed a float", ["seed=1.5"], ["seed", "1.5", "integer"]),
    (
        "lambda inf",
        ["regularizer.name=hamming", "regularizer.lambda=.inf"],
        ["regularizer.lambda", "inf", "finite"],
    ),
    (
        "lambda nan",
        ["regularizer.name=hamming", "regularizer.lambda=.nan"],
        ["regularizer.lambda", "nan", "finite"],
    ),
    ("lr inf", ["train.lr=.inf"], ["train.lr", "inf", "finite"]),
    ("lr nan", ["train.lr=.nan"], ["train.lr", "nan", "finite"]),
    ("lr overflowing 1e400", ["train.lr=1e400"], ["train.lr", "finite"]),
    ("lr -inf", ["train.lr=-.inf"], ["train.lr", "finite"]),
    ("qat_lr inf", ["train.qat_lr=.inf"], ["train.qat_lr", "finite"]),
    ("weight decay inf", ["train.weight_decay=.inf"], ["train.weight_decay", "finite"]),
    ("momentum nan", ["train.momentum=.nan"], ["train.momentum", "finite"]),
    ("label smoothing nan", ["train.label_smoothing=.nan"], ["train.label_smoothing", "finite"]),
    ("model width nan", ["model.width=.nan"], ["model.width", "finite"]),
    (
        "slope inf",
        ["regularizer.name=hamming", "regularizer.slope=.inf"],
        ["regularizer.slope", "finite"],
    ),
    ("lr a boolean", ["train.lr=true"], ["train.lr", "boolean"]),
    ("w_bits a boolean", ["quant.w_bits=true"], ["quant.w_bits", "boolean"]),
    ("batch size a boolean", ["data.batch_size=false"], ["data.batch_size", "boolean"]),
    ("switch given as 1", ["train.amp=1"], ["train.amp", "true or false"]),
    ("lr a list", ["train.lr=[1, 2]"], ["train.lr", "valid number"]),
    ("lr a mapping", ["train.lr={a: 1}"], ["train.lr", "valid number"]),
    ("w_bits a string", ["quant.w_bits=eight"], ["quant.w_bits", "eight"]),
    ("skip a number", ["quant.skip=5"], ["quant.skip", "5"]),
    ("section set to a number", ["quant=3"], ["quant", "3"]),
    ("huge epoch count", ["train.float_epochs=" + "9" * 30], ["train.float_epochs", "100000"]),
    ("huge batch size", ["data.batch_size=" + "9" * 20], ["data.batch_size", "1048576"]),
    ("huge warmup", ["train.warmup_epochs=" + "9" * 20], ["train.warmup_epochs"]),
    ("data root for digits", ["data.root=/tmp"], ["data.root", "digits", "remove it"]),
    ("augment off for digits", ["data.augment=false"], ["data.augment", "digits", "no effect"]),
    ("cache_dir for digits", ["data.cache_dir=/tmp/c"], ["data.cache_dir", "digits"]),
    ("audio option for digits", ["data.time_shift_ms=5"], ["data.time_shift_ms", "digits"]),
    ("empty --set key", ["=3"], ["--set", "empty part"]),
    ("--set key with an empty part", ["quant..w_bits=3"], ["quant..w_bits", "empty part"]),
    ("--set without =", ["quant.w_bits"], ["quant.w_bits", "key=value"]),
    ("--set into a value", ["seed=1", "seed.x=2"], ["seed", "not a section"]),
    (
        "--set value with YAML aliases",
        ["quant.skip=[&a x, *a, *a]"],
        ["--set value", "alias"],
    ),
    (
        "--set value with a python tag",
        ["seed=!!python/object/apply:os.system [echo pwned]"],
        ["seed", "integer"],
    ),
    (
        "unknown name with a newline",
        ['model.name="digits\\ncnn"'],
        ["model.name", "digits\\ncnn", "allowed"],
    ),
    (
        "init_from not a checkpoint",
        ["train.float_epochs=0", "train.init_from=/etc/hostname"],
        ["/etc/hostname", "not a safetensors file"],
    ),
]


@pytest.mark.parametrize(("case", "sets", "needles"), SET_CASES, ids=[c[0] for c in SET_CASES])
def test_bad_set_values_are_refused(
    case: str, sets: list[str], needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["train", "--out", str(tmp_path / "run"), *TINY]
    for s in sets:
        args += ["--set", s]
    refused(capsys, args, needles)
    assert not (tmp_path / "run" / "run.json").exists()
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_huge_value_gives_a_short_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = refused(
        capsys,
        ["train", "--out", str(tmp_path / "r"), "--set", "model.name=" + "x" * 200_000],
        ["model.name", "more characters"],
    )
    assert len(line) < 1100


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)

# (id, file bytes, words the error must contain besides the file name)
FILE_CASES = [
    ("empty file", b"", ["is empty"]),
    ("only a comment", b"# nothing here\n", ["is empty"]),
    ("not UTF-8", b"quant:\n  w_bits: \xff8\n", ["not UTF-8", "0xff"]),
    ("binary junk", bytes(range(256)), ["not UTF-8"]),
    ("billion laughs", (LAUGHS + "quant: *i\n").encode(), ["alias"]),
    ("python object tag", b"quant: !!python/object:os.system {}\n", ["not valid YAML", "python"]),
    (
        "python apply tag",
        b"quant: !!python/object/apply:os.system ['echo pwned']\n",
        ["not valid YAML", "python/object/apply"],
    ),
    ("duplicate key", b"seed: 1\nseed: 2\n", ["seed", "twice"]),
    ("over 1 MiB", b"# " + b"x" * 1_100_000 + b"\nseed: 1\n", ["bytes", "1048576"]),
    ("a list", b"- quant\n- train\n", ["mapping", "list"]),
    ("a scalar", b"42\n", ["mapping", "int"]),
    ("tab indentation", b"quant:\n\tw_bits: 4\n", ["not valid YAML"]),
    ("unclosed bracket", b"quant: [1, 2\n", ["not valid YAML"]),
    ("section is null", b"quant:\n", ["quant", "None"]),
    ("section is a list", b"quant: [1, 2]\n", ["quant"]),
    ("mapping as a key", b"? [a, b]\n: 1\n", ["not valid YAML", "unhashable"]),
    ("integer key", b"1: 2\n", ["Keys should be strings"]),
    ("unknown section", b"trian: {lr: 1}\n", ["trian", "did you mean 'train'"]),
]


@pytest.mark.parametrize(("case", "text", "needles"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_config_files_are_refused(
    case: str, text: bytes, needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(text)
    refused(
        capsys,
        ["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--quiet"],
        [str(cfg), *needles],
    )
    assert not (tmp_path / "r").exists()


def test_config_path_problems(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = ["--out", str(tmp_path / "r"), "--quiet"]
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    refused(capsys, ["train", "--config", str(folder), *out], ["--config", "is a directory"])
    (tmp_path / "loop1.yaml").symlink_to(tmp_path / "loop2.yaml")
    (tmp_path / "loop2.yaml").symlink_to(tmp_path / "loop1.yaml")
    refused(
        capsys,
        ["train", "--config", str(tmp_path / "loop1.yaml"), *out],
        ["loop1.yaml", "too many levels of symbolic links"],
    )
    afile = tmp_path / "afile"
    afile.write_text("x")
    refused(
        capsys,
        ["train", "--config", str(afile / "sub.yaml"), *out],
        ["sub.yaml", "not a directory"],
    )
    refused(capsys, ["train", "--config", str(tmp_path / "none.yaml"), *out], ["does not exist"])
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would wait forever for a writer
    refused(
        capsys,
        ["train", "--config", str(tmp_path / "pipe.yaml"), *out],
        ["pipe.yaml", "not a regular file"],
    )
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")  # endless
    refused(
        capsys,
        ["train", "--config", str(tmp_path / "zero.yaml"), *out],
        ["zero.yaml", "not a regular file"],
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "secret.yaml"
    cfg.write_text("seed: 1\n")
    cfg.chmod(0)
    refused(
        capsys,
        ["train", "--config", str(cfg), "--out", str(tmp_path / "r")],
        ["secret.yaml", "permission denied"],
    )


# Runs that would train to a meaningless result: refused before the first epoch.
MEANINGLESS = [
    (
        "batch larger than the training set",
        ["data.batch_size=5000"],
        ["data.batch_size = 5000", "1257 training samples", "no optimizer step", "at most 1257"],
    ),
    (
        "train_limit below the batch size",
        ["data.train_limit=10"],
        ["data.batch_size = 64", "10 training samples", "data.train_limit"],
    ),
    (
        "every layer skipped",
        ["quant.skip=[features.0, features.3, classifier]"],
        ["no layer", "quantized", "quant.skip"],
    ),
]


@pytest.mark.parametrize(("case", "sets", "needles"), MEANINGLESS, ids=[c[0] for c in MEANINGLESS])
def test_meaningless_runs_are_refused(
    case: str, sets: list[str], needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["train", "--out", str(tmp_path / "run"), *TINY]
    for s in sets:
        args += ["--set", s]
    refused(capsys, args, needles)
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize(
    ("case", "sets", "needles"),
    [
        ("qat lr 1e30", ["train.qat_lr=1e30"], ["diverged", "nan", "epoch 1", "train.qat_lr"]),
        (
            "huge lambda",
            ["regularizer.name=l1", "regularizer.lambda=1e38"],
            ["diverged", "epoch 1", "regularizer.lambda"],
        ),
    ],
    ids=["qat lr 1e30", "l1 lambda 1e38"],
)
def test_divergence_stops_before_a_nan_checkpoint(
    case: str, sets: list[str], needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The float epoch trains normally; the QAT epoch diverges and must stop the run with
    the float epoch's checkpoint intact (finite, epoch 0) and no model or record written."""
    out = tmp_path / "run"
    args = ["train", "--out", str(out), *TINY]
    for s in sets:
        args += ["--set", s]
    refused(capsys, args, needles)
    tensors, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert meta["epoch"] == 0 and meta["stage"] == "float"
    assert all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())
    assert not (out / "model.safetensors").exists() and not (out / "run.json").exists()
