"""Training throughput (images/s) of float, QAT and QAT+HamQ on the same model, one run.

Uses the real training path (``hamq.training.trainer.train_epoch``: data kept on the device
as uint8, batched augmentation there, bfloat16 autocast and channels_last on CUDA) on
synthetic CIFAR-shaped uint8 data, so it needs no data set. Variants are interleaved over
repeats so machine load affects all alike; the median is reported.

    python benchmarks/bench_throughput.py                      # resnet18 on CUDA, resnet20 on CPU
    python benchmarks/bench_throughput.py --model resnet18 --samples 20480 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hamq.config_base import validate
from hamq.data.augment import random_crop_flip
from hamq.data.bundle import DataBundle
from hamq.training.config import TrainConfig
from hamq.training.trainer import (
    RunState,
    _enter_qat,
    build_run_model,
    hardware_of,
    make_optimizer,
    train_epoch,
)


def synthetic_cifar(n: int, device: torch.device) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)

    def transform(xb: torch.Tensor, train: bool, gen: torch.Generator | None) -> torch.Tensor:
        xf = xb.float() / 255.0
        if train and gen is not None:
            xf = random_crop_flip(xf, 4, gen)
        return (xf - 0.5) / 0.25

    return DataBundle(
        "synthetic", x, y, x[:256], y[:256], [str(i) for i in range(10)], (3, 32, 32), transform
    ).to(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = args.model or ("resnet18" if cuda else "resnet20")
    n = args.samples or (25600 if cuda else 1024)
    batch = args.batch or (256 if cuda else 128)
    data = synthetic_cifar(n, device)
    base = {
        "model": {"name": model},
        "data": {"batch_size": batch},
        "train": {
            "float_epochs": 1,
            "qat_epochs": 1,
            "optimizer": "sgd",
            "lr": 0.05,
            "amp": cuda,
            "channels_last": cuda,
            "device": "auto",
        },
    }
    variants = {
        "float": None,
        "qat": {"name": "none"},
        "qat+hamming": {"name": "hamming", "lambda": 1.0},
        "qat+energy": {"name": "energy", "lambda": 1.0},
    }
    states = {}
    for name, reg in variants.items():
        cfg = validate(TrainConfig, {**base, "regularizer": reg or {"name": "none"}})
        state = RunState(model=build_run_model(cfg, data).to(device))
        if cuda:
            state.model = state.model.to(memory_format=torch.channels_last)
        if reg is None:
            state.optimizer = make_optimizer(state.model, cfg, "float")
        else:
            _enter_qat(state, cfg, hardware_of(cfg))
        states[name] = (state, cfg)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for rep in range(args.repeats + 1):  # first round is warm-up
        for name, (state, cfg) in states.items():
            epoch = 0 if name == "float" else 1
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            train_epoch(state, cfg, data, epoch, device)
            if cuda:
                torch.cuda.synchronize()
            if rep > 0:
                times[name].append(time.perf_counter() - t0)
    steps = n // batch
    print(
        f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, model {model}, batch {batch}, "
        f"{steps} steps per epoch, torch {torch.__version__}, median of {args.repeats}"
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in med.items():
        print(
            f"  {name:<12} {steps * batch / t:10.1f} images/s   {t / med['float']:.2f}x float   "
            f"{t / med['qat']:.2f}x qat"
        )


if __name__ == "__main__":
    main()
