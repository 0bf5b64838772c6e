"""What re-estimating the BatchNorm statistics on training images does to a finished run,
without retraining: the run's validation and test accuracy as trained, then after its
BatchNorm running mean and variance are re-estimated (``hamq.training.adabs.
adapt_batchnorm``, a cumulative average) over ``N`` training images drawn with a fixed
generator, for each ``N`` given; one markdown row per setting. The weights, and so every
cell and the energy, are unchanged; only the digital BatchNorm after the arrays moves.

Why it might help: QAT moves weights between codes every step, and weights that oscillate
across a code boundary leave running statistics averaged over weights the kept checkpoint
no longer has (Nagel et al., "Overcoming oscillations in quantization-aware training",
ICML 2022, re-estimate them after training for that reason). On the twofold ResNet-20 it
did not (RESULTS.md, part 6, ninth session: 8610 -> 8612 / 10000).

    python scripts/bn_reestimate_probe.py runs/twofold-cifar-r20/w8-baseline 0 5120 --augment

The images come from the training split, never from validation (which chooses the epoch)
or test. A probe of one run; a setting a run trains with is chosen on validation accuracy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import torch

from hamq.data.bundle import DataBundle
from hamq.errors import HamqError
from hamq.experiments.markdown import markdown_table
from hamq.training.adabs import adapt_batchnorm
from hamq.training.runs import load_run
from hamq.training.trainer import count_correct, evaluate


def training_images(
    data: DataBundle, samples: int, batch_size: int, augment: bool, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``samples`` images of a seeded shuffle of the training split, in batches."""
    gen = torch.Generator().manual_seed(seed)
    n = data.train_x.shape[0]
    if samples > n:
        raise HamqError(f"{samples} training images asked for; the split holds {n}")
    perm = torch.randperm(n, generator=gen)[:samples]
    for i in range(0, samples, batch_size):
        idx = perm[i : i + batch_size]
        yield (
            data.transform(data.train_x[idx], augment, gen if augment else None),
            data.train_y[idx],
        )


def probe(run_dir: str, settings: list[int], augment: bool, seed: int) -> list[list[str]]:
    if any(n < 0 for n in settings):
        raise HamqError(
            f"settings {settings}: give a count of training images >= 0 (0: as trained)"
        )
    rows = []
    data = load_run(run_dir).data()
    for samples in settings:
        run = load_run(run_dir)  # fresh statistics for every setting
        if samples:
            adapt_batchnorm(run.model, training_images(data, samples, 256, augment, seed))
        val = evaluate(run.model, data, 1000, split="val")
        correct, n = count_correct(run.model, data, 1000)
        rows.append([str(samples) if samples else "as trained", f"{100 * val:.2f}%",
                     f"{correct} / {n}", f"{100 * correct / n:.2f}%"])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a finished run folder")
    p.add_argument("settings", nargs="+", type=int, help="training images (0: as trained)")
    p.add_argument("--augment", action="store_true", help="augment them as training does")
    p.add_argument("--seed", type=int, default=0, help="the draw of the images")
    args = p.parse_args(argv)
    try:
        rows = probe(args.run, args.settings, args.augment, args.seed)
    except HamqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(["BatchNorm statistics", "val acc.", "test correct", "test acc."], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
