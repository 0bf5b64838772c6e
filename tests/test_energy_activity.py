"""Inputs to activity: quantized codes, popcount, the input-activity fast paths and the
per-row sums of conv taps, against plain Python."""

from __future__ import annotations

import pytest
import torch

from hamq.hardware.energy import (
    expected_activity,
    input_activity,
    input_schedule,
    popcount_u8,
    quantize_codes,
    row_activity,
)
from hamq.hardware.mapping import ConvGeometry


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("lo", "hi"), [(0, 255), (0, 15), (-127, 127), (-7, 7)])
def test_quantize_codes_rounds_half_to_even_and_clamps(
    dtype: torch.dtype, lo: int, hi: int
) -> None:
    """codes = clamp(round(x / scale), lo, hi), ties to even as torch.round, and uint8
    magnitudes; checked on every half step (all ties) and random values beyond the range."""
    scale = torch.tensor(0.375, dtype=dtype)
    halves = torch.arange(2 * lo - 5, 2 * hi + 6, dtype=dtype) / 2 * scale
    gen = torch.Generator().manual_seed(hi)
    noise = (torch.rand(4000, generator=gen, dtype=torch.float64) * 2.4 - 1.2) * (hi + 1) * 0.375
    x = torch.cat(
        (halves, noise.to(dtype), torch.tensor([float("inf"), -float("inf")], dtype=dtype))
    )
    codes, mag = quantize_codes(x, scale, lo, hi)
    # The quotient in x's own dtype, then Python's round (ties to even) and clamp.
    want = [round(min(max(v, lo), hi)) for v in (x / scale).tolist()]
    assert codes.dtype == dtype and mag.dtype == torch.uint8
    assert codes.tolist() == want
    assert mag.tolist() == [abs(v) for v in want]


@pytest.mark.parametrize(
    ("k", "s", "p", "d", "hw_in"),
    [
        ((3, 3), (1, 1), (1, 1), (1, 1), (5, 6)),
        ((10, 4), (2, 2), (5, 1), (1, 1), (49, 10)),  # DS-CNN's first layer
        ((3, 2), (2, 3), (0, 2), (2, 1), (9, 8)),
        ((1, 1), (1, 1), (0, 0), (1, 1), (4, 3)),
    ],
)
def test_row_activity_of_conv_taps_against_loops(k, s, p, d, hw_in) -> None:
    """Each conv row (c, i, j) sums the map under tap (i, j) over all output positions,
    padding excluded: a loop over output positions."""
    gen = torch.Generator().manual_seed(sum(hw_in))
    total = torch.randint(0, 50, (4, *hw_in), generator=gen).to(torch.float64)
    conv = ConvGeometry(k, s, p, d)
    got = row_activity(total, conv, groups=2)
    ho = (hw_in[0] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    wo = (hw_in[1] + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    want = torch.zeros(4, k[0], k[1], dtype=torch.float64)
    for c in range(4):
        for i in range(k[0]):
            for j in range(k[1]):
                for oy in range(ho):
                    for ox in range(wo):
                        y, x = oy * s[0] - p[0] + i * d[0], ox * s[1] - p[1] + j * d[1]
                        if 0 <= y < hw_in[0] and 0 <= x < hw_in[1]:
                            want[c, i, j] += total[c, y, x]
    assert got.shape == (2, 2 * k[0] * k[1])
    assert torch.equal(got.reshape(4, k[0], k[1]), want)
    assert conv.positions(hw_in) == ho * wo


def test_input_activity_of_a_large_batch_does_not_overflow() -> None:
    """5000 samples of 8 set bits: 40000 per element, past an int16 sum."""
    mag = torch.full((5000, 3), 255, dtype=torch.uint8)
    act, drv = input_activity(mag, input_schedule(8, False, 1))
    assert act.tolist() == [40000.0] * 3 and drv is act
