"""Speed of the energy model. Run: ``python benchmarks/bench_energy.py``.

(a) data-mode energy estimation over a data set vs plain quantized inference over the same
    data (DS-CNN, random 49x10 inputs, batch 128): ratio, target <= 1.5x;
(b) full per-layer report of ResNet-18 (CIFAR) on one 32x32 image: seconds, target < 1 s;
(c) the energy regularizer's added time to a QAT training step (DS-CNN, batch 128):
    target <= 15%.
Each figure is the best process CPU time (all threads, so time spent waiting for a
shared core is not counted) of several repeats after a warm-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hamq.hardware.estimate import estimate_energy
from hamq.hardware.spec import load_hardware
from hamq.models import ModelConfig, build_model
from hamq.quantization import QuantConfig, quantize_model
from hamq.regularizers import RegularizerConfig, build_regularizer


def best_s(fn: Callable[[], object], repeats: int) -> float:
    """Best process CPU time of ``repeats`` runs after a warm-up (one run if repeats is 0)."""
    if repeats == 0:
        t0 = time.process_time()
        fn()
        return time.process_time() - t0
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def converted(name: str, shape: tuple[int, ...], classes: int, x: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    m = build_model(ModelConfig(name=name), shape, classes)
    quantize_model(m, QuantConfig(w_bits=8, a_bits=8))
    m.train()
    with torch.no_grad():
        m(x)
    return m.eval()


def bench_estimate_vs_inference(hw_name: str) -> tuple[float, float, float]:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(1024, 1, 49, 10, generator=gen)
    m = converted("ds-cnn", (1, 49, 10), 12, data[:128])
    hw = load_hardware(hw_name)

    def infer() -> None:
        with torch.no_grad():
            for i in range(0, data.shape[0], 128):
                m(data[i : i + 128])

    def estimate() -> None:
        estimate_energy(m, data, hw, batch_size=128)

    # Interleaved pairs; the median of the paired ratios resists the slow spells of a
    # shared machine better than a ratio of two separately taken times.
    infer()
    estimate()
    t_inf, t_est = [], []
    for _ in range(9):
        t_inf.append(best_s(infer, 0))
        t_est.append(best_s(estimate, 0))
    ratio = statistics.median(e / i for e, i in zip(t_est, t_inf, strict=True))
    return statistics.median(t_inf), statistics.median(t_est), ratio


def bench_resnet_report() -> float:
    x = torch.rand(1, 3, 32, 32)
    m = converted("resnet18", (3, 32, 32), 10, torch.rand(8, 3, 32, 32))
    hw = load_hardware("rram-1b")
    return best_s(lambda: estimate_energy(m, x, hw), 3)


def bench_regularizer_step() -> tuple[float, float]:
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

    return best_s(step_fn(False), 10), best_s(step_fn(True), 10)


def main() -> None:
    # One intra-op thread: on a shared 2-core machine, process CPU time of a single thread
    # is reproducible, where idle OpenMP workers spinning for a busy core are not.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for hw_name in ("rram-1b", "rram-2b-40nm"):
        t_inf, t_est, ratio = bench_estimate_vs_inference(hw_name)
        print(
            f"(a) DS-CNN, 1024 random 49x10 inputs, batch 128, {hw_name}: inference "
            f"{t_inf:.3f} CPU s, energy estimation {t_est:.3f} CPU s, paired ratio {ratio:.2f}x"
        )
    print(
        f"(b) ResNet-18 full per-layer report, one 32x32 image: {bench_resnet_report():.3f} CPU s"
    )
    t_plain, t_reg = bench_regularizer_step()
    print(
        f"(c) DS-CNN QAT step, batch 128: {t_plain * 1e3:.1f} CPU ms, with energy regularizer "
        f"{t_reg * 1e3:.1f} CPU ms, added {100 * (t_reg / t_plain - 1):.1f}%"
    )


if __name__ == "__main__":
    main()
