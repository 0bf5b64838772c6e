"""Shared pytest fixtures."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run torch on one thread for the test, then restore the previous count.

    Small tensor ops on a shared, loaded machine are 1000x slower with intra-op threads
    contending for cores (e.g. a tiny float64 conv2d: 16 ms on 2 threads, 7 us on 1).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished digits run (1 float + 1 QAT epoch), trained once per session.

    Shared: copy it (``run_copy``) before damaging it.
    """
    from hamq.cli.main import main

    out = tmp_path_factory.mktemp("tiny") / "run"
    args = ["train", "--out", str(out), "--quiet"]
    args += ["--set", "train.float_epochs=1", "--set", "train.qat_epochs=1"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    return out


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of ``tiny_run``, free to damage."""
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest)
    return dest
