"""LFSRs against hand-written references and known answers from the theory of GF(2)
polynomials: periods of primitive and non-primitive polynomials, and the number of
primitive polynomials of each degree, phi(2**n - 1) / n."""

from __future__ import annotations

from math import gcd

import pytest

from hamq.sparsity.lfsr import (
    check_poly,
    is_primitive,
    lfsr_cycle,
    lfsr_period,
    lfsr_states,
    lfsr_step,
    poly_str,
)


def ref_fibonacci(poly: list[int], seed: int, count: int) -> list[int]:
    """The sequence a_t with a_{t+n} = a_t + sum_{0<e<n} a_{t+e} (mod 2), a_0..a_{n-1} the
    seed's bits; state t = sum_j a_{t+j} 2**j."""
    n = max(poly)
    a = [(seed >> j) & 1 for j in range(n)]
    while len(a) < count + n:
        t = len(a) - n
        bit = a[t]
        for e in poly:
            if e < n:
                bit ^= a[t + e]
        a.append(bit)
    return [sum(a[t + j] << j for j in range(n)) for t in range(count)]


def ref_galois(poly: list[int], seed: int, count: int) -> list[int]:
    """Repeated multiplication by x modulo p(x), on coefficient lists."""
    n = max(poly)
    p = [0] * (n + 1)
    p[0] = 1
    for e in poly:
        p[e] = 1
    c = [(seed >> j) & 1 for j in range(n)]
    out = []
    for _ in range(count):
        out.append(sum(b << j for j, b in enumerate(c)))
        c = [0, *c]  # times x: degree up to n
        if c[n]:
            c = [ci ^ pi for ci, pi in zip(c, p, strict=True)]
        c = c[:n]
    return out


def phi(m: int) -> int:
    return sum(1 for k in range(1, m + 1) if gcd(k, m) == 1)


POLYS = [[9, 4], [4, 1], [4, 3], [4, 2], [4, 3, 2, 1], [5, 2], [6, 5, 3, 2], [3, 1]]


@pytest.mark.parametrize("poly", POLYS, ids=[poly_str(p) for p in POLYS])
@pytest.mark.parametrize("seed", [1, 5, 6])
def test_steps_match_hand_written_references(poly: list[int], seed: int) -> None:
    assert lfsr_states(poly, seed, 40, "fibonacci") == ref_fibonacci(poly, seed, 40)
    assert lfsr_states(poly, seed, 40, "galois") == ref_galois(poly, seed, 40)
    assert lfsr_step(seed, poly, "fibonacci") == ref_fibonacci(poly, seed, 2)[1]


def test_x4_x_1_by_hand() -> None:
    # Galois, p = x^4 + x + 1: 1, x, x^2, x^3, x^4 = x + 1 (0b0011), x^2 + x (0b0110), ...
    assert lfsr_states([4, 1], 1, 7, "galois") == [1, 2, 4, 8, 3, 6, 12]
    # Fibonacci, a_{t+4} = a_t + a_{t+1}: from 0001 the new bit is 1, shifted in at the top.
    assert lfsr_states([4, 1], 1, 4, "fibonacci") == [1, 8, 4, 2]


@pytest.mark.parametrize("form", ["fibonacci", "galois"])
def test_known_periods(form: str) -> None:
    for seed in (1, 2, 100, 511):
        assert lfsr_period([9, 4], seed, form) == 511  # x^9 + x^4 + 1: primitive
    assert lfsr_period([4, 1], 1, form) == 15
    assert lfsr_period([4, 3], 7, form) == 15
    # x^4 + x^3 + x^2 + x + 1 divides x^5 - 1: irreducible, every non-zero state has period 5
    assert {lfsr_period([4, 3, 2, 1], s, form) for s in range(1, 16)} == {5}
    # x^4 + x^2 + 1 = (x^2 + x + 1)^2: the 3 non-zero states killed by x^2 + x + 1 have
    # period 3, the other 12 period 6 (cycles 1 x 3 and 2 x 6).
    periods = sorted(lfsr_period([4, 2], s, form) for s in range(1, 16))
    assert periods == [3] * 3 + [6] * 12


@pytest.mark.parametrize("n", range(2, 9))
def test_number_of_primitive_polynomials(n: int) -> None:
    # Every polynomial of degree n with constant term 1: x^n + any subset of x^1..x^(n-1).
    count = 0
    for mask in range(2 ** (n - 1)):
        poly = [n, *(e for e in range(1, n) if mask >> e - 1 & 1)]
        count += is_primitive(poly)
    assert count == phi(2**n - 1) // n


def test_primitive_trinomials_of_degree_9() -> None:
    # Tables of primitive trinomials: x^9 + x^4 + 1 and its reciprocal x^9 + x^5 + 1 only.
    assert [k for k in range(1, 9) if is_primitive([9, k])] == [4, 5]


@pytest.mark.parametrize("poly", [[4, 2], [5, 2], [4, 3, 2, 1]])
def test_fibonacci_and_galois_have_the_same_cycles(poly: list[int]) -> None:
    n = max(poly)
    fib = sorted(lfsr_period(poly, s, "fibonacci") for s in range(1, 2**n))
    gal = sorted(lfsr_period(poly, s, "galois") for s in range(1, 2**n))
    assert fib == gal


def test_cycle_is_one_period_of_distinct_states() -> None:
    cyc = lfsr_cycle((9, 4), 3, "fibonacci")
    assert len(cyc) == 511 and len(set(cyc)) == 511 and cyc[0] == 3
    assert set(cyc) == set(range(1, 512))
    short = lfsr_cycle((4, 2), 1, "galois")
    assert len(short) == lfsr_period([4, 2], 1, "galois") and len(set(short)) == len(short)


def test_period_cap() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        lfsr_period([9, 4], 1, max_steps=100)


@pytest.mark.parametrize(
    ("poly", "needle"),
    [
        ([], "at least one"),
        ([9, 9], "repeat"),
        ([0, 4], "outside"),
        ([21, 2], "outside"),
        ([1], "at least 2"),
        ([4.5], "not an integer"),
    ],
)
def test_bad_polynomials(poly: list, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        check_poly(poly)


@pytest.mark.parametrize("seed", [0, 16, -1])
def test_bad_seeds(seed: int) -> None:
    with pytest.raises(ValueError, match="seed"):
        lfsr_states([4, 1], seed, 3)
