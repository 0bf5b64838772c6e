"""Number representations: how a signed integer weight becomes unsigned words in cells.

A weight quantized to ``bits`` bits is a signed integer ``q`` with ``|q| <= 2**(bits-1) - 1``.
A crossbar stores only unsigned cell levels, so a *representation* maps ``q`` to one or more
unsigned words (one per *column set*), and *bit slicing* cuts each word into cells of
``cell_bits`` bits, least significant slice first, each slice in its own column.

===================  ========  ==========  ===============================================
representation       sets      word bits   stored word(s)
===================  ========  ==========  ===============================================
differential         2         bits - 1    (max(q, 0), max(-q, 0)) on two column sets
twos_complement      1         bits        q mod 2**bits (MSB column weighted -2**(bits-1))
shifted              1         bits        q + 2**(bits-1) (offset removed digitally)
sign_magnitude       1         bits        (q < 0) << (bits-1) | abs(q)
===================  ========  ==========  ===============================================

All functions are pure and work elementwise on integer tensors of any shape.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

Representation = Literal["differential", "twos_complement", "shifted", "sign_magnitude"]
REPRESENTATIONS: tuple[str, ...] = get_args(Representation)
CELL_BITS: tuple[int, ...] = (1, 2, 4)


def q_max(bits: int) -> int:
    """Largest magnitude of a symmetric signed ``bits``-bit integer: 2**(bits-1) - 1."""
    return 2 ** (bits - 1) - 1


def column_sets(rep: Representation) -> int:
    """Number of column sets a weight occupies (2 for a differential pair, else 1)."""
    return 2 if rep == "differential" else 1


def word_bits(bits: int, rep: Representation) -> int:
    """Bits of each stored word: magnitude only (bits-1) for differential, else bits."""
    return bits - 1 if rep == "differential" else bits


def n_slices(bits: int, rep: Representation, cell_bits: int) -> int:
    """Cells per word: ceil(word_bits / cell_bits); the top slice may be partly used."""
    return -(-word_bits(bits, rep) // cell_bits)


def slice_bits(bits: int, rep: Representation, cell_bits: int) -> list[int]:
    """Bits each slice of a word holds, LSB slice first: ``cell_bits`` each, the top one
    what is left (``word_bits - (n - 1) * cell_bits``)."""
    wb = word_bits(bits, rep)
    return [min(cell_bits, wb - j * cell_bits) for j in range(n_slices(bits, rep, cell_bits))]


def spread_factors(bits: int, rep: Representation, cell_bits: int, spread: bool) -> torch.Tensor:
    """Level stretch of each of a weight's physical columns (column-set-major, LSB slice
    first), float64 ``(cells_per_weight,)``.

    ``array.slice_levels: spread`` programs a ``b``-bit slice's code ``l`` at the cell's
    fractional level ``l * (2**cell_bits - 1) / (2**b - 1)``, so every slice uses the
    cell's whole conductance range; the read-out divides the column by the same factor
    (a per-column digital gain), so noiseless arrays still compute the integer levels.
    Only a slice narrower than the cell (the top one) is stretched. ``ladder`` (spread
    False): every factor is 1, the codes are the cell's lowest levels.
    """
    full = 2**cell_bits - 1
    per_slice = [full / (2**b - 1) if spread else 1.0 for b in slice_bits(bits, rep, cell_bits)]
    return torch.tensor(per_slice * column_sets(rep), dtype=torch.float64)


def interpolate_levels(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of a per-level ``table`` (float64 ``(L,)``) at fractional levels
    ``x`` in ``0 .. L-1`` (exact at integers): conductances and read energies of spread
    slices, which are linear in the level between the table's points."""
    lo = x.floor().clamp(0, table.numel() - 1)
    hi = (lo + 1).clamp(max=table.numel() - 1)
    w = x - lo
    t = table.to(x.device)
    return t[lo.long()] * (1 - w) + t[hi.long()] * w


def cells_per_weight(bits: int, rep: Representation, cell_bits: int) -> int:
    """Physical cells (columns) one weight occupies."""
    return column_sets(rep) * n_slices(bits, rep, cell_bits)


def check_layout(bits: int, rep: str, cell_bits: int) -> None:
    """Raise ValueError (naming the field) for an impossible representation/cell layout."""
    if rep not in REPRESENTATIONS:
        raise ValueError(f"representation '{rep}' is not one of {', '.join(REPRESENTATIONS)}")
    if not 2 <= bits <= 8:
        raise ValueError(f"weight bits = {bits}: must be in 2..8")
    if cell_bits not in CELL_BITS:
        raise ValueError(f"cell_bits = {cell_bits}: must be one of 1, 2, 4")
    wb = word_bits(bits, rep)  # type: ignore[arg-type]
    if rep in ("twos_complement", "sign_magnitude") and wb % cell_bits:
        raise ValueError(
            f"cell_bits = {cell_bits} does not divide the {wb}-bit {rep} word: its top bit "
            f"carries the sign and must fill its own slice; use weight bits divisible by "
            f"{cell_bits} or another representation"
        )


