"""The in-memory data set every trainer and estimator consumes.

Data sets here are small enough to hold in memory as tensors (CIFAR-10 is 184 MB as uint8,
the Speech Commands test set 156 MB as int16 waveforms), so they are kept whole, moved to
the training device once, and batched and augmented there (no worker processes, no
per-sample Python). ``transform`` turns a raw batch on the device into model input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

import torch

EvalSubset = Literal["stratified", "first"]
"""How an evaluation limited to ``N`` samples picks them from a split: ``stratified`` (the
default: a fixed class-proportional sample, seed 0) or ``first`` (the first ``N`` in stored
order; hamq 0.4 and earlier did this, and folder data sets are stored sorted by class, so
the first 1000 CIFAR-10 test images are all airplanes)."""
EVAL_SUBSETS: tuple[EvalSubset, ...] = ("stratified", "first")


def subset_indices(y: torch.Tensor, limit: int | None, how: EvalSubset) -> torch.Tensor | None:
    """Indices (ascending, int64, on ``y``'s device) of the ``limit`` samples an evaluation
    limited to ``limit`` uses; None when it uses the first ``limit`` (``how = first``) or
    the whole split (``limit`` None or at least the split's size).

    ``stratified`` is scikit-learn's stratified split with ``random_state=0`` (the same
    tool as the validation hold-out): every class keeps its share to within one sample, the
    same samples every time. Where a class has a single sample it is a plain seeded sample.
    """
    n = int(y.numel())
    if limit is None or limit >= n or how == "first":
        return None
    from sklearn.model_selection import train_test_split

    labels = y.cpu().numpy()
    counts = torch.bincount(y.cpu())
    present = counts[counts > 0]
    can_stratify = int(present.min()) >= 2 and present.numel() <= min(limit, n - limit)
    idx, _ = train_test_split(list(range(n)), train_size=limit, random_state=0,
                              stratify=labels if can_stratify else None)  # fmt: skip
    return torch.tensor(sorted(idx), dtype=torch.int64, device=y.device)


# (raw batch on device, train mode, generator or None) -> model input
Transform = Callable[[torch.Tensor, bool, torch.Generator | None], torch.Tensor]


def identity_transform(x: torch.Tensor, train: bool, gen: torch.Generator | None) -> torch.Tensor:
    return x


@dataclass
class DataBundle:
    """Train, validation and test tensors plus the batched transform to model input.

    Attributes:
        name: data set name.
        train_x, train_y, test_x, test_y: raw samples and int64 labels.
        val_x, val_y: the validation part (chooses the reported epoch; never the test
            part). None until ``load_dataset`` holds one out for data sets without their
            own; empty when ``data.validation_percent`` is 0.
        classes: class names, index = label.
        input_shape: shape of one model input after ``transform`` (without batch).
        transform: raw batch -> model input; augments when ``train`` is True, using the
            given generator for all randomness.
        eval_subset: which samples an evaluation limited to fewer than a split's samples
            uses (:data:`EvalSubset`).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    input_shape: tuple[int, ...]
    transform: Transform = identity_transform
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    eval_subset: EvalSubset = "stratified"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def val_samples(self) -> int:
        return 0 if self.val_y is None else int(self.val_y.numel())

    def to(self, device: torch.device | str) -> DataBundle:
        """Move all tensors to ``device`` (once, before training)."""
        return replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
            val_x=None if self.val_x is None else self.val_x.to(device),
            val_y=None if self.val_y is None else self.val_y.to(device),
        )

    def limited(
        self, x: torch.Tensor, y: torch.Tensor, limit: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples of split ``(x, y)`` that an evaluation limited to ``limit`` uses
        (:func:`subset_indices`, by ``eval_subset``)."""
        idx = subset_indices(y, limit, self.eval_subset)
        if idx is not None:
            return x[idx.to(x.device)], y[idx]
        n = int(y.numel()) if limit is None else min(limit, int(y.numel()))
        return x[:n], y[:n]

    def train_batches(
        self, batch_size: int, gen: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled, augmented training batches (the last partial batch is dropped)."""
        n = self.train_x.shape[0]
        perm = torch.randperm(n, generator=gen, device=gen.device).to(self.train_x.device)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size]
            yield self.transform(self.train_x[idx], True, gen), self.train_y[idx]

    def test_batches(
        self, batch_size: int, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Test batches without augmentation; ``limit`` caps the sample count (which
        samples: ``eval_subset``)."""
        return self._eval_batches(self.test_x, self.test_y, batch_size, limit)

    def val_batches(
        self, batch_size: int, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Validation batches in order, without augmentation (none if there is no part)."""
        if self.val_x is None or self.val_y is None:
            return iter(())
        return self._eval_batches(self.val_x, self.val_y, batch_size, limit)

    def _eval_batches(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int, limit: int | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.limited(x, y, limit)
        n = x.shape[0]
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            yield self.transform(x[i:j], False, None), y[i:j]
