"""Batched augmentations against per-sample loops that apply the same random draws."""

from __future__ import annotations

import pytest
import torch

from hamq.data.augment import mix_background, random_crop_flip, time_shift


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_flip_matches_loop_and_is_deterministic() -> None:
    x = torch.randint(0, 256, (6, 3, 5, 7), generator=gen(9), dtype=torch.uint8)
    out = random_crop_flip(x, 2, gen(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(out, random_crop_flip(x, 2, gen(1)))
    assert not torch.equal(out, random_crop_flip(x, 2, gen(2)))
    # the same draws, in the order the function makes them
    g = gen(1)
    dy = torch.randint(0, 5, (6,), generator=g)
    dx = torch.randint(0, 5, (6,), generator=g)
    flip = torch.rand(6, generator=g) < 0.5
    for i in range(6):
        padded = torch.zeros(3, 9, 11, dtype=torch.uint8)
        padded[:, 2:7, 2:9] = x[i]
        crop = padded[:, dy[i] : dy[i] + 5, dx[i] : dx[i] + 7]
        ref = crop.flip(-1) if flip[i] else crop
        assert torch.equal(out[i], ref)


def test_crop_flip_without_padding_only_flips() -> None:
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    out = random_crop_flip(x, 0, gen(3))
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))


def test_time_shift_matches_loop() -> None:
    x = torch.randn(5, 50, generator=gen(4))
    out = time_shift(x, 7, gen(5))
    shift = torch.randint(0, 15, (5,), generator=gen(5)) - 7
    for i in range(5):
        s = int(shift[i])
        ref = torch.zeros(50)
        if s >= 0:
            ref[s:] = x[i, : 50 - s]  # delayed: zeros enter at the start
        else:
            ref[:s] = x[i, -s:]
        assert torch.equal(out[i], ref)
    assert torch.equal(time_shift(x, 0, gen(5)), x)


def test_mix_background_matches_loop() -> None:
    n, length = 8, 20
    x = torch.rand(n, length, generator=gen(6)) * 0.5
    x[3] = 0.0  # a synthesized silence clip: always gets noise
    noise = torch.rand(3, 45, generator=gen(7)) - 0.5
    lengths = torch.tensor([45, 20, 33])
    noise[2, 33:] = 0.0
    out = mix_background(x, noise, lengths, prob=0.5, volume=0.3, gen=gen(8))
    assert out.shape == x.shape
    assert torch.equal(out, mix_background(x, noise, lengths, 0.5, 0.3, gen(8)))
    g = gen(8)
    pick = torch.randint(0, 3, (n,), generator=g)
    start_u = torch.rand(n, generator=g)
    vol = torch.rand(n, generator=g) * 0.3
    apply = torch.rand(n, generator=g) < 0.5
    silent_vol = torch.rand(n, generator=g)
    for i in range(n):
        room = int(lengths[pick[i]]) - length + 1
        start = int(start_u[i] * room)
        assert 0 <= start and start + length <= int(lengths[pick[i]])
        v = silent_vol[i] if i == 3 else (vol[i] if apply[i] else 0.0)
        ref = (x[i] + v * noise[pick[i], start : start + length]).clamp(-1, 1)
        torch.testing.assert_close(out[i], ref)
    assert out[3].abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_equals_cpu_batch() -> None:
    """Draws come from the generator's device, so a CPU generator gives the same batch on
    either device; MFCCs agree to float tolerance."""
    from hamq.data.mfcc import mfcc

    x = torch.randint(0, 256, (16, 3, 32, 32), generator=gen(0), dtype=torch.uint8)
    cpu = random_crop_flip(x, 4, gen(1))
    assert torch.equal(random_crop_flip(x.cuda(), 4, gen(1)).cpu(), cpu)
    w = torch.randn(4, 16000, generator=gen(2)) * 0.1
    torch.testing.assert_close(mfcc(w.cuda()).cpu(), mfcc(w), atol=1e-3, rtol=1e-4)
