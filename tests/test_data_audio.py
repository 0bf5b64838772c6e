"""Audio reading and resampling, the speaker-hash split, the audio-folder data set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hamq.data import DataConfig, load_dataset
from hamq.data.audio import load_clip
from hamq.data.split import (
    MAX_NUM_WAVS_PER_CLASS,
    speaker_id,
    speaker_splits,
    which_set,
)
from hamq.errors import HamqError


def tone(freq_hz: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    return float(np.argmax(spec) * rate / x.shape[0])


@pytest.mark.parametrize(
    ("rate", "fmt", "subtype"),
    [(8000, "WAV", "PCM_16"), (44100, "FLAC", "PCM_24"), (16000, "FLAC", "PCM_16")],
)
def test_clip_resampled_to_16k_keeps_its_tone(
    tmp_path: Path, rate: int, fmt: str, subtype: str
) -> None:
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, tone(1000.0, rate, 1.0), rate, format=fmt, subtype=subtype)
    clip = load_clip(path)
    assert clip.shape == (16000,) and clip.dtype == np.int16
    x = clip.astype(np.float64) / 32768
    assert abs(peak_hz(x, 16000) - 1000.0) <= 1.0
    # amplitude survives the polyphase filter (away from the edge transients)
    assert abs(np.abs(x[1000:15000]).max() - 0.5) < 0.01


def test_clip_padded_cropped_and_mixed_down(tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, tone(440, 16000, 0.25), 16000)
    clip = load_clip(short)
    assert clip.shape == (16000,) and np.all(clip[4000:] == 0) and np.any(clip[:4000] != 0)
    long_stereo = tmp_path / "long.wav"
    left, right = tone(440, 16000, 1.5), np.zeros(24000, np.float32)
    sf.write(long_stereo, np.stack([left, right], axis=1), 16000)
    clip = load_clip(long_stereo)
    expected = np.round(left[:16000] / 2 * 32768).astype(np.int16)
    assert np.abs(clip.astype(int) - expected).max() <= 1
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(HamqError, match=r"cannot read audio file '.*bad\.wav'"):
        load_clip(tmp_path / "bad.wav")


def test_speaker_id() -> None:
    assert speaker_id("0c540988_nohash_0.wav") == "0c540988"
    assert speaker_id("backward_0c540988_nohash_2.wav.flac") == "0c540988"
    assert speaker_id("1024.flac") == "1024"


def test_which_set_is_the_official_formula() -> None:
    # the formula of tensorflow/examples/speech_commands/input_data.py, written out
    for speaker in ["0c540988", "ffd2ba2f", "3bb68054", "c50225fa"]:
        h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
        pct = (h % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
        expected = "validation" if pct < 10 else "testing" if pct < 20 else "training"
        assert which_set(speaker, 10, 10) == expected


def test_split_is_deterministic_speaker_disjoint_and_proportional() -> None:
    rng = np.random.default_rng(0)
    speakers = [f"{rng.integers(0, 2**32):08x}" for _ in range(3000)]
    names = [f"{s}_nohash_{k}.wav" for s in speakers for k in range(2)]
    splits, mode = speaker_splits(names, 10, 10, "auto")
    assert mode == "official"
    assert splits == speaker_splits(list(names), 10, 10, "auto")[0]
    by_speaker: dict[str, set[str]] = {}
    for n, s in zip(names, splits, strict=True):
        by_speaker.setdefault(speaker_id(n), set()).add(s)
    assert all(len(v) == 1 for v in by_speaker.values())
    share = {k: splits.count(k) / len(splits) for k in ("validation", "testing")}
    assert abs(share["validation"] - 0.1) < 0.02 and abs(share["testing"] - 0.1) < 0.02


def test_auto_rehashes_a_folder_that_is_one_official_split() -> None:
    rng = np.random.default_rng(1)
    test_speakers = []
    while len(test_speakers) < 300:
        s = f"{rng.integers(0, 2**32):08x}"
        if which_set(s, 10, 10) == "testing":
            test_speakers.append(s)
    names = [f"{s}_nohash_0.wav" for s in test_speakers]
    official, _ = speaker_splits(names, 10, 10, "official")
    assert set(official) == {"testing"}
    splits, mode = speaker_splits(names, 10, 10, "auto")
    assert mode == "rehash" and splits == speaker_splits(names, 10, 10, "rehash")[0]
    assert 0.7 < splits.count("training") / len(splits) < 0.9


def write_clip(path: Path, freq: float, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(freq, rate, 1.0), rate)


def test_audio_folder_train_test_layout(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("test", 1)):
        for ci, c in enumerate(["hum", "whistle"]):
            for k in range(n):
                ext = "flac" if k % 2 else "wav"
                write_clip(tmp_path / split / c / f"{k}.{ext}", 300 + 2000 * ci, 8000)
    cfg = DataConfig(name="audio_folder", root=str(tmp_path), cache_dir=str(tmp_path / "c"))
    with pytest.warns(UserWarning, match="no background noise"):
        b = load_dataset(cfg)
    assert b.classes == ["hum", "whistle"]
    assert b.train_x.shape == (6, 16000) and b.test_x.shape == (2, 16000)
    assert b.train_y.tolist() == [0, 0, 0, 1, 1, 1] and b.input_shape == (1, 49, 10)
    feats = b.transform(b.test_x, False, None)
    assert feats.shape == (2, 1, 49, 10)
    g = torch.Generator().manual_seed(0)
    xb, yb = next(b.train_batches(4, g))
    assert xb.shape == (4, 1, 49, 10) and yb.shape == (4,)


def test_audio_folder_split_by_speaker_and_noise(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for c in ("a", "b"):
        for _ in range(40):
            write_clip(tmp_path / c / f"{rng.integers(0, 2**32):08x}_nohash_0.wav", 500)
    noise = (0.1 * rng.standard_normal(40000)).astype(np.float32)
    (tmp_path / "_background_noise_").mkdir()
    sf.write(tmp_path / "_background_noise_" / "n.wav", noise, 16000)
    b = load_dataset(DataConfig(name="audio_folder", root=str(tmp_path), cache=False))
    assert b.classes == ["a", "b"]
    assert b.train_x.shape[0] + b.test_x.shape[0] <= 80 and b.test_x.shape[0] > 0
    assert b.transform.noise is not None and b.transform.noise.shape == (1, 40000)
    x1 = b.transform(b.train_x[:8], True, torch.Generator().manual_seed(3))
    x2 = b.transform(b.train_x[:8], True, torch.Generator().manual_seed(3))
    assert torch.equal(x1, x2) and x1.shape == (8, 1, 49, 10)
    assert not torch.equal(x1, b.transform(b.train_x[:8], False, None))


def test_audio_errors(tmp_path: Path) -> None:
    with pytest.raises(HamqError, match="no class folders with WAV/FLAC"):
        load_dataset(DataConfig(name="audio_folder", root=str(tmp_path)))
    with pytest.raises(HamqError, match="is not a folder"):
        load_dataset(DataConfig(name="speech_commands", root=str(tmp_path / "x")))
    with pytest.raises(HamqError, match="no keyword folders"):
        load_dataset(DataConfig(name="speech_commands", root=str(tmp_path)))


def test_flat_fsdd_folder_k_fold_by_speaker_pattern(tmp_path: Path) -> None:
    """FSDD names (<digit>_<speaker>_<n>.wav) split speaker-disjoint by data.speaker_pattern;
    over data.folds runs every clip is tested once."""
    speakers = [f"spk{chr(97 + i)}{chr(97 + j)}" for i in range(6) for j in range(5)]
    for d in ("0", "1"):
        for s in speakers:
            write_clip(tmp_path / d / f"{d}_{s}_0.wav", 400 + 300 * int(d))
    pattern = r"^\d+_(?P<speaker>[a-z]+)_\d+"
    tested: list[bytes] = []
    for fold in range(3):
        cfg = DataConfig(
            name="audio_folder",
            root=str(tmp_path),
            cache=False,
            speaker_pattern=pattern,
            folds=3,
            fold=fold,
            validation_percent=20,
        )
        with pytest.warns(UserWarning, match="no background noise"):
            b = load_dataset(cfg)
        n = b.train_x.shape[0] + b.val_x.shape[0] + b.test_x.shape[0]
        assert n == 60
        tested += [bytes(x.numpy().tobytes()) for x in b.test_x]
    assert len(tested) == 60  # 30 speakers x 2 digits, each tested in exactly one fold
    with pytest.raises(HamqError, match="finds no speaker"):
        load_dataset(DataConfig(name="audio_folder", root=str(tmp_path), speaker_pattern=r"^(x)"))
