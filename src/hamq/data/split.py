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
"""

from __future__ import annotations

import hashlib
from typing import Literal

Split = Literal["training", "validation", "testing"]
SplitMode = Literal["auto", "official", "rehash"]
REHASH_SALT = "hamq-rehash/"

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


def which_set(
    speaker: str, validation_percent: float, testing_percent: float, salt: str = ""
) -> Split:
    """``which_set`` of the official code, applied to a speaker id (prefixed by ``salt``).

    percentage = (int(sha1(salt + speaker)) mod (2^27)) * 100 / (2^27 - 1); validation
    below ``validation_percent``, testing below the sum of both, else training.
    """
    digest = int(hashlib.sha1((salt + speaker).encode("utf-8")).hexdigest(), 16)
    percentage = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percent:
        return "validation"
    if percentage < validation_percent + testing_percent:
        return "testing"
    return "training"


def speaker_splits(
    file_names: list[str], validation_percent: float, testing_percent: float, mode: SplitMode
) -> tuple[list[Split], Literal["official", "rehash"]]:
    """The split of each file by speaker hash, and the rule used (see module docstring)."""
    speakers = [speaker_id(n) for n in file_names]
    if mode == "auto":
        named = {s for s, n in zip(speakers, file_names, strict=True) if "_nohash_" in n}
        official = {which_set(s, validation_percent, testing_percent) for s in named}
        mode = "rehash" if named and "training" not in official else "official"
    salt = REHASH_SALT if mode == "rehash" else ""
    return [which_set(s, validation_percent, testing_percent, salt) for s in speakers], mode
