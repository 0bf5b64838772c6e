"""The CLI through its real entry point: train, eval, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hamq.cli.main import main

TINY = ["--set", "train.float_epochs=2", "--set", "train.qat_epochs=2", "--quiet"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hamq`` (the same ``main`` as the ``hamq`` script) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "hamq", *args], capture_output=True, text=True, timeout=600
    )


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``main`` in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("timing", "machine")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One tiny training through the real entry point, shared by the tests below."""
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli("train", "--out", str(out), "--json", *TINY)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_train_writes_run_and_json_record(trained: tuple[Path, dict]) -> None:
    out, record = trained
    assert (out / "run.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "config.yaml").is_file() and (out / "checkpoint.safetensors").is_file()
    assert record == json.loads((out / "run.json").read_text())
    assert 0.0 <= record["accuracy"] <= 1.0
    assert record["config"]["train"]["float_epochs"] == 2
    assert record["seed"] == 0
    layers = record["layers"]
    assert [x["name"] for x in layers] == ["features.0", "features.3", "classifier"]
    assert record["cells"]["on"] == sum(x["cells_on"] for x in layers)
    assert record["cells"]["total"] == sum(x["cells_total"] for x in layers)
    # differential pair, 8 bits, 1-bit cells: 2 x 7 cells per weight
    assert layers[0]["cells_total"] == 16 * 1 * 3 * 3 * 14


def test_eval_matches_training_record(
    trained: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    out, record = trained
    code, stdout, _ = call(capsys, "eval", str(out), "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["accuracy"] == pytest.approx(record["accuracy"])
    assert result["cells"]["on"] == record["cells"]["on"]


def test_resume_after_interruption_gives_same_record(
    trained: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, part = trained[0], tmp_path / "part"
    # Stop after 1 epoch (float stage) and after 3 (inside QAT), then finish.
    code, _, err = call(capsys, "train", "--out", str(part), "--stop-after", "1", *TINY)
    assert code == 0 and "--resume" in err
    assert not (part / "run.json").exists()
    code, _, _ = call(capsys, "train", "--out", str(part), "--resume", "--stop-after", "2", *TINY)
    assert code == 0 and not (part / "run.json").exists()
    assert call(capsys, "train", "--out", str(part), "--resume", *TINY)[0] == 0
    a = json.loads((full / "run.json").read_text())
    b = json.loads((part / "run.json").read_text())
    assert without_timing(a) == without_timing(b)


def test_resume_alone_continues_with_the_stored_config(
    trained: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run started with --set values continues with ``--resume --out`` alone (the command
    its stop message prints), and ends with the uninterrupted run's record."""
    full, part = trained[0], tmp_path / "part"
    code, _, err = call(capsys, "train", "--out", str(part), "--stop-after", "2", *TINY)
    assert code == 0 and f"hamq train --resume --out {part}" in err
    assert call(capsys, "train", "--out", str(part), "--resume")[0] == 0
    a = json.loads((full / "run.json").read_text())
    b = json.loads((part / "run.json").read_text())
    assert without_timing(a) == without_timing(b)


def test_training_twice_into_one_folder_needs_resume(
    trained: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    out = trained[0]
    before = (out / "run.json").read_bytes()
    code, _, err = call(capsys, "train", "--out", str(out), *TINY)
    assert code == 2 and "--resume" in err
    assert (out / "run.json").read_bytes() == before


def test_help_lists_commands() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for cmd in ("train", "eval", "demo"):
        assert cmd in proc.stdout
