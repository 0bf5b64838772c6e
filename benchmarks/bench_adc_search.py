"""Speed of the ``optimized`` ADC policy's search with and without memoized layer outputs,
as a ratio taken in one run.

Run: ``python benchmarks/bench_adc_search.py [--model resnet20] [--images 32] [--json FILE]``.
A randomly initialized 8-bit model (quantizers calibrated on random inputs), ``rram-1b``
(bit-serial inputs, 1-bit cells), ``adc.policy: optimized`` with tolerance 0.5 pp; the
calibration labels are the model's own predictions. Each variant plans the ADCs of fresh
layer simulations (``plan_adc``) on the same images; the plans must be identical. One
thread, process CPU time, one round per variant (a search takes minutes).

Target: the memoized search at least 3x faster on ResNet-20 (21 layers), where without the
memo every trial re-simulates every earlier layer.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench_energy import converted, machine
from hamq.hardware import simulate
from hamq.hardware.simulate import crossbar_layers, plan_adc
from hamq.hardware.spec import load_hardware

SHAPES = {"resnet20": ((3, 32, 32), 10), "ds-cnn": ((1, 49, 10), 12)}


def plan_time(model: torch.nn.Module, batches: list, memo: bool) -> tuple[float, list]:
    hw = load_hardware("rram-1b", **{"adc.policy": "optimized", "adc.tolerance_pp": 0.5})
    simulate.MEMOIZE_SEARCH = memo
    sims = crossbar_layers(model, hw)
    c0 = time.process_time()
    plan = plan_adc(model, sims, hw, batches)
    return time.process_time() - c0, [(p.name, p.bits) for p in plan]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet20", choices=sorted(SHAPES))
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    shape, classes = SHAPES[args.model]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, *shape, generator=gen)
    model = converted(args.model, shape, classes, x)
    with torch.no_grad():
        y = model(x).argmax(-1)
    batches = [(x, y)]
    t_memo, plan_memo = plan_time(model, batches, True)
    t_plain, plan_plain = plan_time(model, batches, False)
    simulate.MEMOIZE_SEARCH = True
    assert plan_memo == plan_plain, "the memoized search chose another plan"
    out = {
        "machine": machine(),
        "torch": torch.__version__,
        "model": args.model,
        "images": args.images,
        "layers": len(plan_memo),
        "search_s": {"memoized": t_memo, "plain": t_plain},
        "speedup": t_plain / t_memo,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
