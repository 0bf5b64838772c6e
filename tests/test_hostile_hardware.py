"""Hostile drill: hardware description files, through ``hamq energy --hw FILE`` and through a
run config's ``hardware.preset``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from hostile import TINY, refused

GOOD = (resources.files("hamq.hardware") / "presets" / "rram-1b.yaml").read_text()


def edit(old: str, new: str) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new).encode()


LAUGHS = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
)

# (id, file bytes, words the error must contain)
CASES = [
    ("NaN cell energy", edit("[0.00067, 0.067]", "[.nan, 0.067]"), ["e_cell_pj.0", "finite"]),
    ("inf cell energy", edit("[0.00067, 0.067]", "[0.00067, .inf]"), ["e_cell_pj.1", "finite"]),
    ("negative cell energy", edit("[0.00067, 0.067]", "[-1, 0.067]"), ["e_cell_pj[0]", "negative"]),
    ("absurd cell energy", edit("[0.00067, 0.067]", "[0, 1e300]"), ["e_cell_pj[1]", "picojoules"]),
    ("all cell energies zero", edit("[0.00067, 0.067]", "[0, 0]"), ["e_cell_pj", "all zero"]),
    ("inf ADC energy", edit("e_adc_pj: 1.0", "e_adc_pj: .inf"), ["tech.e_adc_pj", "finite"]),
    ("NaN ADC energy", edit("e_adc_pj: 1.0", "e_adc_pj: .nan"), ["tech.e_adc_pj", "finite"]),
    ("negative ADC energy", edit("e_adc_pj: 1.0", "e_adc_pj: -1.0"), ["tech.e_adc_pj", "-1.0"]),
    ("inf driver energy", edit("e_driver_pj: 0.0", "e_driver_pj: .inf"), ["e_driver_pj", "finite"]),
    ("inf cycle time", edit("t_cycle_ns: 10.0", "t_cycle_ns: .inf"), ["t_cycle_ns", "finite"]),
    (
        "denormal cycle time",
        edit("t_cycle_ns: 10.0", "t_cycle_ns: 1e-320"),
        ["t_cycle_ns", "0.001"],
    ),
    ("zero cycle time", edit("t_cycle_ns: 10.0", "t_cycle_ns: 0"), ["t_cycle_ns", "0.001"]),
    ("10^12 rows", edit("rows: 128", "rows: 1000000000000"), ["array.rows", "65536"]),
    ("10^12 columns", edit("cols: 128", "cols: 1000000000000"), ["array.cols", "65536"]),
    ("rows beyond 2^64", edit("rows: 128", "rows: 36893488147419103232"), ["array.rows"]),
    ("rows a boolean", edit("rows: 128", "rows: true"), ["array.rows", "boolean"]),
    ("rows fractional", edit("rows: 128", "rows: 12.5"), ["array.rows", "integer"]),
    ("ADC bits 10^9", edit("bits: 5", "bits: 1000000000"), ["adc.bits", "16"]),
    ("col_mux beyond cols", edit("col_mux: 8", "col_mux: 100000"), ["adc.col_mux", "array.cols"]),
    ("energies a string", edit("[0.00067, 0.067]", "cheap"), ["e_cell_pj", "tuple"]),
    ("unknown key", (GOOD + "extra: 1\n").encode(), ["unknown key 'extra'"]),
    ("misspelled section", GOOD.replace("timing:", "timeing:").encode(), ["timeing", "timing"]),
    ("not UTF-8", GOOD.encode().replace(b"Generic", b"Gen\xe9ric", 1), ["not UTF-8", "0xe9"]),
    ("empty file", b"", ["empty"]),
    ("a list", b"- rows\n- cols\n", ["mapping", "list"]),
    ("billion laughs", (LAUGHS + "source: *c\n").encode(), ["alias"]),
    ("python tag", b"name: !!python/object/apply:os.system [ls]\n", ["not valid YAML"]),
    ("over 1 MiB", (GOOD + "#" + "x" * 1_100_000 + "\n").encode(), ["bytes", "1048576"]),
    ("duplicate section", (GOOD + "adc: {bits: 8}\n").encode(), ["adc", "twice"]),
]


@pytest.mark.parametrize(("case", "text", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_hardware_files_are_refused_by_energy(
    case: str,
    text: bytes,
    needles: list[str],
    tiny_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    hw = tmp_path / "hw.yaml"
    hw.write_bytes(text)
    refused(capsys, ["energy", str(tiny_run), "--hw", str(hw), "--static"], ["hw.yaml", *needles])


def test_hardware_path_problems(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["energy", str(tiny_run), "--static", "--hw"]
    folder = tmp_path / "hw.yaml"
    folder.mkdir()
    refused(capsys, [*base, str(folder)], ["hw.yaml", "is a folder"])
    refused(capsys, [*base, str(tmp_path / "none.yaml")], ["none.yaml", "does not exist"])
    (tmp_path / "l1.yaml").symlink_to(tmp_path / "l2.yaml")
    (tmp_path / "l2.yaml").symlink_to(tmp_path / "l1.yaml")
    refused(capsys, [*base, str(tmp_path / "l1.yaml")], ["l1.yaml", "symbolic links"])
    refused(capsys, [*base, "rram-3b"], ["unknown hardware preset", "rram-3b", "rram-1b"])


@pytest.mark.parametrize(
    ("case", "old", "new", "needles"),
    [
        ("NaN cell energy", "[0.00067, 0.067]", "[.nan, 0.067]", ["e_cell_pj.0", "finite"]),
        ("10^12 rows", "rows: 128", "rows: 1000000000000", ["array.rows", "65536"]),
    ],
    ids=["NaN cell energy", "10^12 rows"],
)
def test_bad_hardware_file_in_a_run_config(
    case: str, old: str, new: str, needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The energy regularizer trains against the run's hardware: refused before training."""
    hw = tmp_path / "hw.yaml"
    hw.write_bytes(edit(old, new))
    args = ["train", "--out", str(tmp_path / "run"), *TINY, "--set", f"hardware.preset={hw}"]
    args += ["--set", "regularizer.name=energy", "--set", "regularizer.lambda=0.1"]
    refused(capsys, args, needles)
    assert not (tmp_path / "run").exists()
