"""Speech Commands on small folders built in its layout; DataConfig validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hamq.data import DataConfig, load_dataset
from hamq.data.speech import CLASSES
from hamq.data.split import speaker_id, which_set
from hamq.errors import HamqError

SILENCE, UNKNOWN = 0, 1


def speakers_by_split(n_each: int) -> dict[str, list[str]]:
    """Speaker ids whose official split is known, ``n_each`` per split."""
    out: dict[str, list[str]] = {"training": [], "validation": [], "testing": []}
    k = 0
    while min(len(v) for v in out.values()) < n_each:
        s = f"{k:08x}"
        split = which_set(s, 10, 10)
        if len(out[split]) < n_each:
            out[split].append(s)
        k += 1
    return out


def write(path: Path, seconds: float = 1.0, rate: int = 16000, amp: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = amp * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)
    sf.write(path, x.astype(np.float32), rate)


def build_full_layout(root: Path) -> dict[str, list[str]]:
    """Keyword folders for yes/no, two other words, a background-noise folder."""
    spk = speakers_by_split(3)
    for split in spk.values():
        for s in split:
            for word in ("yes", "no", "cat", "dog", "tree"):
                write(root / word / f"{s}_nohash_0.wav")
    write(root / "_background_noise_" / "white.wav", seconds=3.0)
    return spk


def test_speaker_hash_split_unknown_and_silence(tmp_path: Path) -> None:
    build_full_layout(tmp_path)
    cfg = DataConfig(name="speech_commands", root=str(tmp_path), unknown_percent=50.0, cache=False)
    b = load_dataset(cfg)
    assert b.classes == list(CLASSES) and b.input_shape == (1, 49, 10)
    # training: 3 speakers x 2 keywords = 6 keyword clips; unknown = ceil(6 * 50%) = 3 of 9
    # other-word clips; silence = ceil(6 * 10%) = 1 zero clip
    counts = torch.bincount(b.train_y, minlength=12)
    assert counts[CLASSES.index("yes")] == 3 and counts[CLASSES.index("no")] == 3
    assert counts[UNKNOWN] == 3 and counts[SILENCE] == 1
    assert torch.bincount(b.test_y, minlength=12)[UNKNOWN] == 3
    silent = b.train_x[b.train_y == SILENCE]
    assert silent.abs().max() == 0  # synthesized silence is all zeros
    assert b.transform.noise is not None and b.transform.noise.shape == (1, 48000)
    # the train-mode transform fills silence with noise, deterministically
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, c = b.transform(silent, True, g1), b.transform(silent, True, g2)
    assert torch.equal(a, c) and not torch.equal(a, b.transform(silent, False, None))


def test_official_lists_take_precedence(tmp_path: Path) -> None:
    spk = build_full_layout(tmp_path)
    # put one training speaker's yes clip into the testing list (lists name .wav files)
    moved = f"yes/{spk['training'][0]}_nohash_0.wav"
    (tmp_path / "testing_list.txt").write_text(moved + "\n")
    (tmp_path / "validation_list.txt").write_text("")
    b = load_dataset(DataConfig(name="speech_commands", root=str(tmp_path), cache=False))
    counts = torch.bincount(b.test_y, minlength=12)
    assert counts[CLASSES.index("yes")] == 1 and counts[CLASSES.index("no")] == 0
    assert torch.bincount(b.train_y, minlength=12)[CLASSES.index("yes")] == 8


def test_shared_test_set_layout_rehash(tmp_path: Path) -> None:
    """Like the shared archive: _silence_ and _unknown_ folders, .wav.flac unknown names,
    every speaker in the official testing part, no background-noise folder."""
    spk = speakers_by_split(40)["testing"]
    for i, s in enumerate(spk):
        write(tmp_path / ("yes" if i % 2 else "go") / f"{s}_nohash_0.flac")
        write(tmp_path / "_unknown_" / f"bed_{s}_nohash_1.wav.flac")
        write(tmp_path / "_silence_" / f"{1000 + i}.flac", amp=0.01)
    cfg = DataConfig(name="speech_commands", root=str(tmp_path), cache_dir=str(tmp_path / "c"))
    b = load_dataset(cfg)
    n_train, n_test = b.train_x.shape[0], b.test_x.shape[0]
    assert n_test > 0 and n_train > 2 * n_test  # rehashed: roughly 80 / 10 / 10
    counts = torch.bincount(b.train_y, minlength=12)
    assert counts[UNKNOWN] > 0 and counts[SILENCE] > 0  # folders taken whole, no zero clips
    assert b.train_x[b.train_y == SILENCE].abs().amax(dim=1).min() > 0
    # without a noise folder the training split's silence clips are the noise bank
    assert b.transform.noise is not None
    assert b.transform.noise.shape[0] == int(counts[SILENCE])
    again = load_dataset(cfg)  # from the cache: identical
    assert torch.equal(again.train_x, b.train_x) and torch.equal(again.test_y, b.test_y)
    official = DataConfig(
        name="speech_commands", root=str(tmp_path), speaker_split="official", cache=False
    )
    b_off = load_dataset(official)
    keyword = b_off.train_y >= 2
    assert int(keyword.sum()) == 0  # the official rule leaves no keyword clip for training


def test_speaker_disjoint_parts(tmp_path: Path) -> None:
    from hamq.data.speech import split_clips

    spk = speakers_by_split(30)["testing"]
    for s in spk:
        for k in range(3):
            write(tmp_path / "up" / f"{s}_nohash_{k}.wav", seconds=0.05)
    files = sorted((tmp_path / "up").iterdir())
    splits = split_clips(tmp_path, files, 10, 10, "auto")
    seen: dict[str, str] = {}
    for f, s in zip(files, splits, strict=True):
        assert seen.setdefault(speaker_id(f.name), s) == s
    assert splits == split_clips(tmp_path, files, 10, 10, "auto")


def test_config_rejects_audio_options_for_images() -> None:
    from hamq.config_base import validate

    with pytest.raises(HamqError, match="time_shift_ms is used only by data sets"):
        validate(DataConfig, {"name": "cifar10", "time_shift_ms": 50})
    with pytest.raises(HamqError, match="unknown_percent is used only by data sets speech"):
        validate(DataConfig, {"name": "audio_folder", "unknown_percent": 5})
    with pytest.raises(HamqError, match="leaves no training clips"):
        validate(
            DataConfig, {"name": "speech_commands", "validation_percent": 50, "testing_percent": 50}
        )
    with pytest.raises(HamqError, match="background_noise_prob"):
        validate(DataConfig, {"name": "speech_commands", "background_noise_prob": 1.5})
    # a saved config lists every field at its default: fine for any data set
    full = DataConfig(name="cifar10").model_dump()
    assert validate(DataConfig, full).name == "cifar10"
