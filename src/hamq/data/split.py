"""The deterministic, speaker-disjoint split of Speech Commands, as the official code does it.

Google's ``tensorflow/examples/speech_commands/input_data.py`` (``which_set``) assigns a clip
to training, validation or testing from the SHA-1 of its speaker id, so that all clips of a
speaker land in the same split and the split never changes when files are added. The
published ``validation_list.txt``/``testing_list.txt`` were made with the same rule (10% and
10%). This module reproduces it bit for bit.

A folder that *is* one official split (the canonical v0.02 test set at
``../shared/data``) has every speaker in that split: the official rule would give it no
training clips. Such a folder is split again by the same rule applied to a salted speaker
id (``REHASH_SALT + speaker``): still deterministic and speaker-disjoint, with the same
percentages, but independent of the official assignment. ``speaker_split`` chooses:
``official``, ``rehash``, or ``auto`` (official unless every speaker falls in the official
validation or testing part, then rehash).

**Speaker-disjoint k-fold** (``folds = k``, ``fold = i``): a small data set tests each clip
once over ``k`` runs. The same speaker-hash percentage ``p`` (with the salt of the chosen
rule) puts a speaker in fold ``floor(p * k / 100)``; fold ``i`` is the test part of run
``i``. Of the other speakers, those whose percentage under a second salt
(``VALIDATION_SALT``) falls below ``validation_percent`` form the validation part, the rest
train. Folds are disjoint and cover every clip, and no speaker is in two parts of a run.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from hamq.errors import HamqError

Split = Literal["training", "validation", "testing"]
SplitMode = Literal["auto", "official", "rehash"]
REHASH_SALT = "hamq-rehash/"
VALIDATION_SALT = "hamq-validation/"

#: ``MAX_NUM_WAVS_PER_CLASS`` of the official code: the hash is reduced modulo this + 1.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


def speaker_id(file_name: str) -> str:
    """The speaker of a clip: the token just before ``_nohash_``, else the whole stem.

    ``0c540988_nohash_0.wav`` -> ``0c540988``. The shared test set names its unknown-word
    clips ``<word>_<speaker>_nohash_<n>.wav.flac``; the word prefix is dropped so that the
    clip gets the speaker (and hence the split) of its original file ``<word>/<speaker>_...``.
    A name without ``_nohash_`` (a silence clip ``1024.flac``) is its own speaker.
    """
    if "_nohash_" in file_name:
        return file_name.split("_nohash_")[0].rsplit("_", 1)[-1]
    return file_name.split(".")[0]


def speakers_of(file_names: list[str], pattern: str | None) -> list[str]:
    """The speaker of each file: :func:`speaker_id`, or the group ``speaker`` (else the
    first group) of ``pattern`` searched in the file name; HamqError naming the first file
    the pattern does not match."""
    if pattern is None:
        return [speaker_id(n) for n in file_names]
    rx = re.compile(pattern)
    group: int | str = "speaker" if "speaker" in rx.groupindex else 1
    out = []
    for name in file_names:
        m = rx.search(name)
        if m is None or not m.group(group):
            raise HamqError(
                f"data.speaker_pattern {pattern!r} finds no speaker in file name '{name}'; "
                f"fix the pattern (it is searched in the file name) or rename the file"
            )
        out.append(m.group(group))
    return out


def hash_percentage(key: str) -> float:
    """The official rule's percentage of a key: (int(sha1(key)) mod 2^27) * 100 / (2^27 - 1),
    in [0, 100]."""
    digest = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    return (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)


def which_set(
    speaker: str, validation_percent: float, testing_percent: float, salt: str = ""
) -> Split:
    """``which_set`` of the official code, applied to a speaker id (prefixed by ``salt``).

    percentage = (int(sha1(salt + speaker)) mod (2^27)) * 100 / (2^27 - 1); validation
    below ``validation_percent``, testing below the sum of both, else training.
    """
    percentage = hash_percentage(salt + speaker)
    if percentage < validation_percent:
        return "validation"
    if percentage < validation_percent + testing_percent:
        return "testing"
    return "training"


def fold_of(speaker: str, folds: int, salt: str = "") -> int:
    """The k-fold index ``0 .. folds - 1`` of a speaker: ``floor(p * folds / 100)``."""
    return min(int(hash_percentage(salt + speaker) * folds / 100.0), folds - 1)


def kfold_set(
    speaker: str, folds: int, fold: int, validation_percent: float, salt: str = ""
) -> Split:
    """The part of ``speaker`` in run ``fold`` of a speaker-disjoint ``folds``-fold split."""
    if fold_of(speaker, folds, salt) == fold:
        return "testing"
    if hash_percentage(VALIDATION_SALT + salt + speaker) < validation_percent:
        return "validation"
    return "training"


def speaker_splits(
    file_names: list[str],
    validation_percent: float,
    testing_percent: float,
    mode: SplitMode,
    folds: int | None = None,
    fold: int = 0,
    speakers: list[str] | None = None,
) -> tuple[list[Split], Literal["official", "rehash"]]:
    """The split of each file by speaker hash, and the rule used (see module docstring).

    ``folds``: split into that many speaker-disjoint folds and test on fold ``fold``
    (``testing_percent`` is then unused). ``speakers``: the speaker of each file, when the
    file names do not follow the ``<speaker>_nohash_<n>`` convention.
    """
    if speakers is None:
        speakers = [speaker_id(n) for n in file_names]
    if mode == "auto":
        named = {s for s, n in zip(speakers, file_names, strict=True) if "_nohash_" in n}
        official = {which_set(s, validation_percent, testing_percent) for s in named}
        mode = "rehash" if named and "training" not in official else "official"
    salt = REHASH_SALT if mode == "rehash" else ""
    if folds is not None:
        return [kfold_set(s, folds, fold, validation_percent, salt) for s in speakers], mode
    return [which_set(s, validation_percent, testing_percent, salt) for s in speakers], mode
