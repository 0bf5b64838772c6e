"""LFSR pruning masks: which weights of a layer are kept, by the rule hardware regenerates.

Network-level sparsity after Karimzadeh, Cao, Crafton, Romberg & Raychowdhury (LFSR-generated
pseudo-random indices; LGPS, IEEE TCAS-I 68, 2021) and Karimzadeh & Raychowdhury (twofold
sparsity, IEEE Access 2024): the positions of the kept weights are not stored; an LFSR in
the accelerator regenerates them from its polynomial and seed. The papers give the idea;
the exact rule below is hamq's, chosen so that a small counter-and-compare circuit next to
one LFSR reproduces it with no stored index, and so that every index can be kept.

**The regeneration rule.** A layer has ``N`` weights; ``shape = (C_out, ...)`` with
``K = prod(shape[1:])`` (for a convolution ``K = C_in/groups * kh * kw``, for a linear layer
``C_in``).

1. *Order.* Weights are numbered ``i = c * K + r``: crossbar column (output channel) ``c``,
   then its ``K`` rows in unroll order, i.e. the row-major flattening of the
   ``(C_out, C_in/groups, kh, kw)`` weight, which is the order of ``F.unfold`` and of the
   crossbar rows of ``hamq.quantization.export``.
2. *Blocks.* Each column is cut into blocks of ``M = 2**n - 1`` consecutive rows (``n`` the
   polynomial's degree; the last block of a column is shorter): block ``b`` covers the flat
   indices ``[s_b, e_b)``. A block never spans two columns.
3. *Counts.* The layer keeps ``k = N - floor(sparsity * N)`` weights, ``sparsity`` taken as
   the decimal number it is written as (so 0.7 of 10 weights keeps exactly 3), and block
   ``b`` keeps ``k_b = floor(k * e_b / N) - floor(k * s_b / N)``: integer arithmetic on
   ``(k, N)`` (a Bresenham accumulator in hardware), exact in total (the sum telescopes to
   ``k``), and balanced: every block, hence every column, keeps its share to within one.
4. *Walk.* One LFSR, loaded with the seed at the start of the layer, runs through the
   blocks in order and is never reset inside the layer. In block ``b`` each state ``x`` the
   register holds gives the candidate row offset ``x - 1``; it is *rejected* when
   ``x - 1 >= e_b - s_b`` (the block is shorter than ``M``), else index ``s_b + x - 1`` is
   kept. The first ``k_b`` accepted offsets are the block's kept weights, in that order (the
   order in which a compacted layout would store them); the register then steps once and
   the next block starts from that state. A block with ``k_b = 0`` consumes no state.

With a primitive polynomial the register visits all ``2**n - 1`` non-zero states once per
period, so the accepted offsets of a block are distinct, every offset ``0 .. e_b - s_b - 1``
is reachable from any starting state, and a block's walk takes at most ``2**n - 1`` clocks
(``M / (e_b - s_b)`` per kept weight on average). What hardware needs per layer: the
polynomial, the seed, ``N``, ``K`` and ``k``; no index. Because the register runs on, the
in-range offsets come in one fixed cyclic order and consecutive blocks take consecutive
windows of it: with one block per column every row, too, is kept in its share of the
columns to within one (at sparsity 0.5, alternate columns keep complementary halves).
With a polynomial that is not
primitive the register stays on the seed's shorter cycle: only the offsets ``x - 1`` of its
states can ever be kept, and a block that needs more accepted offsets than its cycle holds
cannot be built (:class:`MaskError`).

**Row granularity** (``granularity: row``, for the index-free crossbar layout). The rule
above runs on one column of ``K`` rows (shape ``(1, K)``): it picks ``K - floor(sparsity *
K)`` kept *rows*, and every column of the layer (every group block too) keeps the same rows.
A crossbar row drives one input onto all its columns, so only a mask whose columns share
their kept rows can be stored compacted: the pruned rows leave the arrays and the kept rows
are stored in the order the LFSR yields them (:func:`lfsr_kept_rows`); the LFSR, run again
at inference, gives the input address of each stored row. Weight-granular masks keep
different rows in different columns and are stored dense, pruned cells at level 0
(``docs/sparsity.md``, "Index-free layout").

Everything here is a pure function of ``(shape, sparsity, poly, seed, form, granularity)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch

from hamq.sparsity.lfsr import Form, check_poly, check_seed, lfsr_cycle, poly_str

Granularity = Literal["weight", "row"]
GRANULARITIES: tuple[Granularity, ...] = ("weight", "row")


class MaskError(ValueError):
    """The LFSR cannot produce the requested mask (its cycle is too short for a block)."""


def sparsity_fraction(sparsity: float) -> Fraction:
    """The sparsity as the exact decimal it is written as (``0.7`` -> 7/10), in [0, 1)."""
    frac = Fraction(repr(float(sparsity)))
    if not 0 <= frac < 1:
        raise ValueError(f"sparsity {sparsity!r} is outside [0, 1)")
    return frac


def kept_count(n_weights: int, sparsity: float) -> int:
    """Weights a layer of ``n_weights`` keeps: ``N - floor(sparsity * N)`` (>= 1 for N >= 1)."""
    return n_weights - math.floor(sparsity_fraction(sparsity) * n_weights)


def layer_blocks(shape: Sequence[int], block_max: int) -> list[tuple[int, int]]:
    """The blocks of rule step 2 as ``(start, size)`` in flat index order.

    ``shape`` is a weight shape ``(C_out, ...)``; blocks hold at most ``block_max`` rows
    of one column.
    """
    cols, k = int(shape[0]), math.prod(int(d) for d in shape[1:])
    return [(c * k + r, min(block_max, k - r)) for c in range(cols) for r in range(0, k, block_max)]


def block_counts(blocks: Sequence[tuple[int, int]], n_weights: int, kept: int) -> list[int]:
    """Kept weights per block (rule step 3): ``floor(k e_b / N) - floor(k s_b / N)``."""
    return [kept * (s + n) // n_weights - kept * s // n_weights for s, n in blocks]


def _walk(
    shape: Sequence[int], sparsity: float, poly: Sequence[int], seed: int, form: Form
) -> tuple[torch.Tensor, int]:
    """Rule steps 1-4: the kept flat indices in LFSR order and the register clocks taken
    (one per state examined, accepted or rejected)."""
    poly = check_poly(poly)
    check_seed(seed, poly)
    if len(shape) < 2 or any(int(d) < 1 for d in shape):
        raise ValueError(f"weight shape {tuple(shape)} is not (C_out, ...) with sizes >= 1")
    n_weights = math.prod(int(d) for d in shape)
    kept = kept_count(n_weights, sparsity)
    block_max = 2 ** max(poly) - 1
    blocks = layer_blocks(shape, block_max)
    counts = block_counts(blocks, n_weights, kept)
    cycle = torch.tensor(lfsr_cycle(poly, seed, form), dtype=torch.int64)
    period = cycle.numel()
    out: list[torch.Tensor] = []
    pos = 0  # index into the cycle of the state the register holds
    clocks = 0
    for (start, size), k_b in zip(blocks, counts, strict=True):
        if k_b == 0:
            continue
        offsets = torch.cat((cycle[pos:], cycle[:pos])) - 1  # one period from the current state
        accepted = (offsets < size).nonzero().flatten()
        if accepted.numel() < k_b:
            raise MaskError(
                f"{poly_str(poly)} from seed {seed} has period {period}, too short: a block "
                f"of {size} weights must keep {k_b} but its cycle reaches only "
                f"{accepted.numel()} of them; use a primitive polynomial"
            )
        take = accepted[:k_b]
        out.append(offsets[take] + start)
        clocks += int(take[-1]) + 1
        pos = (pos + int(take[-1]) + 1) % period
    return torch.cat(out), clocks


def lfsr_kept_indices(
    shape: Sequence[int],
    sparsity: float,
    poly: Sequence[int],
    seed: int,
    form: Form = "fibonacci",
) -> torch.Tensor:
    """Flat indices of the kept weights, int64 ``(k,)``, in the order the LFSR yields them.

    Raises :class:`MaskError` when the seed's cycle is too short for a block, ValueError for
    a bad polynomial, seed, sparsity or shape.
    """
    return _walk(shape, sparsity, poly, seed, form)[0]


def rows_of(shape: Sequence[int]) -> int:
    """Crossbar rows of one column of a weight ``(C_out, ...)``: ``prod(shape[1:])``."""
    if len(shape) < 2 or any(int(d) < 1 for d in shape):
        raise ValueError(f"weight shape {tuple(shape)} is not (C_out, ...) with sizes >= 1")
    return math.prod(int(d) for d in shape[1:])


def lfsr_kept_rows(
    shape: Sequence[int],
    sparsity: float,
    poly: Sequence[int],
    seed: int,
    form: Form = "fibonacci",
) -> torch.Tensor:
    """Row-granular masks: the kept rows (unroll-order indices ``0 .. K-1``), int64
    ``(K - floor(sparsity * K),)``, in the order the LFSR yields them (the order of the
    compacted arrays' rows): the rule on one column of ``K`` rows."""
    return row_layout(shape, sparsity, poly, seed, form).rows


def lfsr_clocks(
    shape: Sequence[int],
    sparsity: float,
    poly: Sequence[int],
    seed: int,
    form: Form = "fibonacci",
    granularity: Granularity = "weight",
) -> int:
    """Register clocks one regeneration of the layer's kept positions takes (states
    examined, rejected ones included): for row granularity, the clocks per input vector
    of the index-free layout's address generator."""
    if granularity == "row":
        shape = (1, rows_of(shape))
    return _walk(shape, sparsity, poly, seed, form)[1]


@dataclass(frozen=True)
class RowLayout:
    """What the index-free layout of a row-pruned layer needs: ``rows``, the kept unroll
    rows in LFSR order (int64, CPU), and ``clocks``, the register clocks one regeneration
    of them takes (:func:`lfsr_clocks`), spent once per input vector."""

    rows: torch.Tensor
    clocks: int


def row_layout(
    shape: Sequence[int],
    sparsity: float,
    poly: Sequence[int],
    seed: int,
    form: Form = "fibonacci",
) -> RowLayout:
    """The :class:`RowLayout` of a row-granular mask."""
    rows, clocks = _walk((1, rows_of(shape)), sparsity, poly, seed, form)
    return RowLayout(rows, clocks)


def kept_total(shape: Sequence[int], sparsity: float, granularity: Granularity) -> int:
    """Weights a mask of this granularity keeps: ``kept_count(N, s)`` for weights,
    ``C_out * kept_count(K, s)`` for rows."""
    if granularity == "row":
        return int(shape[0]) * kept_count(rows_of(shape), sparsity)
    return kept_count(math.prod(int(d) for d in shape), sparsity)


def lfsr_mask(
    shape: Sequence[int],
    sparsity: float,
    poly: Sequence[int],
    seed: int,
    form: Form = "fibonacci",
    granularity: Granularity = "weight",
) -> torch.Tensor:
    """Boolean mask of ``shape``, True at the kept weights (exactly :func:`kept_total`)."""
    dims = tuple(int(d) for d in shape)
    if granularity == "row":
        mask = torch.zeros(dims[0], rows_of(dims), dtype=torch.bool)
        mask[:, lfsr_kept_rows(dims, sparsity, poly, seed, form)] = True
        return mask.reshape(dims)
    if granularity != "weight":
        raise ValueError(f"unknown mask granularity '{granularity}'; allowed: weight, row")
    n_weights = math.prod(dims)
    mask = torch.zeros(n_weights, dtype=torch.bool)
    mask[lfsr_kept_indices(dims, sparsity, poly, seed, form)] = True
    return mask.reshape(dims)
