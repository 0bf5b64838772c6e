"""Google Speech Commands, as the 12-class keyword-spotting task of MLPerf Tiny and HamQ.

Layout: ``root/<label>/<speaker>_nohash_<n>.wav|flac`` (``.wav.flac`` too), optionally
``root/_background_noise_/*.wav``, ``root/_silence_/``, ``root/_unknown_/`` and the lists
``root/validation_list.txt``, ``root/testing_list.txt``.

Classes, in TF's order: ``_silence_``, ``_unknown_``, yes, no, up, down, left, right, on,
off, stop, go. Folders of other words are ``_unknown_``.

Split: by the lists when present (a clip in neither list is training), else by the
speaker hash (:mod:`hamq.data.split`: ``speaker_split``, ``validation_percent``,
``testing_percent``).
The bundle holds all three parts; the validation part chooses the reported epoch.
With ``data.folds`` the speakers are split into k folds instead (speaker-disjoint k-fold,
:mod:`hamq.data.split`), so k runs test every clip once.

Unknown and silence clips per split, following TF's ``input_data``:
    * a ``_unknown_`` folder is taken whole; clips of other non-keyword word folders are
      subsampled to ``unknown_percent`` % of the split's keyword clips (a deterministic
      choice: the smallest SHA-1 of their relative paths);
    * a ``_silence_`` folder is taken whole; without one, ``silence_percent`` % of the
      split's keyword clips are added as all-zero clips, which the training transform fills
      with background noise (TF's convention; at test time they stay silent).

Background noise for training: the ``_background_noise_`` recordings; without that folder,
the training split's ``_silence_`` clips (cut from such recordings in the official test
set), so that no test clip leaks into training; with neither, no noise (a warning says so).

The shared archive ``speech_commands_v0.02_test`` is the official *test* set only (4,890
clips with ``_silence_`` and ``_unknown_`` folders). All its speakers fall in the official
testing part, so ``speaker_split: auto`` re-splits it by the salted speaker hash: hamq
trains on that training part (about 3,900 clips) and tests on its testing part (see
docs/data.md).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hamq.data.audio import (
    BACKGROUND_FOLDER,
    CLIP_SAMPLES,
    LOADER_VERSION,
    SAMPLE_RATE_HZ,
    audio_files,
    kws_input_shape,
    load_clips,
    load_noise,
    make_kws_transform,
)
from hamq.data.bundle import DataBundle
from hamq.data.cache import cached, resolve_cache_dir
from hamq.data.root import require_root
from hamq.data.split import Split, SplitMode, speaker_splits, speakers_of
from hamq.errors import HamqError
from hamq.files import read_text

if TYPE_CHECKING:
    from hamq.data import DataConfig

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
CLASSES = (SILENCE, UNKNOWN, *KEYWORDS)
PARTS: tuple[Split, ...] = ("training", "validation", "testing")
#: validation_list.txt / testing_list.txt of the full v0.02 set are ~400 kB each.
MAX_LIST_BYTES = 16 << 20
EXPECTED = (
    "expected root/<label>/<speaker>_nohash_<n>.wav|flac with label folders among "
    + ", ".join(KEYWORDS)
    + " (Speech Commands layout)"
)


def _clip_key(rel: str) -> str:
    """Relative path without audio extensions: 'yes/a_nohash_0.wav.flac' -> 'yes/a_nohash_0'."""
    while rel.lower().endswith((".flac", ".wav")):
        rel = rel.rsplit(".", 1)[0]
    return rel


def _read_list(path: Path) -> set[str]:
    text = read_text(path, "clip list", max_bytes=MAX_LIST_BYTES)
    return {_clip_key(line.strip()) for line in text.splitlines() if line.strip()}


def _sha1_order(rel: str) -> str:
    return hashlib.sha1(rel.encode("utf-8")).hexdigest()


def split_clips(
    root: Path,
    files: list[Path],
    validation_percent: float,
    testing_percent: float,
    mode: SplitMode,
    folds: int | None = None,
    fold: int = 0,
    speaker_pattern: str | None = None,
) -> list[Split]:
    """The split of each file: by the official lists when present, else by speaker hash
    (``folds``: speaker-disjoint k-fold, see :mod:`hamq.data.split`)."""
    val_list, test_list = root / "validation_list.txt", root / "testing_list.txt"
    if val_list.exists() or test_list.exists():
        if folds is not None:
            raise HamqError(
                f"data.folds = {folds}, but data.root '{root}' has validation_list.txt/"
                f"testing_list.txt, which fix the test part; remove data.folds (or the lists)"
            )
        val = _read_list(val_list) if val_list.exists() else set()
        test = _read_list(test_list) if test_list.exists() else set()
        out: list[Split] = []
        for f in files:
            key = _clip_key(f.relative_to(root).as_posix())
            out.append("testing" if key in test else "validation" if key in val else "training")
        return out
    names = [f.name for f in files]
    return speaker_splits(
        names,
        validation_percent,
        testing_percent,
        mode,
        folds,
        fold,
        speakers_of(names, speaker_pattern),
    )[0]


def load_speech_commands(cfg: DataConfig) -> DataBundle:
    """The ``speech_commands`` data set (module docstring: layout, classes, split)."""
    root = require_root(cfg, "speech_commands")
    folders = sorted(d for d in root.iterdir() if d.is_dir() and d.name != BACKGROUND_FOLDER)
    if not any(d.name in KEYWORDS and audio_files(d) for d in folders):
        raise HamqError(
            f"data.root '{root}' has no keyword folders with WAV/FLAC clips; {EXPECTED}"
        )

    entries: list[tuple[Path, int, bool]] = []  # (file, label, subsampled unknown)
    for d in folders:
        label = CLASSES.index(d.name) if d.name in CLASSES else CLASSES.index(UNKNOWN)
        from_other_word = d.name not in CLASSES
        entries += [(f, label, from_other_word) for f in audio_files(d)]
    files_all = [e[0] for e in entries]
    splits = split_clips(
        root,
        files_all,
        cfg.validation_percent,
        cfg.testing_percent,
        cfg.speaker_split,
        cfg.folds,
        cfg.fold,
        cfg.speaker_pattern,
    )

    chosen: dict[str, list[tuple[Path, int]]] = {}
    n_zero_silence: dict[str, int] = {}
    has_silence = (root / SILENCE).is_dir()
    for part in PARTS:
        mine = [(e, s) for e, s in zip(entries, splits, strict=True) if s == part]
        n_known = sum(1 for (_, label, _), _ in mine if label >= 2)
        keep = [(f, label) for (f, label, other), _ in mine if not other]
        others = sorted(
            (f for (f, _, other), _ in mine if other),
            key=lambda f: _sha1_order(f.relative_to(root).as_posix()),
        )
        keep += [
            (f, CLASSES.index(UNKNOWN)) for f in others[: _percent_of(n_known, cfg.unknown_percent)]
        ]
        chosen[part] = sorted(keep, key=lambda t: str(t[0]))
        n_zero_silence[part] = 0 if has_silence else _percent_of(n_known, cfg.silence_percent)

    files = [f for part in PARTS for f, _ in chosen[part]]
    noise_dir = root / BACKGROUND_FOLDER
    noise_files = audio_files(noise_dir) if noise_dir.is_dir() else []

    def build() -> dict[str, torch.Tensor]:
        noise, lengths = load_noise(noise_files)
        return {"clips": load_clips(files), "noise": noise, "noise_lengths": lengths}

    tensors = cached(
        "speech-commands",
        root,
        [*files, *noise_files],
        {"version": LOADER_VERSION, "rate_hz": SAMPLE_RATE_HZ, "n_clips": len(files)},
        build,
        resolve_cache_dir(cfg.cache, cfg.cache_dir),
    )
    parts, start = {}, 0
    for part in PARTS:
        parts[part] = tensors["clips"][start : start + len(chosen[part])]
        start += len(chosen[part])
    xs, ys = {}, {}
    for part, clips in parts.items():
        labels = torch.tensor([label for _, label in chosen[part]], dtype=torch.int64)
        k = n_zero_silence[part]
        xs[part] = torch.cat([clips, torch.zeros((k, CLIP_SAMPLES), dtype=torch.int16)])
        ys[part] = torch.cat([labels, torch.full((k,), CLASSES.index(SILENCE))])
    if xs["training"].shape[0] == 0 or xs["testing"].shape[0] == 0:
        raise HamqError(
            f"data.root '{root}' gives {xs['training'].shape[0]} training and "
            f"{xs['testing'].shape[0]} test clips; both need at least one ({EXPECTED})"
        )

    noise, noise_lengths = tensors["noise"], tensors["noise_lengths"]
    if noise.shape[0] == 0:
        silence_train = xs["training"][ys["training"] == CLASSES.index(SILENCE)]
        silence_train = silence_train[silence_train.abs().amax(dim=1) > 0]  # real clips only
        noise = silence_train
        noise_lengths = torch.full((noise.shape[0],), CLIP_SAMPLES, dtype=torch.int64)
    has_noise = noise.shape[0] > 0
    return DataBundle(
        name="speech_commands",
        train_x=xs["training"],
        train_y=ys["training"],
        test_x=xs["testing"],
        test_y=ys["testing"],
        val_x=xs["validation"],
        val_y=ys["validation"],
        classes=list(CLASSES),
        input_shape=kws_input_shape(),
        transform=make_kws_transform(
            cfg, noise if has_noise else None, noise_lengths if has_noise else None
        ),
    )


def _percent_of(n: int, percent: float) -> int:
    """ceil(n * percent / 100), TF's count of added silence and unknown clips."""
    return math.ceil(n * percent / 100.0)
