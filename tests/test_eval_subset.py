"""Evaluations limited to N samples take a fixed class-proportional sample, not the first N
of a split stored sorted by class (the first 1000 CIFAR-10 test images are all airplanes)."""

from __future__ import annotations

import pytest
import torch

from hamq.data.bundle import DataBundle, subset_indices
from hamq.training.crossbar_eval import calibration_split


def _sorted_bundle(per_class: list[int]) -> DataBundle:
    y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(per_class)])
    x = torch.arange(y.numel(), dtype=torch.float32)[:, None]
    return DataBundle("sorted", x, y, x.clone(), y.clone(), [str(c) for c in range(len(per_class))],
                      (1,), val_x=x.clone(), val_y=y.clone())  # fmt: skip


def test_limited_test_batches_keep_every_class_share() -> None:
    data = _sorted_bundle([300, 100, 200, 400])
    got = torch.cat([y for _, y in data.test_batches(64, 100)])
    assert got.numel() == 100
    counts = torch.bincount(got, minlength=4).tolist()
    for c, share in enumerate([0.3, 0.1, 0.2, 0.4]):
        assert abs(counts[c] - 100 * share) <= 1, counts
    # the same samples every time, in stored order, and the inputs match the labels
    xs = torch.cat([x for x, _ in data.test_batches(64, 100)]).flatten().long()
    assert torch.equal(data.test_y[xs], got) and bool((xs.diff() > 0).all())
    again = torch.cat([x for x, _ in data.test_batches(7, 100)]).flatten().long()
    assert torch.equal(xs, again)


def test_first_is_the_old_prefix_and_whole_splits_are_untouched() -> None:
    data = _sorted_bundle([300, 100])
    data.eval_subset = "first"
    assert torch.cat([y for _, y in data.test_batches(50, 120)]).tolist() == [0] * 120
    data.eval_subset = "stratified"
    whole = torch.cat([x for x, _ in data.test_batches(50, 10_000)]).flatten()
    assert torch.equal(whole, data.test_x.flatten())
    assert subset_indices(data.test_y, None, "stratified") is None
    assert subset_indices(data.test_y, 400, "stratified") is None


def test_calibration_takes_the_same_kind_of_subset() -> None:
    data = _sorted_bundle([500, 500])
    batches, split = calibration_split(data, 100, 32)
    y = torch.cat([b[1] for b in batches])
    assert split == "validation" and torch.bincount(y).tolist() == [50, 50]


def test_a_class_with_one_sample_falls_back_to_a_seeded_sample() -> None:
    y = torch.tensor([0] * 50 + [1])
    idx = subset_indices(y, 10, "stratified")
    assert idx is not None and idx.numel() == 10 and len(set(idx.tolist())) == 10
    assert torch.equal(idx, subset_indices(y, 10, "stratified"))


@pytest.mark.parametrize("limit", [1, 3])
def test_fewer_samples_than_classes(limit: int) -> None:
    y = torch.arange(5).repeat_interleave(4)
    idx = subset_indices(y, limit, "stratified")
    assert idx is not None and idx.numel() == limit
