"""Speed of the energy model. Run: ``python benchmarks/bench_energy.py`` (see BENCHMARKS.md).

(a) data-mode energy estimation over a data set vs plain quantized inference of the same
    data (DS-CNN w8a8, 1024 random 49x10 inputs, batch 128): ratio, target <= 1.2x;
(b) the full per-layer report of ResNet-18 (CIFAR) on one 32x32 image (export, mapping,
    forward, report): seconds, target < 0.1 s;
(c) the energy regularizer's added time to a QAT training step (DS-CNN, batch 128).

Method (why each step: BENCHMARKS.md, "Energy model"):
- glibc malloc is told to keep freed memory (``mallopt``, before anything is allocated):
  with its defaults every batch's activations are fresh pages from the kernel, and the
  page faults (up to 0.7 s of kernel time per 1024 DS-CNN inputs) depend on the process's
  allocation history, not on the code timed. ``--default-malloc`` measures without it;
- one intra-op thread, so the process CPU time is the work of one core;
- every variant runs twice before timing; then ``--repeats`` rounds each run every variant
  once, in rotating order, with the garbage collector off, so slow spells of a shared
  machine hit all variants alike;
- per variant: min, median and max of the process CPU time (wall time beside it), and the
  kernel time and minor page faults, which show whether the allocator was quiet. Ratios
  are taken between minimums (the least disturbed runs), between medians, and as the
  median of each round's own ratio (the two runs of a round are adjacent in time).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime
import gc
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Ask glibc malloc to reuse freed memory instead of returning it to the kernel: large
    blocks from the heap (not one mmap each), no trimming of the heap top. Must run
    before the large allocations; returns False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 25)  # 32 MiB, glibc's maximum
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        ok &= libc.mallopt(_M_TOP_PAD, 1 << 28)
    except (OSError, AttributeError):
        return False
    return bool(ok)


@dataclass
class Timing:
    """Measurements of one variant over the timed rounds."""

    first_cpu_s: float = 0.0
    cpu_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    sys_s: list[float] = field(default_factory=list)
    faults: list[int] = field(default_factory=list)

    def line(self, name: str, rounds: bool = False) -> str:
        c = self.cpu_s
        out = (
            f"  {name:<31} CPU s min {min(c):.4f} med {statistics.median(c):.4f} "
            f"max {max(c):.4f} (max/min {max(c) / min(c):.2f}); first call {self.first_cpu_s:.4f}"
            f"; wall min {min(self.wall_s):.4f}; kernel s med {statistics.median(self.sys_s):.4f}"
            f"; minor faults med {statistics.median(self.faults):.0f}"
        )
        if rounds:
            out += "\n    rounds (CPU s / kernel s / minor faults): " + ", ".join(
                f"{c:.3f}/{s:.3f}/{f}"
                for c, s, f in zip(self.cpu_s, self.sys_s, self.faults, strict=True)
            )
        return out


def timed(fn: Callable[[], object], into: Timing) -> None:
    gc.collect()
    gc.disable()
    try:
        r0, w0, c0 = (
            resource.getrusage(resource.RUSAGE_SELF),
            time.perf_counter(),
            time.process_time(),
        )
        fn()
        c1, w1, r1 = (
            time.process_time(),
            time.perf_counter(),
            resource.getrusage(resource.RUSAGE_SELF),
        )
    finally:
        gc.enable()
    into.cpu_s.append(c1 - c0)
    into.wall_s.append(w1 - w0)
    into.sys_s.append(r1.ru_stime - r0.ru_stime)
    into.faults.append(r1.ru_minflt - r0.ru_minflt)


def interleaved(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timing]:
    """Two warm-up runs of each variant (the first one's CPU time kept), then ``repeats``
    rounds in rotating order."""
    names = list(variants)
    out = {n: Timing() for n in names}
    for name, fn in variants.items():
        c0 = time.process_time()
        fn()
        out[name].first_cpu_s = time.process_time() - c0
        fn()
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            timed(variants[name], out[name])
    return out


def _quartiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.3f}-{q[2]:.3f}"


def converted(name: str, shape: tuple[int, ...], classes: int, calib: object) -> object:
    import torch

    from hamq.models import ModelConfig, build_model
    from hamq.quantization import QuantConfig, quantize_model

    torch.manual_seed(0)
    m = build_model(ModelConfig(name=name), shape, classes)
    quantize_model(m, QuantConfig(w_bits=8, a_bits=8))
    m.train()
    with torch.no_grad():
        m(calib)
    return m.eval()


def bench_estimate_vs_inference(repeats: int) -> dict[str, Timing]:
    import torch

    from hamq.hardware import estimate
    from hamq.hardware.estimate import estimate_energy
    from hamq.hardware.spec import load_hardware

    gen = torch.Generator().manual_seed(0)
    data = torch.randn(1024, 1, 49, 10, generator=gen)
    m = converted("ds-cnn", (1, 49, 10), 12, data[:128])
    hw1, hw2 = load_hardware("rram-1b"), load_hardware("rram-2b-40nm")

    def infer() -> None:
        with torch.no_grad():
            for i in range(0, data.shape[0], 128):
                m(data[i : i + 128])

    def no_counting() -> None:
        # The estimator's forward with every probe's add() a no-op: what the shared
        # quantization costs without the counting (a diagnostic, not a product path).
        add = estimate.LayerProbe.add
        estimate.LayerProbe.add = lambda self, codes, magnitudes=None: None  # type: ignore[method-assign]
        try:
            estimate_energy(m, data, hw1, batch_size=128)
        finally:
            estimate.LayerProbe.add = add  # type: ignore[method-assign]

    return interleaved(
        {
            "plain quantized inference": infer,
            "estimate_energy rram-1b": lambda: estimate_energy(m, data, hw1, batch_size=128),
            "estimate_energy rram-2b-40nm": lambda: estimate_energy(m, data, hw2, batch_size=128),
            "estimator forward, no counting": no_counting,
        },
        repeats,
    )


def bench_resnet_report(repeats: int) -> dict[str, Timing]:
    import torch

    from hamq.hardware.estimate import estimate_energy
    from hamq.hardware.spec import load_hardware

    x = torch.rand(1, 3, 32, 32)
    m = converted("resnet18", (3, 32, 32), 10, torch.rand(8, 3, 32, 32))
    hw1, hw2 = load_hardware("rram-1b"), load_hardware("rram-2b-40nm")

    def forward() -> None:
        with torch.no_grad():
            m(x)

    return interleaved(
        {
            "report rram-1b": lambda: estimate_energy(m, x, hw1).to_dict(),
            "report rram-2b-40nm": lambda: estimate_energy(m, x, hw2).to_dict(),
            "plain forward (reference)": forward,
        },
        repeats,
    )


def bench_regularizer_step(repeats: int) -> dict[str, Timing]:
    import torch
    import torch.nn.functional as F

    from hamq.hardware.spec import load_hardware
    from hamq.regularizers import RegularizerConfig, build_regularizer

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 49, 10, generator=gen)
    y = torch.randint(0, 12, (128,), generator=gen)
    hw = load_hardware("rram-2b-40nm")

    def step_fn(with_reg: bool) -> Callable[[], None]:
        m = converted("ds-cnn", (1, 49, 10), 12, x)
        m.train()
        reg = None
        if with_reg:
            reg = build_regularizer(RegularizerConfig(name="energy", **{"lambda": 1e-4}), hw)
            reg.attach(m)
        opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(x), y)
            if reg is not None:
                loss = loss + reg(m)
            loss.backward()
            opt.step()

        return step

    return interleaved({"QAT step": step_fn(False), "QAT step + energy": step_fn(True)}, repeats)


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in lscpu.splitlines()
                if ln.startswith("Model name")
            ),
            "?",
        )
    except OSError:
        model = platform.processor() or "?"
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{model}, {os.cpu_count()} CPUs, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per benchmark")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--default-malloc", action="store_true", help="leave glibc malloc at its defaults"
    )
    parser.add_argument("--only", choices=["a", "b", "c"], help="run one benchmark only")
    parser.add_argument("--rounds", action="store_true", help="print every timed round")
    args = parser.parse_args()
    malloc = "glibc defaults" if args.default_malloc else "freed memory kept (mallopt)"
    if not args.default_malloc and not keep_freed_memory():
        malloc = "glibc defaults (mallopt unavailable)"

    import torch

    torch.set_num_threads(args.threads)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}; {machine()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), malloc: {malloc}")
    print(f"{args.repeats} interleaved rounds after 2 warm-ups; times are process CPU s")
    if args.only in (None, "a"):
        t = bench_estimate_vs_inference(args.repeats)
        print("(a) DS-CNN w8a8, 1024 random 49x10 inputs, batch 128")
        for name, timing in t.items():
            print(timing.line(name, args.rounds))
        inf = t["plain quantized inference"]
        for name in ("estimate_energy rram-1b", "estimate_energy rram-2b-40nm"):
            est = t[name]
            paired = [e / i for e, i in zip(est.cpu_s, inf.cpu_s, strict=True)]
            print(
                f"  ratio {name} / inference: {min(est.cpu_s) / min(inf.cpu_s):.3f} (mins), "
                f"{statistics.median(est.cpu_s) / statistics.median(inf.cpu_s):.3f} (medians), "
                f"{statistics.median(paired):.3f} (median of the rounds' ratios, quartiles "
                f"{_quartiles(paired)})"
            )
    if args.only in (None, "b"):
        t = bench_resnet_report(args.repeats)
        print("(b) ResNet-18 (CIFAR) w8a8, full per-layer report of one 32x32 image")
        for name, timing in t.items():
            print(timing.line(name, args.rounds))
    if args.only in (None, "c"):
        t = bench_regularizer_step(args.repeats)
        print("(c) DS-CNN QAT step, batch 128, energy regularizer on rram-2b-40nm")
        for name, timing in t.items():
            print(timing.line(name, args.rounds))
        plain, reg = min(t["QAT step"].cpu_s), min(t["QAT step + energy"].cpu_s)
        print(f"  added by the energy regularizer: {100 * (reg / plain - 1):+.1f}% (mins)")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
