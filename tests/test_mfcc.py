"""MFCC features against librosa (an independent implementation), configured to the same
conventions: no centering, 480-sample periodic Hann window zero padded to 512 at its end,
magnitude spectrum, HTK mel filters 20-4000 Hz without normalization, ln(x + 1e-6),
orthonormal DCT-II."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch

from hamq.data.mfcc import MfccSpec, dct_ii_matrix, mel_filterbank, mfcc

librosa = pytest.importorskip("librosa")

SR = 16000


def librosa_mfcc(y: np.ndarray) -> np.ndarray:
    """(49, 10) reference. librosa centres a 480-sample window inside its 512-sample frame,
    i.e. 16 samples in; padding the signal by 16 zeros in front makes frame t cover exactly
    samples [320 t, 320 t + 480) of ``y``, as in tf.signal.stft."""
    spec = np.abs(
        librosa.stft(
            np.pad(y, (16, 0)),
            n_fft=512,
            hop_length=320,
            win_length=480,
            window="hann",
            center=False,
        )
    )
    mel = librosa.filters.mel(sr=SR, n_fft=512, n_mels=40, fmin=20, fmax=4000, htk=True, norm=None)
    log_mel = np.log(mel @ spec + 1e-6)
    return librosa.feature.mfcc(S=log_mel, n_mfcc=10, dct_type=2, norm="ortho").T


def signals() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    chirp = np.sin(2 * np.pi * (100 + 1900 * t) * t)
    return [
        0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(SR),
        0.2 * np.sin(2 * np.pi * 1234.5 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t),
        0.5 * chirp * np.hanning(SR),
        0.05 * rng.standard_normal(SR),
        np.concatenate([np.zeros(SR // 2), 0.4 * np.sin(2 * np.pi * 700 * t[: SR // 2])]),
    ]


def test_mfcc_matches_librosa_float64() -> None:
    ys = signals()
    ours = mfcc(torch.tensor(np.stack(ys)))  # one batch: rows must not interact
    assert ours.shape == (len(ys), 49, 10)
    for i, y in enumerate(ys):
        np.testing.assert_allclose(ours[i].numpy(), librosa_mfcc(y), atol=1e-6, rtol=0)


def test_mfcc_float32_close_to_librosa() -> None:
    ys = signals()
    ours = mfcc(torch.tensor(np.stack(ys), dtype=torch.float32))
    assert ours.dtype == torch.float32
    for i, y in enumerate(ys):
        ref = librosa_mfcc(y)
        assert np.abs(ours[i].numpy() - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())


def test_filterbank_and_dct_match_references() -> None:
    ours = mel_filterbank(512, SR, 40, 20.0, 4000.0).numpy()
    ref = librosa.filters.mel(sr=SR, n_fft=512, n_mels=40, fmin=20, fmax=4000, htk=True, norm=None)
    np.testing.assert_allclose(ours.T, ref, atol=1e-6)
    x = np.random.default_rng(1).standard_normal((3, 40))
    d = dct_ii_matrix(40, 10).numpy()
    np.testing.assert_allclose(x @ d, scipy.fft.dct(x, type=2, norm="ortho")[:, :10], atol=1e-12)


def test_frame_count_and_spec_validation() -> None:
    spec = MfccSpec()
    assert spec.num_frames(16000) == 49  # 1 + (16000 - 480) // 320
    assert mfcc(torch.zeros(2, 8000)).shape == (2, 24, 10)
    with pytest.raises(ValueError, match="f_max_hz"):
        MfccSpec(f_max_hz=9000.0)
    with pytest.raises(ValueError, match="wave must be"):
        mfcc(torch.zeros(16000))
