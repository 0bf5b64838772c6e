"""Batched training augmentations that run on the device where the batch lives.

Every function takes a whole batch and draws all its randomness from the given
``torch.Generator`` (on the generator's own device, then moved to the batch's device), so the
same generator state gives the same batch on CPU and GPU alike, and there is no per-sample
Python loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _uniform(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=gen.device).to(device)


def _randint(high: int, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=gen, device=gen.device).to(device)


def random_crop_flip(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip, per image.

    Args:
        x: (N, C, H, W) images, any dtype (uint8 stays uint8).
        pad: zero padding on every side in pixels; the crop offset is uniform in
            [0, 2 * pad] along each axis (torchvision's ``RandomCrop(H, padding=pad)``).
        gen: source of randomness; each image is flipped with probability 1/2.

    Returns:
        (N, C, H, W) tensor of the same dtype and device.
    """
    n, c, h, w = x.shape
    dev = x.device
    dy = _randint(2 * pad + 1, n, gen, dev)
    dx = _randint(2 * pad + 1, n, gen, dev)
    flip = _uniform(n, gen, dev) < 0.5
    padded = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = dy[:, None] + ar_h  # (N, H)
    # a flip reads the crop's columns right to left
    cols = dx[:, None] + torch.where(flip[:, None], (w - 1) - ar_w, ar_w)  # (N, W)
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chan = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def time_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each clip by a uniform integer in [-max_shift, max_shift] samples, zero-filled.

    A positive shift delays the clip (zeros enter at the start), as in TF's speech_commands
    ``input_data`` time-shift augmentation.

    Args:
        x: (N, L) waveforms.
        max_shift: largest shift in samples (>= 0).

    Returns:
        (N, L) tensor of the same dtype and device.
    """
    n, length = x.shape
    if max_shift == 0:
        return x
    shift = _randint(2 * max_shift + 1, n, gen, x.device) - max_shift
    src = torch.arange(length, device=x.device) - shift[:, None]  # (N, L) source index
    valid = (src >= 0) & (src < length)
    out = torch.gather(x, 1, src.clamp(0, length - 1))
    return torch.where(valid, out, torch.zeros((), dtype=x.dtype, device=x.device))


def mix_background(
    x: torch.Tensor,
    noise: torch.Tensor,
    noise_lengths: torch.Tensor,
    prob: float,
    volume: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """Add a random 1-clip excerpt of background noise to clips, with probability ``prob``.

    Per clip: a noise recording chosen uniformly, a start offset uniform over the positions
    where the excerpt fits, a volume uniform in [0, volume]. As in TF's speech_commands
    ``input_data``, a clip that is all zeros (synthesized silence) always gets noise, at a
    volume uniform in [0, 1]. The sum is clipped to [-1, 1].

    Args:
        x: (N, L) float waveforms, full scale 1.0.
        noise: (F, Lmax) float noise recordings, zero padded to the longest.
        noise_lengths: (F,) int64 true length of each recording, each >= L.
        prob: probability of mixing noise into a non-silent clip.
        volume: upper bound of the noise amplitude factor.

    Returns:
        (N, L) float tensor.
    """
    n, length = x.shape
    dev = x.device
    pick = _randint(noise.shape[0], n, gen, dev)
    room = (noise_lengths.to(dev)[pick] - length + 1).to(torch.float32)  # valid offsets
    start = (_uniform(n, gen, dev) * room).floor().to(torch.int64)
    vol = _uniform(n, gen, dev) * volume
    apply = _uniform(n, gen, dev) < prob
    silent_vol = _uniform(n, gen, dev)
    silent = x.abs().amax(dim=1) == 0
    vol = torch.where(silent, silent_vol, torch.where(apply, vol, torch.zeros_like(vol)))
    flat = pick[:, None] * noise.shape[1] + start[:, None] + torch.arange(length, device=dev)
    excerpt = noise.reshape(-1)[flat]
    return (x + vol[:, None].to(x.dtype) * excerpt.to(x.dtype)).clamp(-1.0, 1.0)
