"""Representations and bit slicing against an independent Python-int reference.

The reference below is written from the definitions in DESIGN.md (stored words of each
representation, LSB-first slices of ``cell_bits`` bits) using plain Python ints and
``bin(x).count("1")``; it shares no code with ``hamq.hardware``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hamq.hardware.representation import (
    CELL_BITS,
    REPRESENTATIONS,
    cell_levels,
    check_layout,
    decode,
    encode,
    hamming_table,
    n_slices,
    on_cell_table,
    popcount,
    slice_words,
    unslice,
)
from hamq.hardware.stats import cell_stats

pytestmark = pytest.mark.usefixtures("single_thread")

ALL_BITS = range(2, 9)


# ----------------------------------------------------------------------------- reference
def ref_words(q: int, bits: int, rep: str) -> tuple[int, ...]:
    """Stored unsigned word(s) of the signed integer ``q``, by definition."""
    if rep == "differential":
        return (max(q, 0), max(-q, 0))
    if rep == "twos_complement":
        return (q & ((1 << bits) - 1),)
    if rep == "shifted":
        return (q + (1 << (bits - 1)),)
    if rep == "sign_magnitude":
        return (((1 << (bits - 1)) if q < 0 else 0) | abs(q),)
    raise AssertionError(rep)


def ref_word_bits(bits: int, rep: str) -> int:
    return bits - 1 if rep == "differential" else bits


def ref_slices(word: int, bits: int, rep: str, cell_bits: int) -> list[int]:
    """Cell levels of one word, least significant slice first."""
    n = -(-ref_word_bits(bits, rep) // cell_bits)
    return [(word >> (i * cell_bits)) & ((1 << cell_bits) - 1) for i in range(n)]


def ref_valid(bits: int, rep: str, cell_bits: int) -> bool:
    """The sign bit of a two's-complement / sign-magnitude word must fill its own slice."""
    if rep in ("twos_complement", "sign_magnitude"):
        return bits % cell_bits == 0
    return True


def ref_qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def hw(x: int) -> int:
    return bin(x).count("1")


# ----------------------------------------------------------------------------- strategies
VALID_LAYOUTS = [
    (rep, b, cb)
    for rep in REPRESENTATIONS
    for b in ALL_BITS
    for cb in CELL_BITS
    if ref_valid(b, rep, cb)
]
INVALID_LAYOUTS = [
    (rep, b, cb)
    for rep in REPRESENTATIONS
    for b in ALL_BITS
    for cb in CELL_BITS
    if not ref_valid(b, rep, cb)
]


@st.composite
def layout_and_weights(draw: st.DrawFn) -> tuple[str, int, int, list[int]]:
    rep, bits, cb = draw(st.sampled_from(VALID_LAYOUTS))
    m = ref_qmax(bits)
    qs = draw(st.lists(st.integers(-m, m), min_size=1, max_size=64))
    return rep, bits, cb, qs


def test_layout_lists_cover_every_combination() -> None:
    assert set(REPRESENTATIONS) == {
        "differential",
        "twos_complement",
        "shifted",
        "sign_magnitude",
    }
    assert len(VALID_LAYOUTS) + len(INVALID_LAYOUTS) == 4 * 7 * 3
    assert INVALID_LAYOUTS  # e.g. two's complement 3-bit in 2-bit cells


# ----------------------------------------------------------------------------- layouts
@pytest.mark.parametrize(("rep", "bits", "cell_bits"), VALID_LAYOUTS)
def test_check_layout_accepts_valid(rep: str, bits: int, cell_bits: int) -> None:
    check_layout(bits, rep, cell_bits)


@pytest.mark.parametrize(("rep", "bits", "cell_bits"), INVALID_LAYOUTS)
def test_check_layout_rejects_non_dividing_cells(rep: str, bits: int, cell_bits: int) -> None:
    assert rep in ("twos_complement", "sign_magnitude")
    with pytest.raises(ValueError, match=f"cell_bits = {cell_bits}") as err:
        check_layout(bits, rep, cell_bits)
    assert rep in str(err.value)


@pytest.mark.parametrize(
    ("bits", "rep", "cell_bits", "field"),
    [
        (9, "differential", 1, "bits"),
        (1, "shifted", 1, "bits"),
        (8, "differential", 3, "cell_bits"),
        (8, "ones_complement", 1, "ones_complement"),
    ],
)
def test_check_layout_rejects_out_of_range(bits: int, rep: str, cell_bits: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        check_layout(bits, rep, cell_bits)


# ----------------------------------------------------------------------------- encode/decode
@pytest.mark.parametrize("rep", REPRESENTATIONS)
@pytest.mark.parametrize("bits", ALL_BITS)
def test_encode_decode_round_trip_every_integer(rep: str, bits: int) -> None:
    m = ref_qmax(bits)
    q = torch.tensor(list(range(-m, m + 1)), dtype=torch.int64)
    words = encode(q, bits, rep)
    assert words.shape == (2 * m + 1, 2 if rep == "differential" else 1)
    assert words.tolist() == [list(ref_words(v, bits, rep)) for v in range(-m, m + 1)]
    assert torch.equal(decode(words, bits, rep), q)


@settings(max_examples=200, deadline=None)
@given(layout_and_weights())
def test_cell_levels_match_reference(case: tuple[str, int, int, list[int]]) -> None:
    rep, bits, cb, qs = case
    levels = cell_levels(torch.tensor(qs), bits, rep, cb)
    expected = [[ref_slices(w, bits, rep, cb) for w in ref_words(q, bits, rep)] for q in qs]
    assert levels.tolist() == expected
    assert n_slices(bits, rep, cb) == len(expected[0][0])


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CELL_BITS),
    st.integers(1, 16),
    st.data(),
)
def test_slice_unslice_round_trip(cell_bits: int, n: int, data: st.DataObject) -> None:
    top = (1 << (n * cell_bits)) - 1
    words = data.draw(st.lists(st.integers(0, top), min_size=1, max_size=32))
    w = torch.tensor(words, dtype=torch.int64)
    levels = slice_words(w, n, cell_bits)
    assert levels.shape == (len(words), n)
    assert int(levels.min()) >= 0 and int(levels.max()) < 2**cell_bits
    # Each slice is a base-2**cell_bits digit, LSB first.
    assert levels.tolist() == [
        [(x >> (i * cell_bits)) & ((1 << cell_bits) - 1) for i in range(n)] for x in words
    ]
    assert unslice(levels, cell_bits).tolist() == words


