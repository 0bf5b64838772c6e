"""End to end on the embedded default: HamQ lowers the exact ON-cell count, accuracy holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamq.config_base import validate
from hamq.experiments.demo import DEMO_BASE
from hamq.training.config import TrainConfig, apply_overrides
from hamq.training.trainer import train_run


def demo_config(*overrides: str) -> TrainConfig:
    return validate(TrainConfig, apply_overrides(DEMO_BASE, list(overrides)))


@pytest.mark.slow
def test_hamq_cuts_on_cells_by_half_within_2_points(tmp_path: Path) -> None:
    """The core issue asked for >= 30% fewer ON cells within 2 pp; with the envelope
    surrogate (default) we measured 65.4% at -0.8 pp (the smoothed table: 41.4%), so the
    bar here is 50%."""
    base = train_run(demo_config("regularizer.name=none"), tmp_path / "base", progress=False)
    ham = train_run(
        demo_config("regularizer.name=hamming", "regularizer.lambda=0.5"),
        tmp_path / "hamq",
        progress=False,
    )
    assert base is not None and ham is not None
    # Same seed, same float pre-training: the runs differ only by the regularizer.
    assert base["history"][19] == ham["history"][19]
    reduction = 1 - ham["cells"]["on"] / base["cells"]["on"]
    assert reduction >= 0.50, f"ON cells {base['cells']['on']} -> {ham['cells']['on']}"
    assert ham["accuracy"] >= base["accuracy"] - 0.02
    assert base["accuracy"] >= 0.95
