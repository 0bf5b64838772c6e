"""Hostile drill: the command line itself (options, paths, output folders), and Ctrl-C.

Usage errors are one line too (click normally prints a usage block first); Ctrl-C during
``hamq train`` or ``hamq sweep`` prints the exact command that continues, and exits 130.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hamq.cli.main import resume_command
from hamq.training.checkpoint import load_checkpoint
from hostile import SRC, TINY, assert_refused, call, refused, run_module

# (id, argv after `hamq`, words the error must contain); {tmp} is the test's folder, {run} a
# finished run
CASES = [
    ("unknown command", ["trian"], ["No such command 'trian'", "did you mean 'train'"]),
    ("unknown option", ["train", "--out", "{tmp}/r", "--bogus"], ["--bogus", "hamq train --help"]),
    ("missing --out", ["train"], ["Missing option '--out'"]),
    ("--stop-after 0", ["train", "--out", "{tmp}/r", "--stop-after", "0"], ["--stop-after", "0"]),
    ("--stop-after text", ["train", "--out", "{tmp}/r", "--stop-after", "x"], ["--stop-after"]),
    ("--out is a file", ["train", "--out", "{tmp}/afile"], ["--out", "is a file"]),
    (
        "--out under a file",
        ["train", "--out", "{tmp}/afile/sub", *TINY],
        ["afile/sub", "Not a directory"],
    ),
    (
        "--config is a folder",
        ["train", "--config", "{tmp}", "--out", "{tmp}/r"],
        ["--config", "directory"],
    ),
    ("eval without a folder", ["eval"], ["Missing argument"]),
    ("eval --samples 0", ["eval", "{tmp}", "--samples", "0"], ["--samples", "0"]),
    ("eval --samples negative", ["eval", "{tmp}", "--samples", "-5"], ["--samples"]),
    ("eval of a missing folder", ["eval", "{tmp}/none"], ["none", "does not exist"]),
    ("eval of a file", ["eval", "{tmp}/afile"], ["afile", "is a file, not a run folder"]),
    ("eval of an empty folder", ["eval", "{tmp}"], ["config.yaml", "not a hamq run folder"]),
    ("energy of a folder that is no run", ["energy", "{tmp}"], ["not a hamq run folder"]),
    (
        "energy --activity 2",
        ["energy", "{tmp}", "--hw", "rram-1b", "--static", "--activity", "2"],
        ["--activity", "2.0"],
    ),
    (
        "energy --activity nan",
        ["energy", "{run}", "--hw", "rram-1b", "--static", "--activity", "nan"],
        ["activity", "nan"],
    ),
    (
        "energy --samples with --static",
        ["energy", "{tmp}", "--hw", "rram-1b", "--static", "--samples", "5"],
        ["--samples", "--static"],
    ),
    (
        "energy --batch-size 0",
        ["energy", "{tmp}", "--hw", "rram-1b", "--batch-size", "0"],
        ["--batch-size"],
    ),
    (
        "sweep file missing",
        ["sweep", "{tmp}/none.yaml", "--out", "{tmp}/o"],
        ["none.yaml", "does not exist"],
    ),
    ("report of a missing folder", ["report", "{tmp}/none"], ["results.csv"]),
    ("a path that is not UTF-8", ["eval", "{tmp}/\udcff"], ["does not exist"]),
    (
        "--set value not UTF-8",
        ["train", "--out", "{tmp}/r", "--set", "model.name=\udcff"],
        ["model.name", "not UTF-8"],
    ),
]


@pytest.mark.parametrize(("case", "argv", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_command_lines_are_refused(
    case: str,
    argv: list[str],
    needles: list[str],
    tmp_path: Path,
    tiny_run: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    (tmp_path / "afile").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(tiny_run)) for a in argv]
    refused(capsys, args, needles)


def test_real_entry_point_prints_one_line(tmp_path: Path) -> None:
    """``python -m hamq`` (the ``hamq`` script's ``main``) in a subprocess."""
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"seed: \xff\n")
    proc = run_module("hamq", "train", "--config", str(cfg), "--out", str(tmp_path / "r"))
    assert_refused(proc.returncode, proc.stderr, ["c.yaml", "not UTF-8"])
    assert proc.stdout == ""


def test_resume_command_is_the_command_with_resume() -> None:
    assert resume_command(["train", "--out", "r x", "--stop-after", "2", "--set", "a=b c"]) == (
        "hamq train --resume --out 'r x' --set 'a=b c'"
    )
    assert resume_command(["train", "--resume", "--out", "r", "--stop-after=3"]) == (
        "hamq train --resume --out r"
    )
    assert resume_command(["sweep", "s.yaml", "--out", "o"]) == "hamq sweep s.yaml --out o"
    assert resume_command(["eval", "r"]) is None


def _interrupt_when(proc: subprocess.Popen[str], ready: Path, limit_s: float = 300) -> str:
    """Send SIGINT once ``ready`` exists; return stderr. Kills the process on any timeout."""
    try:
        deadline = time.monotonic() + limit_s
        while not ready.exists():
            assert proc.poll() is None, f"exited early with {proc.returncode}"
            assert time.monotonic() < deadline, f"{ready} never appeared"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        return err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _popen(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "hamq", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_ctrl_c_during_train_prints_the_command_that_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    sets = ["--set", "train.float_epochs=0", "--set", "train.qat_epochs=100000"]
    proc = _popen("train", "--out", str(out), "--quiet", *sets)
    err = _interrupt_when(proc, out / "checkpoint.safetensors")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    command = f"hamq train --resume --out {out} --quiet {' '.join(sets)}"
    assert lines[0] == f"interrupted; continue with: {command}"
    # the printed command continues the run (one more epoch here)
    _, before = load_checkpoint(out / "checkpoint.safetensors")
    code, _, err = call(capsys, [*shlex.split(command)[1:], "--stop-after", "1"])
    assert code == 0, err
    _, after = load_checkpoint(out / "checkpoint.safetensors")
    assert after["epoch"] == before["epoch"] + 1


def test_ctrl_c_during_sweep_prints_the_command_that_continues(tmp_path: Path) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text("base: {train: {float_epochs: 0, qat_epochs: 100000}}\n")
    out = tmp_path / "out"
    proc = _popen("sweep", str(sweep), "--out", str(out), "--quiet")
    err = _interrupt_when(proc, out / "w8-baseline" / "checkpoint.safetensors")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"interrupted; continue with: hamq sweep {sweep} --out {out} --quiet"], err
    assert not (out / "w8-baseline" / "run.json").exists()