@pytest.mark.parametrize("bits", ALL_BITS)
def test_twos_complement_of_minus_one_is_all_ones(bits: int) -> None:
    word = int(encode(torch.tensor([-1]), bits, "twos_complement")[0, 0])
    assert word == 2**bits - 1
    assert bin(word) == "0b" + "1" * bits
    for cb in CELL_BITS:
        if bits % cb == 0:
            levels = cell_levels(torch.tensor([-1]), bits, "twos_complement", cb)
            assert levels.flatten().tolist() == [2**cb - 1] * (bits // cb)


@pytest.mark.parametrize("bits", ALL_BITS)
def test_twos_complement_msb_weighs_minus_two_to_bits_minus_one(bits: int) -> None:
    m = ref_qmax(bits)
    q = torch.arange(-m, m + 1)
    words = encode(q, bits, "twos_complement")[:, 0].tolist()
    for v, word in zip(q.tolist(), words, strict=True):
        value = sum(((word >> k) & 1) * 2**k for k in range(bits - 1))
        value -= ((word >> (bits - 1)) & 1) * 2 ** (bits - 1)
        assert value == v


# ----------------------------------------------------------------------------- popcount
@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**62), min_size=1, max_size=64))
def test_popcount_matches_bin_count(xs: list[int]) -> None:
    assert popcount(torch.tensor(xs, dtype=torch.int64)).tolist() == [hw(x) for x in xs]


def test_popcount_of_zero_and_all_ones() -> None:
    xs = [0] + [2**k - 1 for k in range(1, 63)]
    assert popcount(torch.tensor(xs)).tolist() == list(range(63))


@pytest.mark.parametrize("rep", REPRESENTATIONS)
@pytest.mark.parametrize("bits", ALL_BITS)
def test_hamming_table_matches_reference(rep: str, bits: int) -> None:
    m = ref_qmax(bits)
    expected = [sum(hw(w) for w in ref_words(q, bits, rep)) for q in range(-m, m + 1)]
    assert hamming_table(bits, rep).tolist() == expected


@pytest.mark.parametrize(("rep", "bits", "cell_bits"), VALID_LAYOUTS)
def test_on_cell_table_matches_reference(rep: str, bits: int, cell_bits: int) -> None:
    m = ref_qmax(bits)
    expected = [
        sum(lvl > 0 for w in ref_words(q, bits, rep) for lvl in ref_slices(w, bits, rep, cell_bits))
        for q in range(-m, m + 1)
    ]
    assert on_cell_table(bits, rep, cell_bits).tolist() == expected


# ----------------------------------------------------------------------------- cell_stats
@settings(max_examples=200, deadline=None)
@given(layout_and_weights())
def test_cell_stats_match_brute_force(case: tuple[str, int, int, list[int]]) -> None:
    rep, bits, cb, qs = case
    stats = cell_stats(torch.tensor(qs), bits, rep, cb)

    levels = [
        lvl for q in qs for w in ref_words(q, bits, rep) for lvl in ref_slices(w, bits, rep, cb)
    ]
    hws = [sum(hw(w) for w in ref_words(q, bits, rep)) for q in qs]
    sets = 2 if rep == "differential" else 1
    slices = -(-ref_word_bits(bits, rep) // cb)

    assert stats.cells_total == len(qs) * sets * slices == len(levels)
    assert stats.cells_on == sum(lvl > 0 for lvl in levels)
    assert stats.hamming_weight == sum(hws)
    assert stats.level_counts == [levels.count(v) for v in range(2**cb)]
    assert sum(stats.level_counts) == stats.cells_total
    assert sum(stats.hw_hist) == len(qs)
    assert all(stats.hw_hist[h] == hws.count(h) for h in range(len(stats.hw_hist)))
    # With 1-bit cells an ON cell is a set bit.
    if cb == 1:
        assert stats.cells_on == stats.hamming_weight


def test_cell_stats_accepts_any_shape() -> None:
    q = torch.tensor([[[-3, 2], [0, 7]], [[-7, 1], [5, -1]]])
    flat = cell_stats(q.flatten(), 4, "twos_complement", 2)
    assert cell_stats(q, 4, "twos_complement", 2) == flat
    # Hand count: 4-bit two's complement words 1101 0010 0000 0111 1001 0001 0101 1111.
    assert flat.hamming_weight == 3 + 1 + 0 + 3 + 2 + 1 + 2 + 4
