"""Linear-feedback shift registers (LFSRs) over GF(2), as pure functions on Python ints.

A feedback polynomial is given by the exponents of its non-constant terms; the constant
term 1 is always present (it makes the step invertible, so every state lies on a cycle):
``[9, 4]`` is ``x^9 + x^4 + 1``. Its degree ``n`` (the largest exponent) is the register
length; a state is an int in ``1 .. 2**n - 1`` (the all-zero state is a fixed point and
never a seed), bit ``j`` being register cell ``j``.

Two forms, the two ways hardware wires the same polynomial ``p(x) = x^n + sum c_i x^i``:

- **Fibonacci** (external XOR): the cells hold ``n`` consecutive terms of the sequence
  ``a_t`` (bit ``j`` = ``a_{t+j}``); one step shifts right by one and puts the feedback
  ``a_{t+n} = a_t XOR (XOR of a_{t+i} for every c_i = 1, 0 < i < n)`` into cell ``n - 1``.
- **Galois** (internal XOR): the state is a polynomial of degree < n (bit ``j`` = the
  coefficient of ``x^j``) and one step multiplies it by ``x`` modulo ``p(x)``: shift left;
  if bit ``n`` came out set, XOR the polynomial in.

Both are linear maps with similar matrices (the companion matrix of ``p`` and its
transpose), so they have the same cycle lengths; they visit states in different orders.
The *period* of a seed is the length of its cycle. ``p`` is *primitive* when every non-zero
state has period ``2**n - 1`` (the register visits all of them), e.g. ``x^9 + x^4 + 1``
(511) or ``x^4 + x + 1`` (15); ``x^4 + x^2 + 1 = (x^2 + x + 1)^2`` is not (periods 3 or 6,
depending on the seed), nor is ``x^4 + x^3 + x^2 + x + 1`` (irreducible, period 5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Literal, get_args

Form = Literal["fibonacci", "galois"]
FORMS: tuple[str, ...] = get_args(Form)
MAX_DEGREE = 20  # 2**20 - 1 states: a period found by stepping in about a second
DEFAULT_POLY: tuple[int, ...] = (9, 4)  # x^9 + x^4 + 1, primitive: period 511


def check_poly(poly: Sequence[int]) -> tuple[int, ...]:
    """The exponents as a tuple sorted high to low; ValueError naming what is wrong.

    Valid: at least one exponent, all distinct integers in ``1 .. MAX_DEGREE``, degree >= 2.
    """
    exps = tuple(poly)
    if not exps:
        raise ValueError("a polynomial needs at least one exponent, e.g. [9, 4] for x^9+x^4+1")
    for e in exps:
        if isinstance(e, bool) or not isinstance(e, int):
            raise ValueError(f"exponent {e!r} is not an integer")
        if not 1 <= e <= MAX_DEGREE:
            raise ValueError(
                f"exponent {e} is outside 1..{MAX_DEGREE} (the constant term 1 is implied)"
            )
    if len(set(exps)) != len(exps):
        raise ValueError(f"exponents {list(exps)} repeat one")
    exps = tuple(sorted(exps, reverse=True))
    if exps[0] < 2:
        raise ValueError("the degree (largest exponent) must be at least 2")
    return exps


def poly_str(poly: Sequence[int]) -> str:
    """``x^9+x^4+1`` for ``[9, 4]``."""
    return "+".join([f"x^{e}" if e > 1 else "x" for e in sorted(poly, reverse=True)] + ["1"])


def degree(poly: Sequence[int]) -> int:
    """Register length n: the largest exponent."""
    return max(check_poly(poly))


def _masks(poly: Sequence[int]) -> tuple[int, int, int]:
    """(n, Fibonacci tap mask, Galois feedback mask) of a checked polynomial."""
    exps = check_poly(poly)
    n = exps[0]
    low = 1  # the constant term
    for e in exps[1:]:
        low |= 1 << e
    return n, low, low  # Fibonacci taps cells {0} u {i : c_i = 1}; Galois XORs p - x^n


def check_seed(seed: int, poly: Sequence[int]) -> int:
    """The seed, if it is a non-zero state of the register; ValueError otherwise."""
    n = degree(poly)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= 2**n - 1:
        raise ValueError(
            f"seed {seed!r} is not a state of the {n}-bit register of {poly_str(poly)}: "
            f"give an integer in 1..{2**n - 1} (0 is the stuck all-zero state)"
        )
    return seed


def _stepper(poly: Sequence[int], form: Form) -> Callable[[int], int]:
    """The step function of a checked polynomial and form (masks computed once)."""
    n, taps, fb = _masks(poly)
    top, full = 1 << (n - 1), (1 << n) | fb
    if form == "fibonacci":
        return lambda s: (s >> 1) | (top if (s & taps).bit_count() & 1 else 0)
    if form == "galois":
        return lambda s: (s << 1) ^ full if s & top else s << 1
    raise ValueError(f"unknown LFSR form '{form}'; allowed: {', '.join(FORMS)}")


def lfsr_step(state: int, poly: Sequence[int], form: Form = "fibonacci") -> int:
    """The state after one clock of the register."""
    return _stepper(poly, form)(state)


def lfsr_states(poly: Sequence[int], seed: int, count: int, form: Form = "fibonacci") -> list[int]:
    """The first ``count`` states the register holds, starting with ``seed`` itself."""
    check_seed(seed, poly)
    step = _stepper(poly, form)
    out, s = [], seed
    for _ in range(count):
        out.append(s)
        s = step(s)
    return out


def lfsr_period(
    poly: Sequence[int], seed: int = 1, form: Form = "fibonacci", max_steps: int = 2**MAX_DEGREE
) -> int:
    """Length of the cycle through ``seed``, by stepping until the seed comes back.

    The step is invertible (constant term 1), so the seed always comes back, after at most
    ``2**n - 1`` steps; ``max_steps`` caps the work (ValueError when it is reached).
    """
    check_seed(seed, poly)
    step = _stepper(poly, form)
    s, steps = step(seed), 1
    while s != seed:
        if steps >= max_steps:
            raise ValueError(f"period of {poly_str(poly)} exceeds max_steps = {max_steps}")
        s, steps = step(s), steps + 1
    return steps


def is_primitive(poly: Sequence[int]) -> bool:
    """True when the register visits every non-zero state (period ``2**n - 1``).

    The period of the state 1 decides it: if 1 lies on the full cycle, every state does.
    """
    n = degree(poly)
    return lfsr_period(poly, 1, "galois") == 2**n - 1


@lru_cache(maxsize=64)
def lfsr_cycle(poly: tuple[int, ...], seed: int, form: Form = "fibonacci") -> tuple[int, ...]:
    """One full cycle of states from ``seed`` (length = its period), cached."""
    return tuple(lfsr_states(poly, seed, lfsr_period(poly, seed, form), form))
