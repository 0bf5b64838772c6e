"""What Ray costs to start, and from what grid size ``hamq sweep --backend ray`` pays off.

    python benchmarks/bench_ray.py [--runs 4] [--float-epochs 2] [--qat-epochs 3]
                                   [--local-threads 2 1]

Needs ``pip install "hamq[ray]"``. Measures, on this machine, wall seconds of:

1. ``ray.init`` of a local Ray with every core (and ``ray.shutdown``);
2. a Tune experiment of 1, 2 and 4 trials that do nothing but report a row (each trial
   still starts a worker process that imports torch and hamq): the per-experiment and
   per-trial overhead of the backend;
3. the same grid of ``--runs`` digits runs (baseline and HamQ lambdas, ``share_float``
   off, so one wave) on the local backend (one run after the other, torch on every core,
   then again on one thread) and on the Ray backend (1 CPU and 1 torch thread per trial,
   as many trials at once as cores). Each run folder's ``run.json`` gives the training
   time of each run.

From these it prints the break-even model: local = N * T_local, Ray = S + ceil(N / P) *
T_ray + N * t_trial, with S the start-up (init + one experiment), P the trials at once.
Times are wall clock on a machine shared with other jobs: run it when the machine is quiet
and read the load average printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from hamq.experiments.demo import DEMO_BASE
from hamq.experiments.ray_sweep import RayBackend
from hamq.experiments.sweep import SweepConfig, SweepRun, run_sweep


def grid(runs: int, float_epochs: int, qat_epochs: int) -> SweepConfig:
    """A baseline and ``runs - 1`` HamQ lambdas on digits, each run training on its own."""
    train = {**DEMO_BASE["train"], "float_epochs": float_epochs, "qat_epochs": qat_epochs}
    train["select_from"] = 0  # the demo's 10 needs more QAT epochs than a benchmark trains
    lambdas = [0.25 * 2**i for i in range(runs - 1)]
    return SweepConfig(
        base={**DEMO_BASE, "train": train}, hamming=lambdas, share_float=False, energy_samples=64
    )


def noop(run: SweepRun) -> dict[str, Any]:
    """A trial that trains nothing: what remains is the backend's own overhead."""
    return {"name": run.name, "status": "ok", "accuracy": 0.0, "cells_on": 0}


def time_noop(trials: int, folder: Path) -> float:
    runs = [SweepRun(f"noop{i}", [], folder / f"noop{i}") for i in range(trials)]
    started = time.perf_counter()
    RayBackend()(runs, noop, lambda s: None)
    return time.perf_counter() - started


def train_times(out: Path) -> list[float]:
    """Training wall seconds of every run folder under ``out`` (from run.json)."""
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/run.json"))]
    return [r["timing"]["wall_s_last_session"] for r in records]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4, help="runs in the grid (N)")
    ap.add_argument("--float-epochs", type=int, default=2)
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument(
        "--local-threads",
        type=int,
        nargs="+",
        default=None,
        help="torch threads of the local backend's timings (default: all cores, then 1)",
    )
    args = ap.parse_args()

    import ray

    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    sweep = grid(args.runs, args.float_epochs, args.qat_epochs)
    quiet = {"progress": False, "log": lambda s: None}
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, load "
          f"{os.getloadavg()[0]:.2f}; torch {torch.__version__}, ray {ray.__version__}, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    print(f"grid: {args.runs} digits runs, {args.float_epochs}+{args.qat_epochs} epochs each")

    local: dict[int, tuple[float, list[float]]] = {}  # threads -> (grid s, training s per run)
    before = torch.get_num_threads()
    for threads in args.local_threads or [cores, 1]:
        torch.set_num_threads(threads)
        started = time.perf_counter()
        run_sweep(sweep, work / f"local{threads}", **quiet)
        local[threads] = (time.perf_counter() - started, train_times(work / f"local{threads}"))
    torch.set_num_threads(before)

    started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - started
    try:
        noop_s = {n: time_noop(n, work / f"noop{n}") for n in (1, 2, 4)}
        started = time.perf_counter()
        run_sweep(sweep, work / "ray", backend=RayBackend(cpus_per_run=1), **quiet)
        ray_s = time.perf_counter() - started
        t_ray = train_times(work / "ray")
    finally:
        started = time.perf_counter()
        ray.shutdown()
        shutdown_s = time.perf_counter() - started
    shutil.rmtree(work)

    exp_s = noop_s[1]  # one experiment with one trial that does nothing
    print(f"ray.init {init_s:.1f} s, ray.shutdown {shutdown_s:.1f} s")
    print(
        "no-op Tune experiment: " + ", ".join(f"{n} trial(s) {s:.1f} s" for n, s in noop_s.items())
    )
    for threads, (total, times) in local.items():
        median = statistics.median(times)
        print(f"local backend: {total:.1f} s for the grid; training per run {median:.2f} s "
              f"median (torch on {threads} thread(s))")  # fmt: skip
    print(f"ray backend:   {ray_s:.1f} s for the grid with Ray up (+ init {init_s:.1f} s = "
          f"{ray_s + init_s:.1f} s); training per run {statistics.median(t_ray):.2f} s median "
          f"(1 thread, {cores} at once)")  # fmt: skip
    # Break-even: N * T_local = S + ceil(N / P) * T_batch, S = init + one experiment.
    step_ray = (ray_s - exp_s) / math.ceil(args.runs / cores)  # a batch of P runs on Ray
    start = init_s + exp_s
    for threads, (total, _) in local.items():
        step_local = total / args.runs  # a run's whole cost on the local backend
        gain = cores * step_local - step_ray  # what a batch of P runs saves on Ray
        verdict = (
            f"pays off from N > {cores * start / gain:.1f} runs of this size"
            if gain > 0
            else "never pays off: P runs side by side take longer than one after the other"
        )
        model = f"ray = {start:.1f} s + ceil(N/{cores}) * {step_ray:.2f} s"
        print(f"model vs local on {threads} thread(s): local = N * {step_local:.2f} s; "
              f"{model}: Ray {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