def encode(q: torch.Tensor, bits: int, rep: Representation) -> torch.Tensor:
    """Stored unsigned words of integer weights.

    Args:
        q: integer tensor, any shape, ``|q| <= q_max(bits)``.
    Returns:
        int64 tensor of shape ``q.shape + (column_sets(rep),)``.
    """
    q = q.to(torch.int64)
    if rep == "differential":
        return torch.stack((q.clamp(min=0), (-q).clamp(min=0)), dim=-1)
    if rep == "twos_complement":
        word = torch.remainder(q, 2**bits)
    elif rep == "shifted":
        word = q + 2 ** (bits - 1)
    elif rep == "sign_magnitude":
        word = (q < 0).to(torch.int64) * 2 ** (bits - 1) + q.abs()
    else:
        raise ValueError(f"unknown representation '{rep}'")
    return word.unsqueeze(-1)


def decode(words: torch.Tensor, bits: int, rep: Representation) -> torch.Tensor:
    """Inverse of :func:`encode`: words of shape ``(..., sets)`` back to signed integers."""
    words = words.to(torch.int64)
    if rep == "differential":
        return words[..., 0] - words[..., 1]
    w = words[..., 0]
    if rep == "twos_complement":
        return w - (w >= 2 ** (bits - 1)).to(torch.int64) * 2**bits
    if rep == "shifted":
        return w - 2 ** (bits - 1)
    if rep == "sign_magnitude":
        sign = w >= 2 ** (bits - 1)
        mag = w - sign.to(torch.int64) * 2 ** (bits - 1)
        return torch.where(sign, -mag, mag)
    raise ValueError(f"unknown representation '{rep}'")


def slice_words(words: torch.Tensor, n: int, cell_bits: int) -> torch.Tensor:
    """Cut unsigned words into ``n`` cell levels of ``cell_bits`` bits, LSB slice first.

    Returns shape ``words.shape + (n,)`` with levels in ``0 .. 2**cell_bits - 1``.
    """
    shifts = torch.arange(n, device=words.device, dtype=torch.int64) * cell_bits
    return (words.unsqueeze(-1) >> shifts) & (2**cell_bits - 1)


def unslice(levels: torch.Tensor, cell_bits: int) -> torch.Tensor:
    """Inverse of :func:`slice_words`: levels ``(..., n)`` back to words ``(...)``."""
    n = levels.shape[-1]
    place = 2 ** (torch.arange(n, device=levels.device, dtype=torch.int64) * cell_bits)
    return (levels.to(torch.int64) * place).sum(-1)


def cell_levels(q: torch.Tensor, bits: int, rep: Representation, cell_bits: int) -> torch.Tensor:
    """Cell levels of integer weights: shape ``q.shape + (sets, slices)``."""
    return slice_words(encode(q, bits, rep), n_slices(bits, rep, cell_bits), cell_bits)


def integer_range(bits: int, device: torch.device | str | None = None) -> torch.Tensor:
    """All representable integers ``-q_max .. q_max`` in order (length 2**bits - 1)."""
    m = q_max(bits)
    return torch.arange(-m, m + 1, device=device, dtype=torch.int64)


def level_table(bits: int, rep: Representation, cell_bits: int) -> torch.Tensor:
    """Cell levels of every representable integer: shape ``(2**bits - 1, sets, slices)``.

    Row ``i`` holds the levels of ``q = i - q_max(bits)``; cost tables for the regularizers
    (Hamming weight, ON cells, per-level energy) are sums over this table.
    """
    return cell_levels(integer_range(bits), bits, rep, cell_bits)


def popcount(x: torch.Tensor) -> torch.Tensor:
    """Number of set bits of non-negative int64 values (elementwise)."""
    x = x.to(torch.int64)
    count = torch.zeros_like(x)
    while bool((x > 0).any()):
        count += x & 1
        x = x >> 1
    return count


def hamming_table(bits: int, rep: Representation) -> torch.Tensor:
    """Hamming weight of the stored word(s) of every representable integer, float (2**bits-1,)."""
    words = encode(integer_range(bits), bits, rep)
    return popcount(words).sum(-1).to(torch.float32)


def on_cell_table(bits: int, rep: Representation, cell_bits: int) -> torch.Tensor:
    """Number of cells at a non-zero level for every representable integer, float."""
    return (level_table(bits, rep, cell_bits) > 0).sum((-1, -2)).to(torch.float32)
