"""LFSR masks: the regeneration rule against a hardware-style reference loop, the exact kept
count, determinism, balance, and that every index is reachable."""

from __future__ import annotations

from decimal import Decimal

import pytest
import torch

from hamq.sparsity.masks import (
    MaskError,
    block_counts,
    kept_count,
    layer_blocks,
    lfsr_kept_indices,
    lfsr_mask,
)


def ref_step(state: int, poly: list[int]) -> int:
    """Fibonacci step written out: feedback = XOR of cell 0 and cells e (0 < e < n)."""
    n = max(poly)
    fb = state & 1
    for e in poly:
        if e < n:
            fb ^= (state >> e) & 1
    return (state >> 1) | (fb << (n - 1))


def ref_kept(shape: tuple[int, ...], sparsity: str, poly: list[int], seed: int) -> list[int]:
    """What an index generator does: per column, blocks of at most 2**n - 1 rows; a
    Bresenham accumulator hands out the kept count; the LFSR runs on, rejecting offsets
    past the block. ``sparsity`` is a decimal string."""
    n_cols = shape[0]
    k_rows = 1
    for d in shape[1:]:
        k_rows *= d
    total = n_cols * k_rows
    kept = total - int(Decimal(sparsity) * total)  # floor of a positive number
    m = 2 ** max(poly) - 1
    out, state, done = [], seed, 0  # done = floor(kept * position / total) so far
    for c in range(n_cols):
        for r0 in range(0, k_rows, m):
            size = min(m, k_rows - r0)
            start = c * k_rows + r0
            quota = kept * (start + size) // total - done
            done += quota
            while quota:
                if state - 1 < size:
                    out.append(start + state - 1)
                    quota -= 1
                state = ref_step(state, poly)
    return out


CASES = [
    ((16, 1, 3, 3), "0.5", [9, 4], 1),
    ((32, 16, 3, 3), "0.7", [9, 4], 1),  # K = 144: one block per column
    ((3, 1200), "0.9", [9, 4], 77),  # K = 1200: blocks of 511, 511, 178
    ((10, 32), "0.25", [4, 1], 3),  # blocks of 15 rows
    ((4, 2, 2, 2), "0.0", [4, 3], 9),
    ((64, 1, 3, 3), "0.3", [5, 2], 30),  # depthwise-like: K = 9
]


@pytest.mark.parametrize(("shape", "sparsity", "poly", "seed"), CASES)
def test_kept_indices_follow_the_hardware_rule(
    shape: tuple[int, ...], sparsity: str, poly: list[int], seed: int
) -> None:
    got = lfsr_kept_indices(shape, float(sparsity), poly, seed, "fibonacci").tolist()
    assert got == ref_kept(shape, sparsity, poly, seed)
    mask = lfsr_mask(shape, float(sparsity), poly, seed)
    assert mask.shape == shape and mask.dtype == torch.bool
    assert sorted(mask.flatten().nonzero().flatten().tolist()) == sorted(got)


@pytest.mark.parametrize(
    ("n", "sparsity", "kept"),
    [(10, 0.7, 3), (10, 0.3, 7), (100, 0.29, 71), (7, 0.5, 4), (1, 0.99, 1), (144, 0.0, 144)],
)
def test_kept_count_rounding(n: int, sparsity: float, kept: int) -> None:
    # kept = N - floor(sparsity * N), sparsity read as its decimal (0.7 * 10 is 7, not 7.000001)
    assert kept_count(n, sparsity) == kept
    assert int(lfsr_mask((n, 1), sparsity, [9, 4], 1).sum()) == kept


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.7, 0.9, 0.95])
@pytest.mark.parametrize("shape", [(32, 16, 3, 3), (10, 64), (64, 1, 3, 3), (8, 600)])
def test_exact_kept_fraction_and_balance(sparsity: float, shape: tuple[int, ...]) -> None:
    mask = lfsr_mask(shape, sparsity, [9, 4], 5)
    n = mask.numel()
    kept = n - int(Decimal(repr(sparsity)) * n)
    assert int(mask.sum()) == kept
    per_col = mask.reshape(shape[0], -1).sum(1).float()
    share = kept * mask[0].numel() / n
    assert (per_col - share).abs().max() <= 1.0  # every column keeps its share to within one


