"""Input activity: popcount and the batch-activity fast paths against plain Python."""

from __future__ import annotations

import pytest
import torch

from hamq.hardware.energy import (
    expected_activity,
    input_activity,
    input_schedule,
    popcount_u8,
)


def test_popcount_u8_matches_python() -> None:
    x = torch.arange(256, dtype=torch.int64).to(torch.uint8).reshape(16, 16)
    got = popcount_u8(x).to(torch.int64).reshape(-1).tolist()
    assert got == [bin(v).count("1") for v in range(256)]
    odd = torch.tensor([255, 7, 1], dtype=torch.uint8)  # length not a multiple of 8
    assert popcount_u8(odd).tolist() == [8, 3, 1]


@pytest.mark.parametrize("a_bits", [2, 4, 5, 8])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_input_activity_matches_python(a_bits: int, signed: bool, k: int) -> None:
    """Activity = sum over digits of |x| (base 2**k) of digit / (2**k - 1); driven = number
    of non-zero digits; both summed over the batch."""
    sched = input_schedule(a_bits, signed, k)
    m = sched.magnitude_bits
    gen = torch.Generator().manual_seed(a_bits * 100 + k * 10 + signed)
    hi = 2**m - 1
    codes = torch.randint(-hi if signed else 0, hi + 1, (5, 3, 2), generator=gen)
    act, drv = input_activity(codes, sched)
    want_act = torch.zeros(3, 2, dtype=torch.float64)
    want_drv = torch.zeros(3, 2, dtype=torch.float64)
    for b in range(5):
        for i in range(3):
            for j in range(2):
                v = abs(int(codes[b, i, j]))
                for t in range(-(-m // k)):
                    d = (v >> (t * k)) & (2**k - 1)
                    want_act[i, j] += d / (2**k - 1)
                    want_drv[i, j] += d > 0
    assert torch.allclose(act, want_act, rtol=1e-12, atol=0)
    assert torch.equal(drv, want_drv)


def test_expected_activity() -> None:
    """8-bit unsigned input, k = 3: digits of 3, 3 and 2 bits. With p = 0.5:
    activity = 0.5 * (7 + 7 + 3) / 7 = 17/14; driven = 2 * (1 - 0.125) + (1 - 0.25) = 2.5."""
    act, drv = expected_activity(input_schedule(8, False, 3), 0.5)
    assert act == pytest.approx(17 / 14)
    assert drv == pytest.approx(2.5)
