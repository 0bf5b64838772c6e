"""Validation accuracy around the prune epoch, per setting of a pruned sweep (mean over
seeds): at the start and end of the regularized phase and in the first fine-tune epoch
(masks fixed), from each run's ``run.json`` history; with the test accuracy.

    python scripts/prune_phase_table.py runs/prune-update-digits

Shows whether a setting's weights outside the masks were already harmless when the
masks were fixed (no drop beyond the learning-rate restart's) and what the regularized
phase cost while it ran.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def phase_row(record: dict) -> tuple[float, float, float, float, float] | None:
    """(first regularized, lowest regularized, last regularized, first fine-tune val
    accuracy, test accuracy) of one pruned run; None for a run without a regularized
    phase in its history (a dense one)."""
    qat = [h for h in record["history"] if h.get("stage") == "qat"]
    cfg = record["config"]
    sp = cfg.get("sparsity") or {}
    if not sp.get("sparsity"):
        return None
    qat_epochs = cfg["train"]["qat_epochs"]
    finetune = sp.get("finetune_epochs") or -(-qat_epochs // 2)
    n_reg = qat_epochs - finetune
    if n_reg < 1 or len(qat) < n_reg + 1:
        return None
    vals = [h["val_accuracy"] for h in qat]
    reg = vals[:n_reg]
    return reg[0], min(reg), reg[-1], vals[n_reg], record["accuracy"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="the sweep's output folder")
    args = parser.parse_args(argv)
    groups: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for path in sorted(args.sweep.glob("*/run.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"error: cannot read '{path}': {err}", file=sys.stderr)
            return 2
        row = phase_row(record)
        if row is not None:
            groups[re.sub(r"-s\d+$", "", path.parent.name)].append(row)
    if not groups:
        print(
            f"error: no pruned run with a regularized phase under '{args.sweep}'", file=sys.stderr
        )
        return 2
    print("| setting | seeds | val, first reg. epoch | val, lowest reg. | val, last reg. "
          "| val, first fine-tune | test accuracy |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, rows in groups.items():
        cols = []
        for i in range(5):
            xs = [100 * r[i] for r in rows]
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            cols.append(f"{statistics.fmean(xs):.1f} ± {sd:.1f}%")
        print(f"| {name} | {len(rows)} | " + " | ".join(cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