def test_deterministic_and_seed_dependent() -> None:
    a = lfsr_mask((32, 16, 3, 3), 0.5, [9, 4], 1)
    assert torch.equal(a, lfsr_mask((32, 16, 3, 3), 0.5, [9, 4], 1))
    assert not torch.equal(a, lfsr_mask((32, 16, 3, 3), 0.5, [9, 4], 2))
    assert not torch.equal(a, lfsr_mask((32, 16, 3, 3), 0.5, [9, 4], 1, "galois"))


@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9])
def test_rows_are_balanced_too(sparsity: float) -> None:
    # One block per column: the register runs on, so the columns take consecutive windows of
    # one cyclic order of the rows, and every row is kept in its share of columns within one.
    mask = lfsr_mask((32, 144), sparsity, [9, 4], 1)
    per_row = mask.sum(0).float()
    share = float(mask.sum()) / 144
    assert (per_row - share).abs().max() < 1.0
    # ... while the kept rows of one column are scattered, not a range.
    rows = mask[0].nonzero().flatten()
    assert int(rows[-1] - rows[0]) + 1 > rows.numel()


def test_every_index_is_reachable() -> None:
    # Sparsity 0: the kept order is a permutation of all indices, blocks included.
    for shape in [(3, 1200), (5, 7), (2, 511), (2, 512)]:
        idx = lfsr_kept_indices(shape, 0.0, [9, 4], 1)
        assert sorted(idx.tolist()) == list(range(shape[0] * shape[1]))
    # High sparsity: over all seeds, every offset of a block is kept by some seed.
    covered = torch.zeros(100, dtype=torch.bool)
    for seed in range(1, 512):
        covered |= lfsr_mask((1, 100), 0.95, [9, 4], seed).flatten()
    assert bool(covered.all())


def test_blocks_stay_inside_columns() -> None:
    blocks = layer_blocks((3, 1200), 511)
    assert blocks == [
        (0, 511), (511, 511), (1022, 178),
        (1200, 511), (1711, 511), (2222, 178),
        (2400, 511), (2911, 511), (3422, 178),
    ]  # fmt: skip
    counts = block_counts(blocks, 3600, 360)
    assert sum(counts) == 360 and all(0 <= k <= n for k, (_, n) in zip(counts, blocks, strict=True))


def test_non_primitive_polynomial_reaches_only_its_cycle() -> None:
    # Fibonacci x^4 + x^2 + 1 (feedback = cell 0 XOR cell 2) from seed 0001 cycles through
    # 0001 -> 1000 -> 0100 -> 1010 -> 0101 -> 0010 -> 0001 (period 6): offsets 0, 7, 3, 9,
    # 4, 1 only, in that order.
    assert [ref_step(s, [4, 2]) for s in (1, 8, 4, 10, 5, 2)] == [8, 4, 10, 5, 2, 1]
    idx = lfsr_kept_indices((1, 15), 0.6, [4, 2], 1)
    assert idx.tolist() == [0, 7, 3, 9, 4, 1]
    with pytest.raises(MaskError, match="period 6, too short"):
        lfsr_kept_indices((1, 15), 0.5, [4, 2], 1)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (((4, 4), 1.0, [9, 4], 1), "outside"),
        (((4, 4), -0.1, [9, 4], 1), "outside"),
        (((4, 4), 0.5, [9, 4], 0), "seed"),
        (((4, 4), 0.5, [9, 4], 512), "seed"),
        (((16,), 0.5, [9, 4], 1), "shape"),
        (((4, 0), 0.5, [9, 4], 1), "shape"),
    ],
)
def test_bad_arguments(args: tuple, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        lfsr_mask(*args)
