"""The float stage of runs as a Markdown table: test accuracy, epochs, wall time.

    python scripts/float_stage.py runs/twofold-cifar-r20/w8-baseline \
        runs/twofold-cifar-r20-e30/w8-baseline

Reads each run's ``float.safetensors`` (written at the end of its float stage, before QAT,
so a run still in QAT can be read), where hamq records the float model's test accuracy and
the stage's wall time, and the checkpoint's per-epoch times and validation accuracies.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from hamq.errors import HamqError
from hamq.training import checkpoint as ckpt
from hamq.training.trainer import CHECKPOINT, FLOAT


def row(run: Path) -> str:
    _, meta = ckpt.load_checkpoint(run / FLOAT)
    stage = meta.get("float_stage")
    if not isinstance(stage, dict):
        raise HamqError(f"'{run / FLOAT}' records no float stage (saved by hamq <= 0.4.0?)")
    epochs = int(stage["epochs"])
    _, state = ckpt.load_checkpoint(run / CHECKPOINT)
    walls = state.get("epoch_wall_s") or []
    walls = walls[:epochs]
    history = [h for h in state["history"] if h["stage"] == "float"]
    last_val = history[-1]["val_accuracy"] if history else None
    cfg = meta["config"]
    wall = meta.get("float_wall_s")
    acc = f"{100 * stage['test_accuracy']:.2f}% ({stage['test_correct']} / {stage['test_samples']})"
    if wall is None or not walls or last_val is None:
        return f"| {run} | {epochs} | | | {acc} | | | |"
    spread = f"{statistics.median(walls):.0f} s ({min(walls):.0f}-{max(walls):.0f})"
    return (
        f"| {run} | {epochs} | {cfg['data']['batch_size']} | {cfg['train']['lr']:g} | {acc} "
        f"| {100 * last_val:.2f}% | {wall / 60:.1f} min | {spread} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders")
    args = ap.parse_args()
    print(
        "| run | float epochs | batch | peak lr | float test accuracy | last validation "
        "| float stage wall | epoch median (range) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    try:
        for run in args.runs:
            print(row(run))
    except HamqError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
