"""Helpers of the hostile drill (``tests/test_hostile_*.py``).

Every case goes through the real entry point (``hamq.cli.main.main``, or ``python -m ...``
in a subprocess) and must end with exit code 2 and exactly one line on stderr, starting
with ``error:``, naming the problem: never a traceback, never exit 0 with a wrong result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hamq.cli.main import main
from hamq.errors import MAX_MESSAGE_CHARS

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ["--quiet", "--set", "train.float_epochs=1", "--set", "train.qat_epochs=1"]


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    """``hamq ARGS --json`` in-process, which must succeed: its parsed output."""
    code, out, err = call(capsys, [*args, "--json"])
    assert code == 0, err
    return json.loads(out)


def call(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    """``hamq ARGS`` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def assert_refused(code: int, err: str, needles: list[str]) -> str:
    """Exit 2, one ``error:`` line on stderr containing every needle (case-insensitive)."""
    assert code == 2, f"exit {code}, stderr: {err!r}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"{len(lines)} lines on stderr: {err!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert len(line) <= len("error: ") + MAX_MESSAGE_CHARS, len(line)
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


def refused(capsys: pytest.CaptureFixture[str], args: list[str], needles: list[str]) -> str:
    """Run ``hamq ARGS`` in-process and assert a one-line refusal naming ``needles``."""
    code, _, err = call(capsys, args)
    return assert_refused(code, err, needles)


def run_module(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` in a subprocess that imports this checkout's hamq."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
