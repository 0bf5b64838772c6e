"""``hamq presets`` and ``hamq energy`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hamq.cli.main import main
from hamq.hardware.spec import preset_names


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_presets_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["presets"], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    assert "rram-2b-40nm   2 bit/cell  differential" in out
    assert "JSSC" in out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r"
    args = ["train", "--out", str(out), "--set", "train.float_epochs=0", "--set",
            "train.qat_epochs=1", "--quiet"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    return out


def test_energy_data_static_json(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["energy", str(run_dir), "--hw", "rram-1b", "--samples", "20"], capsys)
    assert code == 0
    assert "E_cb&AD" in out and "measured on 20 sample(s)" in out
    code, out, _ = run_cli(["energy", str(run_dir), "--hw", "rram-1b", "--json"], capsys)
    report = json.loads(out)
    assert report["mode"] == "data" and report["samples"] > 20
    code, out, _ = run_cli(
        ["energy", str(run_dir), "--hw", "rram-1b", "--static", "--activity", "0.25", "--json"],
        capsys,
    )
    report = json.loads(out)
    assert report["mode"] == "static" and report["activity"] == 0.25
    assert report["totals"]["e_cb_j"] > 0


def test_energy_user_yaml(run_dir: Path, tmp_path: Path, capsys) -> None:
    hw = tmp_path / "mine.yaml"
    hw.write_text(
        "name: mine\narray: {rows: 64, cols: 64, cell_bits: 2, representation: shifted}\n"
        "tech: {e_cell_pj: [0, 1, 2, 3], e_adc_pj: 1.0, e_adc_ref_bits: 6}\n"
    )
    code, out, _ = run_cli(["energy", str(run_dir), "--hw", str(hw), "--static", "--json"], capsys)
    assert code == 0 and json.loads(out)["hardware"] == "mine"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hw", "rram-3b"], "unknown hardware preset 'rram-3b'"),
        (["--hw", "rram-1b", "--static", "--samples", "3"], "--samples"),
        (["--hw", "rram-1b", "--activity", "0.3"], "add --static"),
        (["--hw", "missing.yaml"], "does not exist"),
    ],
)
def test_energy_errors(run_dir: Path, extra: list[str], message: str, capsys) -> None:
    code, _, err = run_cli(["energy", str(run_dir), *extra], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_energy_missing_run(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["energy", str(tmp_path / "nope"), "--hw", "rram-1b"], capsys)
    assert code == 2 and "does not exist" in err
