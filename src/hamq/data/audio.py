"""Audio clips: WAV/FLAC reading, resampling to 16 kHz, the KWS feature transform, and the
generic audio-folder data set.

Clips are read with soundfile (libsndfile: WAV and FLAC, any bit depth), mixed down to mono,
resampled to 16 kHz with scipy's polyphase filter (``resample_poly``), then zero padded or
cut at their end to exactly one second, as TF's ``decode_wav(desired_samples=16000)`` does.
They are stored as int16 (N, 16000), half the memory of float32; the transform turns a
batch on the device into MFCC features (N, 1, 49, 10), augmenting in train mode.
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hamq.data import augment
from hamq.data.bundle import DataBundle
from hamq.data.cache import cached, resolve_cache_dir
from hamq.data.mfcc import MfccSpec, mfcc
from hamq.data.root import require_root
from hamq.data.split import VALIDATION_SALT, hash_percentage, speaker_splits, speakers_of
from hamq.errors import HamqError

if TYPE_CHECKING:
    from hamq.data import DataConfig

SAMPLE_RATE_HZ = 16000
CLIP_SAMPLES = 16000
AUDIO_EXTENSIONS = (".wav", ".flac")
BACKGROUND_FOLDER = "_background_noise_"
#: int16 full scale: a stored sample s means s / 32768 in [-1, 1).
INT16_SCALE = 32768.0
LOADER_VERSION = 1
#: Sample rates read (Hz): telephone 8 kHz to studio 384 kHz, with margin. Outside this a
#: "recording" is a damaged header, and resampling from it could need gigabytes of filter.
MIN_RATE_HZ, MAX_RATE_HZ = 1000, 384000
#: Longest recording read (background noise files run a few minutes).
MAX_SECONDS = 3600
#: Most channels of a recording (they are mixed down to mono).
MAX_CHANNELS = 64


def _wav_truncated(path: Path) -> bool:
    """Whether a RIFF/WAVE file's ``data`` chunk claims more bytes than the file holds.

    libsndfile reads such a file without complaint, returning the samples that are there;
    the clip would then be silently zero padded.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        pos = 12
        while pos + 8 <= size:  # each chunk advances by at least 8 bytes
            f.seek(pos)
            chunk, n = struct.unpack("<4sI", f.read(8))
            if chunk == b"data":
                return n not in (0, 0xFFFFFFFF) and pos + 8 + n > size
            pos += 8 + n + (n & 1)
    return False


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate in Hz) of a WAV or FLAC file.

    Refuses (HamqError naming the file) unreadable, truncated and empty files, sample rates
    outside ``MIN_RATE_HZ .. MAX_RATE_HZ``, recordings over ``MAX_SECONDS`` and samples that
    are NaN or infinite.
    """
    import soundfile

    fix = "replace or remove the file"
    try:
        info = soundfile.info(str(path))
        rate = int(info.samplerate)
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise HamqError(
                f"audio file '{path}' has a sample rate of {rate} Hz, outside the "
                f"{MIN_RATE_HZ}..{MAX_RATE_HZ} Hz of real recordings; {fix}"
            )
        if not 1 <= info.channels <= MAX_CHANNELS:
            raise HamqError(
                f"audio file '{path}' has {info.channels} channels, more than the "
                f"{MAX_CHANNELS} a recording may have; {fix}"
            )
        if info.frames > MAX_SECONDS * rate:
            raise HamqError(
                f"audio file '{path}' lasts {info.frames / rate:.0f} s, more than the "
                f"{MAX_SECONDS} s a clip or noise recording may; cut it"
            )
        if _wav_truncated(path):
            raise HamqError(f"audio file '{path}' is truncated (its data chunk is cut); {fix}")
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError, struct.error) as err:
        raise HamqError(f"cannot read audio file '{path}': {err}; {fix}") from None
    if data.shape[0] == 0:
        raise HamqError(f"audio file '{path}' holds no samples; {fix}")
    if not np.isfinite(data).all():
        raise HamqError(f"audio file '{path}' holds NaN or infinite samples; {fix}")
    return data.mean(axis=1), int(rate)


def resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``, Kaiser-windowed FIR) by to_hz/from_hz.

    (L,) -> (ceil(L * to_hz / from_hz),) float32.
    """
    if from_hz == to_hz:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(from_hz, to_hz)
    return resample_poly(x, to_hz // g, from_hz // g).astype(np.float32)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Zero pad at the end, or cut the end, to exactly ``n`` samples."""
    if x.shape[0] >= n:
        return x[:n]
    return np.pad(x, (0, n - x.shape[0]))


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) to int16, rounding and saturating."""
    return np.clip(np.round(x * INT16_SCALE), -32768, 32767).astype(np.int16)


def load_clip(path: Path, num_samples: int | None = CLIP_SAMPLES) -> np.ndarray:
    """One clip as int16 at 16 kHz; ``num_samples`` None keeps its whole (resampled) length."""
    x, rate = read_audio(path)
    x = resample(x, rate, SAMPLE_RATE_HZ)
    return to_int16(x if num_samples is None else fit_length(x, num_samples))


def load_clips(paths: Sequence[Path]) -> torch.Tensor:
    """(N, 16000) int16 clips, in the order of ``paths``."""
    out = np.zeros((len(paths), CLIP_SAMPLES), dtype=np.int16)
    for i, p in enumerate(paths):
        out[i] = load_clip(p)
    return torch.from_numpy(out)


def load_noise(paths: Sequence[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Background recordings of at least 1 s: (F, Lmax) int16 zero padded, (F,) int64 lengths.

    Shorter recordings are skipped with a warning (they cannot fill a clip).
    """
    clips = []
    for p in paths:
        c = load_clip(p, num_samples=None)
        if c.shape[0] < CLIP_SAMPLES:
            warnings.warn(f"background noise '{p}' is shorter than 1 s; not used", stacklevel=2)
            continue
        clips.append(c)
    if not clips:
        return torch.zeros((0, CLIP_SAMPLES), dtype=torch.int16), torch.zeros(0, dtype=torch.int64)
    lengths = torch.tensor([c.shape[0] for c in clips], dtype=torch.int64)
    bank = np.zeros((len(clips), int(lengths.max())), dtype=np.int16)
    for i, c in enumerate(clips):
        bank[i, : c.shape[0]] = c
    return torch.from_numpy(bank), lengths


