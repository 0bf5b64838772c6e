"""Hostile drill: damaged or hand-edited run folders (``hamq eval``/``hamq energy``) and
checkpoints (``hamq train --resume``)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hamq.training.checkpoint import file_sha256
from hostile import TINY, call, refused


def sub(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def edit_record(run: Path, fn: Callable[[dict], object]) -> None:
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(fn(record)))


def with_config(record: dict, section: str, key: str, value: object) -> dict:
    record["config"][section][key] = value
    return record


def replace_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


# (id, damage done to a finished run folder, words the error must contain)
RUN_CASES: list[tuple[str, Callable[[Path], object], list[str]]] = [
    (
        "run.json not JSON",
        lambda r: (r / "run.json").write_text("{not json"),
        ["run.json", "not valid JSON"],
    ),
    ("run.json empty", lambda r: (r / "run.json").write_text(""), ["run.json", "not valid JSON"]),
    ("run.json a list", lambda r: (r / "run.json").write_text("[1, 2]"), ["run.json", "list"]),
    (
        "run.json not UTF-8",
        lambda r: (r / "run.json").write_bytes(b'{"a": "\xff"}'),
        ["run.json", "UTF-8"],
    ),
    (
        "run.json deeply nested",
        lambda r: (r / "run.json").write_text("[" * 100000 + "]" * 100000),
        ["run.json"],
    ),
    ("run.json a folder", lambda r: replace_dir(r / "run.json"), ["run.json", "is a folder"]),
    (
        "run.json lacks shapes",
        lambda r: edit_record(r, lambda d: {"config": d["config"]}),
        ["input_shape"],
    ),
    (
        "input_shape a string",
        lambda r: edit_record(r, lambda d: {**d, "input_shape": "abc"}),
        ["input_shape", "abc"],
    ),
    (
        "input_shape negative",
        lambda r: edit_record(r, lambda d: {**d, "input_shape": [1, -8, 8]}),
        ["input_shape", "-8"],
    ),
    (
        "input_shape of 10^10 elements",
        lambda r: edit_record(r, lambda d: {**d, "input_shape": [1, 100000, 100000]}),
        ["input_shape", "16777216"],
    ),
    (
        "num_classes a string",
        lambda r: edit_record(r, lambda d: {**d, "num_classes": "ten"}),
        ["num_classes", "ten"],
    ),
    (
        "num_classes 0",
        lambda r: edit_record(r, lambda d: {**d, "num_classes": 0}),
        ["num_classes", "0"],
    ),
    (
        "num_classes 11",
        lambda r: edit_record(r, lambda d: {**d, "num_classes": 11}),
        ["model.safetensors", "does not match", "classifier"],
    ),
    (
        "run.json config lacks a section",
        lambda r: edit_record(r, lambda d: {**d, "config": "x"}),
        ["run.json", "no config"],
    ),
    (
        "run.json config edited: seed",
        lambda r: edit_record(r, lambda d: {**d, "config": {**d["config"], "seed": 5}}),
        ["disagrees", "run.json", "seed", "5"],
    ),
    (
        "run.json config edited: w_bits",
        lambda r: edit_record(r, lambda d: with_config(d, "quant", "w_bits", 4)),
        ["disagrees", "quant.w_bits", "(8 vs 4)"],
    ),
    (
        "config.yaml edited: w_bits",
        lambda r: sub(r / "config.yaml", "w_bits: 8", "w_bits: 4"),
        ["config.yaml", "disagrees", "quant.w_bits", "(4 vs 8)"],
    ),
    (
        "config.yaml edited: preset",
        lambda r: sub(r / "config.yaml", "preset: rram-1b", "preset: rram-2b-40nm"),
        ["config.yaml", "hardware.preset", "rram-2b-40nm"],
    ),
    (
        "config.yaml edited: representation",
        lambda r: sub(r / "config.yaml", "representation: null", "representation: twos_complement"),
        ["hardware.representation", "twos_complement"],
    ),
    (
        "config.yaml edited: a_bits",
        lambda r: sub(r / "config.yaml", "a_bits: 8", "a_bits: 6"),
        ["quant.a_bits", "(6 vs 8)"],
    ),
    (
        "config.yaml invalid value",
        lambda r: sub(r / "config.yaml", "w_bits: 8", "w_bits: 80"),
        ["config.yaml", "quant.w_bits", "80"],
    ),
    (
        "config.yaml not UTF-8",
        lambda r: (r / "config.yaml").open("ab").write(b"# \xff\n"),
        ["config.yaml", "UTF-8"],
    ),
    ("config.yaml empty", lambda r: (r / "config.yaml").write_text(""), ["config.yaml", "empty"]),
    (
        "config.yaml a list",
        lambda r: (r / "config.yaml").write_text("- 1\n"),
        ["config.yaml", "list"],
    ),
    (
        "model replaced by the float weights",
        lambda r: shutil.copy(r / "float.safetensors", r / "model.safetensors"),
        ["model.safetensors", "SHA-256"],
    ),
    (
        "model truncated",
        lambda r: (r / "model.safetensors").open("r+b").truncate(1000),
        ["model.safetensors", "SHA-256"],
    ),
    (
        "model empty",
        lambda r: (r / "model.safetensors").write_bytes(b""),
        ["model.safetensors", "SHA-256"],
    ),
    (
        "model a folder",
        lambda r: replace_dir(r / "model.safetensors"),
        ["model.safetensors", "is a folder"],
    ),
    (
        "model missing",
        lambda r: (r / "model.safetensors").unlink(),
        ["model.safetensors", "--resume"],
    ),
    (
        "run folder is a file",
        lambda r: (shutil.rmtree(r), r.write_text("x")),
        ["is a file, not a run folder"],
    ),
]


def _rewrite_model(
    run: Path,
    tensors_fn: Callable[[dict], dict] | None = None,
    meta_fn: Callable[[dict], dict] | None = None,
    keep_sha: bool = False,
) -> None:
    """Rewrite model.safetensors and, unless ``keep_sha``, record its new checksum (as a
    careful forger would), so that the other checks must catch the change."""
    path = run / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["hamq"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if tensors_fn:
        tensors = tensors_fn(tensors)
    if meta_fn:
        meta = meta_fn(meta)
    save_file(tensors, str(path), metadata={"hamq": json.dumps(meta)})
    if not keep_sha:
        edit_record(run, lambda d: {**d, "model_sha256": file_sha256(path)})


def _nan_first(t: dict) -> dict:
    k = next(k for k in t if k.endswith("weight"))
    return {**t, k: t[k] * float("nan")}


RUN_CASES += [
    (
        "model meta config differs",
        lambda r: _rewrite_model(r, meta_fn=lambda m: {**m, "config": {**m["config"], "seed": 9}}),
        ["model.safetensors", "seed", "(0 vs 9)"],
    ),
    (
        "model meta without config",
        lambda r: _rewrite_model(
            r, meta_fn=lambda m: {k: v for k, v in m.items() if k != "config"}
        ),
        ["model.safetensors", "no config"],
    ),
    (
        "model weights NaN",
        lambda r: _rewrite_model(r, tensors_fn=_nan_first),
        ["model.safetensors", "non-finite"],
    ),
    (
        "model tensor missing",
        lambda r: _rewrite_model(r, tensors_fn=lambda t: dict(list(t.items())[1:])),
        ["model.safetensors", "does not match"],
    ),
    (
        "model tensor reshaped",
        lambda r: _rewrite_model(
            r,
            tensors_fn=lambda t: {
                k: v.flatten() if k.endswith("0.weight") else v for k, v in t.items()
            },
        ),
        ["model.safetensors", "size mismatch"],
    ),
    (
        "model tensor extra",
        lambda r: _rewrite_model(r, tensors_fn=lambda t: {**t, "evil": torch.zeros(3)}),
        ["model.safetensors", "unexpected key"],
    ),
]


@pytest.mark.parametrize(("case", "damage", "needles"), RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_damaged_run_folders_are_refused_by_eval(
    case: str,
    damage: Callable[[Path], object],
    needles: list[str],
    run_copy: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    damage(run_copy)
    refused(capsys, ["eval", str(run_copy), "--samples", "10"], needles)


ENERGY_CASES = [
    c
    for c in RUN_CASES
    if c[0]
    in (
        "input_shape a string",
        "input_shape of 10^10 elements",
        "config.yaml edited: w_bits",
        "config.yaml edited: preset",
        "model replaced by the float weights",
    )
]


@pytest.mark.parametrize(
    ("case", "damage", "needles"), ENERGY_CASES, ids=[c[0] for c in ENERGY_CASES]
)
def test_damaged_run_folders_are_refused_by_energy(
    case: str,
    damage: Callable[[Path], object],
    needles: list[str],
    run_copy: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    damage(run_copy)
    refused(capsys, ["energy", str(run_copy), "--hw", "rram-1b", "--static"], needles)


def test_an_untouched_run_and_one_without_checksum_load(
    run_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    """The checks refuse only what is wrong: a fresh run evaluates to its record, and a run
    folder of hamq 0.2.0 (no model_sha256 in run.json) still loads."""
    record = json.loads((run_copy / "run.json").read_text())
    assert record["model_sha256"] == file_sha256(run_copy / "model.safetensors")
    code, out, err = call(capsys, ["eval", str(run_copy), "--json"])
    assert code == 0, err
    assert json.loads(out)["cells"]["on"] == record["cells"]["on"]
    del record["model_sha256"]
    (run_copy / "run.json").write_text(json.dumps(record))
    code, out, err = call(capsys, ["eval", str(run_copy), "--json"])
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(record["accuracy"])


# ---- checkpoints, on resume -------------------------------------------------------------


def _unfinished(run: Path) -> Path:
    (run / "run.json").unlink()
    (run / "model.safetensors").unlink()
    return run / "checkpoint.safetensors"


def _rewrite(
    path: Path,
    meta_fn: Callable[[dict], object] | None = None,
    tensors_fn: Callable[[dict], dict] | None = None,
) -> None:
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["hamq"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    new_meta = meta_fn(meta) if meta_fn else meta
    tensors = tensors_fn(tensors) if tensors_fn else tensors
    metadata = (
        None
        if new_meta is None
        else {"hamq": new_meta if isinstance(new_meta, str) else json.dumps(new_meta)}
    )
    save_file(tensors, str(path), metadata=metadata)


def _drop(key: str) -> Callable[[dict], dict]:
    return lambda m: {k: v for k, v in m.items() if k != key}


def _raw_header(path: Path, header: dict) -> None:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 16)


CKPT_CASES: list[tuple[str, Callable[[Path], object], list[str]]] = [
    ("no metadata", lambda p: _rewrite(p, lambda m: None), ["no hamq metadata"]),
    ("metadata not JSON", lambda p: _rewrite(p, lambda m: "{bad"), ["no hamq metadata"]),
    ("metadata a list", lambda p: _rewrite(p, lambda m: "[1]"), ["format", "list"]),
    ("other format", lambda p: _rewrite(p, lambda m: {**m, "format": "x"}), ["format 'x'"]),
    ("no config", lambda p: _rewrite(p, _drop("config")), ["no 'config'"]),
    ("no epoch", lambda p: _rewrite(p, _drop("epoch")), ["no 'epoch'"]),
    ("no optimizer", lambda p: _rewrite(p, _drop("optimizer")), ["no 'optimizer'"]),
    ("epoch a string", lambda p: _rewrite(p, lambda m: {**m, "epoch": "one"}), ["epoch 'one'"]),
    (
        "epoch 10^30",
        lambda p: _rewrite(p, lambda m: {**m, "epoch": 10**30}),
        ["epoch 1000000000000000000000000000000"],
    ),
    ("epoch negative", lambda p: _rewrite(p, lambda m: {**m, "epoch": -5}), ["epoch -5"]),
    ("epoch a boolean", lambda p: _rewrite(p, lambda m: {**m, "epoch": True}), ["epoch True"]),
    ("stage unknown", lambda p: _rewrite(p, lambda m: {**m, "stage": "bogus"}), ["stage 'bogus'"]),
    (
        "stage inconsistent",
        lambda p: _rewrite(p, lambda m: {**m, "stage": "float"}),
        ["stage 'float'", "expected 'qat'"],
    ),
    ("history a string", lambda p: _rewrite(p, lambda m: {**m, "history": "x"}), ["history"]),
    ("history too short", lambda p: _rewrite(p, lambda m: {**m, "history": []}), ["history"]),
    (
        "history of numbers",
        lambda p: _rewrite(p, lambda m: {**m, "history": [1, 2]}),
        ["history entry"],
    ),
    (
        "optimizer garbled",
        lambda p: _rewrite(p, lambda m: {**m, "optimizer": {"param_groups": 3}}),
        ["optimizer state"],
    ),
    (
        "optimizer groups garbled",
        lambda p: _rewrite(
            p, lambda m: {**m, "optimizer": {**m["optimizer"], "param_groups": [{"x": 1}]}}
        ),
        ["optimizer state", "does not fit"],
    ),
    (
        "optimizer key garbled",
        lambda p: _rewrite(p, tensors_fn=lambda t: {**t, "optim/x/y": torch.zeros(1)}),
        ["optimizer state", "does not fit"],
    ),
    (
        "optimizer index out of range",
        lambda p: _rewrite(p, tensors_fn=lambda t: {**t, "optim/999/exp_avg": torch.zeros(1)}),
        ["optimizer state", "parameter 999"],
    ),
    (
        "optimizer state reshaped",
        lambda p: _rewrite(
            p,
            tensors_fn=lambda t: {k: v[:1] if k == "optim/0/exp_avg" else v for k, v in t.items()},
        ),
        ["optimizer state", "0/exp_avg", "shape"],
    ),
    (
        "model tensor NaN",
        lambda p: _rewrite(
            p,
            tensors_fn=lambda t: {
                k: v * float("nan") if k == "model/features.0.weight" else v for k, v in t.items()
            },
        ),
        ["non-finite", "model/features.0.weight"],
    ),
    (
        "model tensor missing",
        lambda p: _rewrite(
            p, tensors_fn=lambda t: {k: v for k, v in t.items() if k != "model/features.0.weight"}
        ),
        ["does not match", "features.0.weight"],
    ),
    (
        "model tensor reshaped",
        lambda p: _rewrite(
            p,
            tensors_fn=lambda t: {
                k: v.flatten() if k == "model/features.0.weight" else v for k, v in t.items()
            },
        ),
        ["does not match", "size mismatch"],
    ),
    (
        "header claims 4 PB of data",
        lambda p: _raw_header(
            p,
            {
                "a": {
                    "dtype": "F32",
                    "shape": [100000, 100000, 100000],
                    "data_offsets": [0, 4 * 10**15],
                }
            },
        ),
        ["corrupt"],
    ),
    (
        "header length 2^60",
        lambda p: p.write_bytes(struct.pack("<Q", 2**60) + b"{}"),
        ["corrupt", "header too large"],
    ),
    ("truncated", lambda p: p.open("r+b").truncate(5000), ["corrupt"]),
    ("empty", lambda p: p.write_bytes(b""), ["corrupt"]),
    ("a folder", lambda p: replace_dir(p), ["is a folder"]),
    ("not a checkpoint at all", lambda p: p.write_bytes(b"PK\x03\x04 a zip, say"), ["corrupt"]),
]


@pytest.mark.parametrize(("case", "damage", "needles"), CKPT_CASES, ids=[c[0] for c in CKPT_CASES])
def test_damaged_checkpoints_are_refused_on_resume(
    case: str,
    damage: Callable[[Path], object],
    needles: list[str],
    run_copy: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    ckpt = _unfinished(run_copy)
    damage(ckpt)
    refused(
        capsys,
        ["train", "--out", str(run_copy), "--resume", *TINY],
        ["checkpoint.safetensors", *needles],
    )
    assert not (run_copy / "model.safetensors").exists()


def test_resume_with_another_config_keeps_the_run(
    run_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    """A resume refused for another config must leave the run as it was (config.yaml too)."""
    before = (run_copy / "config.yaml").read_text()
    refused(
        capsys,
        ["train", "--out", str(run_copy), "--resume", *TINY, "--set", "seed=3"],
        ["another config", "new --out"],
    )
    assert (run_copy / "config.yaml").read_text() == before
    _unfinished(run_copy)
    refused(
        capsys,
        ["train", "--out", str(run_copy), "--resume", *TINY, "--set", "quant.w_bits=4"],
        ["another config"],
    )
    assert (run_copy / "config.yaml").read_text() == before
    # fewer epochs than the checkpoint holds: still "another config", not a damaged file
    refused(
        capsys,
        ["train", "--out", str(run_copy), "--resume", *TINY, "--set", "train.float_epochs=0"],
        ["another config", "--resume alone"],
    )
    assert (run_copy / "config.yaml").read_text() == before


def test_resume_of_a_finished_run_with_a_damaged_record(
    run_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    (run_copy / "run.json").write_text("{")
    refused(
        capsys, ["train", "--out", str(run_copy), "--resume", *TINY], ["run.json", "not valid JSON"]
    )


def test_init_from_weights_of_another_model(
    run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["train", "--out", str(tmp_path / "new"), "--quiet", "--set", "train.float_epochs=0"]
    args += ["--set", f"train.init_from={run_copy}", "--set", "model.name=mlp"]
    refused(capsys, args, ["float.safetensors", "does not match", "MLP"])
    os.remove(run_copy / "float.safetensors")
    refused(capsys, args, ["train.init_from", "no float weights"])
