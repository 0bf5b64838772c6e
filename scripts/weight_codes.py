"""The integer codes a trained run stores most often, with their Hamming weight.

    python scripts/weight_codes.py RUN_DIR [--top 12]

Counts |q| over every quantized layer (the differential pair stores |q| on one side), so
it shows where a regularizer has put the weights (docs/regularizers.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from hamq.errors import HamqError
from hamq.quantization.convert import quantized_layers
from hamq.training.runs import load_run


def code_counts(run_dir: Path) -> torch.Tensor:
    """Histogram of |q| over every quantized layer's integer weights."""
    run = load_run(run_dir)
    codes = torch.cat([layer.weight_int().flatten() for _, layer in quantized_layers(run.model)])
    return torch.bincount(codes.abs().long())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    try:
        counts = code_counts(args.run)
    except HamqError as err:
        raise SystemExit(f"error: {err}") from None
    total = int(counts.sum())
    print(f"{args.run}: {total} weights")
    print("|q|  popcount  weights  share")
    for q in torch.argsort(counts, descending=True)[: args.top].tolist():
        n = int(counts[q])
        if n:
            print(f"{q:>3}  {bin(q).count('1'):>8}  {n:>7}  {100 * n / total:5.1f}%")


if __name__ == "__main__":
    main()
