"""Timing shared by the step benchmarks: variants interleaved round by round, medians.

One step of each variant per round, in an order that rotates each round, so load on the
machine (another job, frequency changes) hits every variant alike; the table gives each
variant's median and interquartile range and its ratio to a reference variant.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch


def time_interleaved(
    steps: dict[str, Callable[[], None]], warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each step over ``repeats`` rounds, after ``warmup`` rounds."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    names = list(steps)
    for r in range(warmup + repeats):
        for i in range(len(names)):
            name = names[(i + r) % len(names)]
            t0 = time.perf_counter()
            steps[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def print_table(times: dict[str, list[float]], threads: int, batch: int, ref: str) -> None:
    """The Markdown table BENCHMARKS.md records, with the machine line above it."""
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    rounds = len(next(iter(times.values())))
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{threads} thread(s), batch {batch}, {rounds} rounds")  # fmt: skip
    print(f"| variant | median ms | IQR ms | vs {ref} |")
    print("|---|---:|---|---:|")
    for k, v in times.items():
        lo, _, hi = (t * 1e3 for t in statistics.quantiles(v, n=4))
        print(f"| {k} | {med[k]:.1f} | {lo:.1f}-{hi:.1f} | {med[k] / med[ref]:.3f} |")


def step_args(doc: str, threads: int) -> argparse.Namespace:
    """The step benchmarks' options (threads, rounds, warm-up rounds, batch), applied:
    torch's thread count set and the seed fixed."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args
