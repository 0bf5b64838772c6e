"""Hostile drill: sweep files and their recipes, refused at load, before any run trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostile import refused

BASE = "base: {train: {float_epochs: 1, qat_epochs: 1}}\n"

# (id, sweep file text, {recipe file name: bytes}, words the error must contain)
CASES = [
    (
        "recipe malformed YAML",
        BASE + "recipe: r.yaml\n",
        {"r.yaml": b"quant: [1, 2\n"},
        ["r.yaml", "not valid YAML"],
    ),
    (
        "recipe a list",
        BASE + "recipe: r.yaml\n",
        {"r.yaml": b"- a\n- b\n"},
        ["r.yaml", "mapping", "list"],
    ),
    (
        "recipe not UTF-8",
        BASE + "recipe: r.yaml\n",
        {"r.yaml": b"seed: \xff\n"},
        ["r.yaml", "not UTF-8"],
    ),
    ("recipe empty", BASE + "recipe: r.yaml\n", {"r.yaml": b""}, ["r.yaml", "empty"]),
    (
        "recipe with aliases",
        BASE + "recipe: r.yaml\n",
        {"r.yaml": b"a: &a {w_bits: 4}\nquant: *a\n"},
        ["r.yaml", "alias"],
    ),
    (
        "recipe misspelled key",
        BASE + "recipe: r.yaml\n",
        {"r.yaml": b"quant: {wbits: 4}\n"},
        ["quant.wbits", "did you mean 'w_bits'"],
    ),
    ("recipe missing", BASE + "recipe: nope.yaml\n", {}, ["nope.yaml", "not found"]),
    ("recipe a folder", BASE + "recipe: d.yaml\n", {"d.yaml/": b""}, ["d.yaml", "is a folder"]),
    (
        "unknown energy_hw preset",
        BASE + "energy_hw: rram-9b\n",
        {},
        ["energy_hw", "rram-9b", "did you mean 'rram-1b'"],
    ),
    (
        "missing energy_hw file",
        BASE + "energy_hw: /nonexistent/hw.yaml\n",
        {},
        ["energy_hw", "/nonexistent/hw.yaml", "does not exist"],
    ),
    (
        "energy_hw with NaN energies",
        BASE + "energy_hw: {tmp}/hw.yaml\n",
        {"hw.yaml": b"tech: {e_cell_pj: [.nan, 1], e_adc_pj: 1, e_adc_ref_bits: 5}\n"},
        ["energy_hw", "finite"],
    ),
    (
        "unknown run hardware",
        "base: {hardware: {preset: rram-7b}}\n",
        {},
        ["w8-baseline", "rram-7b"],
    ),
    (
        "bits that cells cannot hold",
        "base: {hardware: {preset: rram-2b-40nm, representation: twos_complement}}\nbits: [7]\n",
        {},
        ["w7-baseline", "does not divide"],
    ),
    ("lambda inf", BASE + "hamming: [.inf]\n", {}, ["hamming.0", "finite"]),
    ("lambda nan", BASE + "l1: [.nan]\n", {}, ["l1.0", "finite"]),
    ("lambda negative", BASE + "l1: [-1]\n", {}, ["regularizer.lambda", "-1"]),
    ("lambda a boolean", BASE + "energy: [true]\n", {}, ["energy", "boolean"]),
    ("bits empty", BASE + "bits: []\n", {}, ["bits is empty"]),
    ("seeds empty", BASE + "seeds: []\n", {}, ["seeds is empty"]),
    ("bits 9", BASE + "bits: [9]\n", {}, ["quant.w_bits", "9"]),
    ("bits a boolean", BASE + "bits: [true]\n", {}, ["bits", "boolean"]),
    ("seed above 2^64", BASE + "seeds: [18446744073709551617]\n", {}, ["seed", "4294967295"]),
    ("duplicate seed", BASE + "seeds: [0, 0]\n", {}, ["seeds", "twice"]),
    ("duplicate lambda", BASE + "hamming: [1, 1.0]\n", {}, ["hamming", "twice"]),
    (
        "duplicate extra name",
        BASE + "extra: [{name: a, set: []}, {name: a, set: []}]\n",
        {},
        ["extra", "'a' twice"],
    ),
    (
        "extra named like a grid run",
        BASE + "extra: [{name: baseline, set: []}]\n",
        {},
        ["w8-baseline", "twice"],
    ),
    (
        "extra name escaping the folder",
        BASE + "extra: [{name: ../../etc, set: []}]\n",
        {},
        ["extra.0.name", "../../etc", "folder"],
    ),
    (
        "extra name with a slash",
        BASE + "extra: [{name: a/b, set: []}]\n",
        {},
        ["extra.0.name", "a/b"],
    ),
    (
        "extra set without =",
        BASE + "extra: [{name: a, set: [quant.w_bits]}]\n",
        {},
        ["quant.w_bits", "key=value"],
    ),
    (
        "extra set a string",
        BASE + "extra: [{name: a, set: quant.w_bits=4}]\n",
        {},
        ["extra.0.set", "list"],
    ),
    ("base a list", "base: [1]\n", {}, ["base", "dictionary"]),
    ("energy_samples 0", BASE + "energy_samples: 0\n", {}, ["energy_samples", "0"]),
    ("share_float not a boolean", BASE + "share_float: maybe\n", {}, ["share_float", "maybe"]),
    ("misspelled key", BASE + "hamm: [1]\n", {}, ["hamm", "did you mean 'hamming'"]),
    ("empty file", "", {}, ["empty"]),
    ("not UTF-8", BASE + "# \udcff\n", {}, ["not UTF-8"]),
    ("a list", "- 1\n", {}, ["mapping", "list"]),
    (
        "billion laughs",
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nhamming: *b\n",
        {},
        ["alias"],
    ),
    ("duplicate key", BASE + "hamming: [1]\nhamming: [2]\n", {}, ["hamming", "twice"]),
]


@pytest.mark.parametrize(("case", "text", "files", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_sweeps_are_refused_before_training(
    case: str,
    text: str,
    files: dict[str, bytes],
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    for name, content in files.items():
        if name.endswith("/"):
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(content)
    sweep = tmp_path / "sweep.yaml"
    text = text.replace("{tmp}", str(tmp_path))  # (energy_hw is relative to the cwd)
    sweep.write_bytes(text.encode("utf-8", "surrogateescape"))
    out = tmp_path / "out"
    refused(capsys, ["sweep", str(sweep), "--out", str(out), "--quiet"], needles)
    assert not out.exists()  # nothing trained, no report written


def test_sweep_file_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "s.yaml").mkdir()
    refused(
        capsys,
        ["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o")],
        ["s.yaml", "is a directory"],
    )


def test_sweep_set_override_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(BASE)
    refused(
        capsys,
        ["sweep", str(sweep), "--out", str(tmp_path / "o"), "--set", "train.lr=.inf"],
        ["train.lr", "finite"],
    )