def audio_files(folder: Path) -> list[Path]:
    """WAV/FLAC files directly in ``folder`` (``x.wav.flac`` counts as FLAC), sorted; a broken
    link is an error."""
    out = []
    for p in folder.iterdir():
        if p.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        if p.is_file():
            out.append(p)
        elif p.is_symlink():
            raise HamqError(
                f"audio file '{p}' is a broken symbolic link (or a link loop); fix or remove it"
            )
    return sorted(out)


@dataclass
class KwsTransform:
    """int16 clips (N, 16000) on the device -> MFCC features (N, 1, 49, 10).

    In train mode with ``augment``: time shift by up to ``time_shift_samples``, then, where a
    noise bank is given, background noise mixed with probability ``noise_prob`` at a volume
    up to ``noise_volume`` (see :mod:`hamq.data.augment`). The noise bank is copied to a
    device the first time a batch arrives from it.
    """

    augment: bool
    time_shift_samples: int
    noise: torch.Tensor | None
    noise_lengths: torch.Tensor | None
    noise_prob: float
    noise_volume: float
    spec: MfccSpec = field(default_factory=MfccSpec)
    _noise_on: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def _noise_for(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._noise_on:
            assert self.noise is not None
            self._noise_on[key] = self.noise.to(device).float() / INT16_SCALE
        return self._noise_on[key]

    def __call__(self, x: torch.Tensor, train: bool, gen: torch.Generator | None) -> torch.Tensor:
        wave = x.float() / INT16_SCALE if x.dtype == torch.int16 else x.float()
        if train and self.augment:
            if gen is None:
                raise ValueError("train-mode augmentation needs a torch.Generator")
            wave = augment.time_shift(wave, self.time_shift_samples, gen)
            if self.noise is not None and self.noise_lengths is not None:
                wave = augment.mix_background(
                    wave,
                    self._noise_for(wave.device),
                    self.noise_lengths,
                    self.noise_prob,
                    self.noise_volume,
                    gen,
                )
        return mfcc(wave, self.spec).unsqueeze(1)


def kws_input_shape(spec: MfccSpec | None = None) -> tuple[int, int, int]:
    """(1, frames, coefficients) of one 1 s clip: (1, 49, 10) by default."""
    spec = spec or MfccSpec()
    return (1, spec.num_frames(CLIP_SAMPLES), spec.n_mfcc)


def ms_to_samples(ms: float) -> int:
    """Milliseconds at 16 kHz to whole samples."""
    return round(ms * SAMPLE_RATE_HZ / 1000.0)


def load_audio_folder(cfg: DataConfig) -> DataBundle:
    """The ``audio_folder`` data set: ``root/{train,test}/<class>/*.wav|flac`` or
    ``root/<class>/*.wav|flac`` split by speaker hash (see docs/data.md). The validation
    part is split off the training speakers by a salted speaker hash in the first layout,
    and by the speaker-hash rule (or k-fold) in the second."""
    root = require_root(cfg, "audio_folder")
    expected = (
        "expected root/train/<class>/*.wav|flac and root/test/<class>/*.wav|flac, "
        "or root/<class>/*.wav|flac (split by speaker hash)"
    )
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    if has_split:
        classes = _class_folders(root / "train")
        test_classes = _class_folders(root / "test")
        if test_classes and set(test_classes) - set(classes):
            raise HamqError(
                f"data.root '{root}' test classes {sorted(set(test_classes) - set(classes))}"
                " have no training clips; every test class needs clips in root/train/<class>"
            )
        parts = {"training": root / "train", "testing": root / "test"}
    else:
        classes = _class_folders(root)
        parts = {}
    if not classes:
        raise HamqError(f"data.root '{root}' has no class folders with WAV/FLAC files; {expected}")

    files: list[Path] = []
    split_of: list[str] = []
    labels: list[int] = []
    for ci, name in enumerate(classes):
        if has_split:
            for split, base in parts.items():
                if (base / name).is_dir():
                    for f in audio_files(base / name):
                        files.append(f)
                        split_of.append(split)
                        labels.append(ci)
        else:
            for f in audio_files(root / name):
                files.append(f)
                labels.append(ci)
    speakers = speakers_of([f.name for f in files], cfg.speaker_pattern)
    if has_split:
        if cfg.folds is not None:
            raise HamqError(
                f"data.folds = {cfg.folds}, but data.root '{root}' has train/ and test/ "
                f"folders, which fix the test part; remove data.folds or use root/<class>/"
            )
        # validation: the training speakers whose salted hash falls below the percentage
        split_of = [
            "validation"
            if s == "training" and hash_percentage(VALIDATION_SALT + spk) < cfg.validation_percent
            else s
            for s, spk in zip(split_of, speakers, strict=True)
        ]
    else:
        split_of = list(
            speaker_splits(
                [f.name for f in files],
                cfg.validation_percent,
                cfg.testing_percent,
                cfg.speaker_split,
                cfg.folds,
                cfg.fold,
                speakers,
            )[0]
        )
    noise_files = (
        audio_files(root / BACKGROUND_FOLDER) if (root / BACKGROUND_FOLDER).is_dir() else []
    )

    def build() -> dict[str, torch.Tensor]:
        noise, lengths = load_noise(noise_files)
        return {"clips": load_clips(files), "noise": noise, "noise_lengths": lengths}

    tensors = cached(
        "audio-folder",
        root,
        [*files, *noise_files],
        {"version": LOADER_VERSION, "rate_hz": SAMPLE_RATE_HZ, "n_clips": len(files)},
        build,
        resolve_cache_dir(cfg.cache, cfg.cache_dir),
    )
    y = torch.tensor(labels, dtype=torch.int64)
    train = torch.tensor([s == "training" for s in split_of])
    val = torch.tensor([s == "validation" for s in split_of])
    test = torch.tensor([s == "testing" for s in split_of])
    if not bool(train.any()) or not bool(test.any()):
        raise HamqError(
            f"data.root '{root}' gives {int(train.sum())} training and {int(test.sum())} test"
            f" clips; both need at least one ({expected})"
        )
    noise = tensors["noise"] if tensors["noise"].shape[0] > 0 else None
    transform = make_kws_transform(
        cfg, noise, tensors["noise_lengths"] if noise is not None else None
    )
    clips = tensors["clips"]
    return DataBundle(
        name="audio_folder",
        train_x=clips[train],
        train_y=y[train],
        test_x=clips[test],
        test_y=y[test],
        val_x=clips[val],
        val_y=y[val],
        classes=classes,
        input_shape=kws_input_shape(),
        transform=transform,
    )


def make_kws_transform(
    cfg: DataConfig,
    noise: torch.Tensor | None,
    noise_lengths: torch.Tensor | None,
) -> KwsTransform:
    """The KWS transform for ``cfg``; warns when noise mixing is asked for but has no noise."""
    if noise is None and cfg.augment and cfg.background_noise_prob > 0:
        warnings.warn(
            f"data set '{cfg.name}' at '{cfg.root}' has no background noise to mix in "
            f"(no {BACKGROUND_FOLDER} folder); training augmentation is the time shift only",
            stacklevel=3,
        )
    return KwsTransform(
        augment=cfg.augment,
        time_shift_samples=ms_to_samples(cfg.time_shift_ms),
        noise=noise,
        noise_lengths=noise_lengths,
        noise_prob=cfg.background_noise_prob,
        noise_volume=cfg.background_volume,
    )


def _class_folders(folder: Path) -> list[str]:
    """Sorted names of the class sub-folders (all but the background-noise folder and hidden
    ones); a class folder without WAV/FLAC files is an error (an empty class)."""
    names = []
    for d in sorted(folder.iterdir()):
        if not d.is_dir() or d.name == BACKGROUND_FOLDER or d.name.startswith("."):
            continue
        if not audio_files(d):
            raise HamqError(
                f"class folder '{d}' holds no WAV/FLAC files: an empty class makes the run "
                "meaningless; add clips there, or remove the folder"
            )
        names.append(d.name)
    return names
