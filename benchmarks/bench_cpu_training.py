"""What speeds up float training of ResNet-20 on this CPU (issue 11, part 5): memory format,
bfloat16 autocast and ``torch.compile``, as ratios taken in one run.

    python benchmarks/bench_cpu_training.py [--threads 2] [--batch 256] [--steps 10]

Each variant trains its own copy of the same ResNet-20 on the same synthetic CIFAR-shaped
batches (float32, SGD with Nesterov momentum, label smoothing 0.2, as an airbench-style
recipe would): a step is forward, cross entropy, backward and the optimizer step. Steps are
interleaved (one step of each variant per round, rotating order), so machine load hits
every variant alike; the figure is the median wall time per step after warm-up (the
compiled variant's compilation is in its warm-up and reported apart).

Variants: ``eager`` (contiguous NCHW), ``channels_last`` (NHWC model and inputs),
``channels_last+bf16`` (that, under ``torch.autocast("cpu", torch.bfloat16)``, as
``train.amp`` does; it needs a CPU with AVX512-BF16 or AMX to be fast), ``compiled``
(``torch.compile`` of the eager model), ``compiled+channels_last``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F

from hamq.models import ModelConfig, build_model


def make(variant: str, base: torch.nn.Module) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = copy.deepcopy(base)
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    if variant.startswith("compiled"):
        model = torch.compile(model)  # type: ignore[assignment]
    return model, opt


def step(model, opt, x, y, channels_last: bool, bf16: bool = False) -> None:
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(x), y, label_smoothing=0.2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled variants")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = build_model(ModelConfig(name="resnet20"), (3, 32, 32), 10).train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    names = ["eager", "channels_last", "channels_last+bf16"]
    if not args.no_compile:
        names += ["compiled", "compiled+channels_last"]
    variants = {n: make(n, base) for n in names}
    warm_s = {}
    for n, (m, o) in variants.items():
        t0 = time.perf_counter()
        for _ in range(2):
            step(m, o, x, y, "channels_last" in n, "bf16" in n)
        warm_s[n] = time.perf_counter() - t0
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.steps):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            m, o = variants[n]
            t0 = time.perf_counter()
            step(m, o, x, y, "channels_last" in n, "bf16" in n)
            times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(t) for n, t in times.items()}
    out = {
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "steps": args.steps,
        "median_step_s": med,
        "images_per_s": {n: args.batch / t for n, t in med.items()},
        "vs_eager": {n: med["eager"] / t for n, t in med.items()},
        "warmup_s": warm_s,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
