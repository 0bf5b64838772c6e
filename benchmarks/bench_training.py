"""Training-step time: float vs QAT, and what each regularizer adds to a QAT step.

    python benchmarks/bench_training.py [--threads 1] [--repeats 30] [--warmup 5]

On a small machine shared with other jobs, ``--threads 1`` gives reproducible medians
(intra-op threads contending for busy cores make single steps vary 10x).

DS-CNN (keyword spotting, 49x10 MFCC input, 12 classes), random inputs, Adam, CPU. Every
variant trains its own copy of the same initial model on the same batches. Steps are
interleaved (one step of each variant per round, in rotating order), so a change in machine
load hits every variant alike; each figure is the median over rounds. A step is what
``train_epoch`` does: forward, cross entropy, regularizer, zero_grad, backward, optimizer step.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hamq.hardware.spec import load_hardware
from hamq.models import ModelConfig, build_model
from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import quantize_model
from hamq.regularizers import REGULARIZERS, RegularizerConfig, build_regularizer

INPUT_SHAPE = (1, 49, 10)
CLASSES = 12


def make_variants(
    base: nn.Module, quant: QuantConfig, hw_name: str
) -> dict[str, tuple[nn.Module, nn.Module | None]]:
    """name -> (model, regularizer or None), all from the same initial weights."""
    hw = load_hardware(hw_name)
    variants: dict[str, tuple[nn.Module, nn.Module | None]] = {"float": (copy.deepcopy(base), None)}
    regs = ["none", "hamming", "l1"] + (["energy"] if "energy" in REGULARIZERS else [])
    for name in regs:
        model = copy.deepcopy(base)
        quantize_model(model, quant)
        reg = build_regularizer(RegularizerConfig(name=name, **{"lambda": 1e-3}), hw)
        if reg is not None:
            reg.attach(model)
        variants["qat" if name == "none" else f"qat+{name}"] = (model, reg)
    return variants


def make_step(
    model: nn.Module, reg: nn.Module | None
) -> Callable[[torch.Tensor, torch.Tensor], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        ce = F.cross_entropy(model(x), y)
        loss = ce + reg(model) if reg is not None else ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed rounds (median)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per variant")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--w-bits", type=int, default=6, help="weight bits (DS-CNN in HamQ: 6)")
    ap.add_argument("--hardware", default="rram-1b", help="hardware preset")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    base = build_model(ModelConfig(name="ds-cnn"), INPUT_SHAPE, CLASSES)
    quant = QuantConfig(w_bits=args.w_bits, a_bits=8)
    variants = make_variants(base, quant, args.hardware)
    steps = {name: make_step(m, r) for name, (m, r) in variants.items()}

    g = torch.Generator().manual_seed(1)
    batches = [
        (
            torch.randn(args.batch, *INPUT_SHAPE, generator=g),
            torch.randint(0, CLASSES, (args.batch,), generator=g),
        )
        for _ in range(8)
    ]
    for step in steps.values():
        for i in range(args.warmup):
            step(*batches[i % len(batches)])

    times: dict[str, list[float]] = {n: [] for n in steps}
    names = list(steps)
    for r in range(args.repeats):
        x, y = batches[r % len(batches)]
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate
        for name in order:
            t0 = time.perf_counter()
            steps[name](x, y)
            times[name].append(time.perf_counter() - t0)

    # The regularizer alone (penalty forward + backward on the trained model), interleaved
    # the same way: a less noisy reading of what it adds than a difference of two steps.
    alone: dict[str, list[float]] = {n: [] for n, (_, r) in variants.items() if r is not None}
    for _ in range(args.repeats):
        for name in alone:
            model, reg = variants[name]
            t0 = time.perf_counter()
            reg(model).backward()  # type: ignore[misc]
            alone[name].append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)

    med = {n: statistics.median(t) for n, t in times.items()}
    q = {n: statistics.quantiles(t, n=4) for n, t in times.items()}
    print(
        f"DS-CNN {INPUT_SHAPE} batch {args.batch}, w{args.w_bits}a8, Adam, CPU "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.repeats} interleaved rounds after "
        f"{args.warmup} warm-up steps"
    )
    print(f"{'variant':<14}{'median ms':>10}{'IQR ms':>16}{'vs float':>10}{'vs qat':>9}")
    for n in names:
        lo, _, hi = q[n]
        print(
            f"{n:<14}{med[n] * 1e3:>10.1f}{f'{lo * 1e3:.1f}-{hi * 1e3:.1f}':>16}"
            f"{med[n] / med['float']:>10.2f}{med[n] / med['qat']:>9.3f}"
        )
    for n, t in alone.items():
        m = statistics.median(t)
        print(
            f"{n:<14} penalty fwd+bwd alone {m * 1e3:6.2f} ms "
            f"= {m / med['qat'] * 100:5.1f}% of a QAT step"
        )
    added = med["qat+hamming"] / med["qat"] - 1
    verdict = "OK" if added <= 0.10 else "OVER"
    print(f"hamming adds {added * 100:+.1f}% to a QAT step (target <= +10%: {verdict})")


if __name__ == "__main__":
    main()
