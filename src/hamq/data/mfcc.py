"""MFCC features of the MLPerf Tiny keyword-spotting benchmark, in pure torch (batched, GPU).

For a 1 s clip at 16 kHz the result is (49, 10): 49 frames of 10 coefficients.

Conventions (each a choice where implementations differ):
    framing: 30 ms frames (480 samples) every 20 ms (320 samples), no centering and no
        padding of the signal (frame t covers samples [320 t, 320 t + 480)), so a clip of
        L samples gives 1 + (L - 480) // 320 frames; 49 for L = 16000. Each frame is
        multiplied by a periodic Hann window of 480 points and zero padded at its end to
        the FFT size 512 (``tf.signal.stft`` with ``fft_length=None``).
    spectrum: magnitude |X| (not power), 257 bins.
    mel: 40 triangular filters with unit peak (no area normalization) whose corners are
        equally spaced on the HTK mel scale, mel = 2595 log10(1 + f / 700), between 20 and
        4000 Hz; each triangle is linear in Hz between its corners (librosa
        ``filters.mel(htk=True, norm=None)``, torchaudio ``melscale_fbanks(mel_scale="htk")``).
        TF's ``linear_to_mel_weight_matrix``, used by MLPerf Tiny's reference, draws the same
        triangles linear in mel instead; at 16 kHz/512 bins the two differ by a few percent
        inside some filters.
    log: natural log of (mel + 1e-6), the offset of MLPerf Tiny's reference.
    DCT: orthonormal DCT-II over the 40 log-mel values (scipy/librosa ``norm="ortho"``),
        first 10 kept. TF's ``mfccs_from_log_mel_spectrograms`` scales every coefficient by
        sqrt(2 / 40), so its c0 is sqrt(2) times ours and the other nine are equal.
    input: float waveforms at full scale 1.0 (int16 / 32768).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class MfccSpec:
    """Feature parameters; the defaults are MLPerf Tiny KWS's.

    sample_rate_hz: input sample rate in Hz.
    window_samples: frame length in samples (480 = 30 ms at 16 kHz).
    hop_samples: frame stride in samples (320 = 20 ms).
    n_fft: FFT size in samples (>= window_samples; frames are zero padded at their end).
    n_mels: number of mel filters.
    f_min_hz, f_max_hz: lower and upper edge of the mel filter bank in Hz.
    n_mfcc: number of DCT coefficients kept.
    log_offset: added to the mel energies before the natural log.
    """

    sample_rate_hz: int = 16000
    window_samples: int = 480
    hop_samples: int = 320
    n_fft: int = 512
    n_mels: int = 40
    f_min_hz: float = 20.0
    f_max_hz: float = 4000.0
    n_mfcc: int = 10
    log_offset: float = 1e-6

    def __post_init__(self) -> None:
        if self.n_fft < self.window_samples:
            raise ValueError(f"n_fft {self.n_fft} < window_samples {self.window_samples}")
        if not 0.0 <= self.f_min_hz < self.f_max_hz <= self.sample_rate_hz / 2:
            raise ValueError(
                f"need 0 <= f_min_hz < f_max_hz <= {self.sample_rate_hz / 2} Hz, "
                f"got {self.f_min_hz}, {self.f_max_hz}"
            )
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"need 1 <= n_mfcc <= n_mels, got {self.n_mfcc}, {self.n_mels}")

    def num_frames(self, num_samples: int) -> int:
        """Frames of a clip of ``num_samples`` samples (49 for 16000 with the defaults)."""
        return 1 + (num_samples - self.window_samples) // self.hop_samples


def hz_to_mel(f_hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * torch.log10(1.0 + f_hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_fft: int, sample_rate_hz: int, n_mels: int, f_min_hz: float, f_max_hz: float
) -> torch.Tensor:
    """Triangular mel filters, (n_fft // 2 + 1, n_mels), float64, unit peak.

    Corners at n_mels + 2 points equally spaced in HTK mel between f_min_hz and f_max_hz;
    filter m rises linearly in Hz from corner m to m + 1 and falls to corner m + 2.
    """
    freqs = torch.linspace(0.0, sample_rate_hz / 2, n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = hz_to_mel(torch.tensor([f_min_hz, f_max_hz], dtype=torch.float64))
    corners = mel_to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64))
    left, center, right = corners[:-2], corners[1:-1], corners[2:]
    rising = (freqs[:, None] - left) / (center - left)
    falling = (right - freqs[:, None]) / (right - center)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def dct_ii_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II as a matrix, (n_in, n_out), float64: ``y = x @ D``.

    D[n, k] = s_k cos(pi k (2n + 1) / (2 n_in)), s_0 = sqrt(1 / n_in), s_k = sqrt(2 / n_in).
    """
    n = torch.arange(n_in, dtype=torch.float64)[:, None]
    k = torch.arange(n_out, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    d[:, 0] /= math.sqrt(2.0)
    return d


@lru_cache(maxsize=16)
def _matrices(
    spec: MfccSpec, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    window = torch.hann_window(spec.window_samples, periodic=True, dtype=torch.float64)
    fbank = mel_filterbank(
        spec.n_fft, spec.sample_rate_hz, spec.n_mels, spec.f_min_hz, spec.f_max_hz
    )
    dct = dct_ii_matrix(spec.n_mels, spec.n_mfcc)
    return tuple(m.to(device=device, dtype=dtype) for m in (window, fbank, dct))  # type: ignore[return-value]


def mfcc(wave: torch.Tensor, spec: MfccSpec | None = None) -> torch.Tensor:
    """MFCCs of a batch of clips.

    Args:
        wave: (N, L) float waveforms at ``spec.sample_rate_hz``, full scale 1.0.
        spec: feature parameters (default: MLPerf Tiny KWS).

    Returns:
        (N, T, n_mfcc) in the dtype of ``wave``; T = spec.num_frames(L) (49 for 1 s).
    """
    spec = spec or MfccSpec()
    if wave.dim() != 2 or wave.shape[1] < spec.window_samples:
        raise ValueError(f"wave must be (N, L >= {spec.window_samples}), got {tuple(wave.shape)}")
    window, fbank, dct = _matrices(spec, wave.device, wave.dtype)
    frames = wave.unfold(1, spec.window_samples, spec.hop_samples) * window  # (N, T, win)
    magnitude = torch.fft.rfft(frames, n=spec.n_fft).abs()  # (N, T, n_fft // 2 + 1)
    log_mel = torch.log(magnitude @ fbank + spec.log_offset)  # (N, T, n_mels)
    return log_mel @ dct
