"""Data sets by name: the embedded default (digits) and the real ones (CIFAR-10, Speech
Commands, generic audio/image folders). Each loader returns a :class:`DataBundle`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hamq.config_base import Section
from hamq.data.bundle import DataBundle
from hamq.errors import HamqError, unknown_name

#: Largest batch size (more than any data set hamq reads has samples).
MAX_BATCH = 1 << 20


class DataConfig(Section):
    """Which data set and how to batch it.

    name: registered data set (``digits`` is embedded; others read ``root``).
    root: folder of the data set on disk (unused by ``digits``).
    batch_size: training batch size.
    eval_batch_size: batch size for evaluation and energy estimation.
    augment: apply the data set's training augmentation.
    train_limit: train on a fixed random subset of this many training samples (the same
        subset on every machine: drawn with seed 0); null = all. For quick CPU runs.
    cache: keep the decoded samples of folder data sets (PNG/JPEG images, WAV/FLAC clips)
        in ``cache_dir``, so that a second load skips decoding (see docs/data.md). Sources
        that need no decoding (``digits``, pickled CIFAR batches) are never cached.
    cache_dir: folder of that cache; None means ``$HAMQ_CACHE`` or else ``~/.cache/hamq``.

    validation_percent: the validation part, in percent, on which the reported epoch is
        chosen (``train.select``); never the test part. Audio data sets split it off by
        speaker hash (TF's default 10); the others hold out a stratified, fixed (seed 0)
        ``validation_percent`` % of all samples from the training part. 0: no validation
        part (then ``train.select`` must be ``last``).

    Audio data sets only (``speech_commands``, ``audio_folder``; a value other than the
    default for another data set is an error, as it would have no effect):

    time_shift_ms: training augmentation, each clip shifted by a uniform random time in
        [-time_shift_ms, +time_shift_ms] milliseconds, zero-filled (TF default 100).
    background_noise_prob: probability, per training clip, of mixing in background noise
        (TF's ``background_frequency``, default 0.8).
    background_volume: noise amplitude factor drawn uniformly in [0, background_volume],
        relative to full scale 1.0 (TF's ``background_volume_range``, default 0.1).
    testing_percent: speaker-hash test percentage (TF's default 10) used where the folder
        has no ``validation_list.txt``/``testing_list.txt`` (and no ``folds``).
    folds, fold: speaker-disjoint k-fold evaluation (see ``hamq.data.split``): the speakers
        fall into ``folds`` parts by hash and the run tests on part ``fold`` (0-based), so
        ``folds`` runs test every clip once. null: the fixed split of ``testing_percent``.
        Not with the official lists (their test part is fixed).
    speaker_pattern: a regular expression whose group ``speaker`` (or first group) finds
        the speaker in a file name, for folders whose names do not follow Speech Commands'
        ``<speaker>_nohash_<n>`` (e.g. FSDD's ``<digit>_<speaker>_<n>.wav``:
        ``^\\d+_(?P<speaker>[a-z]+)_\\d+``). null: the token before ``_nohash_``, else the
        whole file stem.
    speaker_split: which speaker hash splits such a folder: ``official`` (TF's
        ``which_set``), ``rehash`` (the same rule on a salted speaker id, for a folder that
        is itself one official split, like the shared v0.02 test set), or ``auto``
        (official, unless every speaker falls in the official validation/testing part).
    silence_percent: silence clips added per split, in percent of its keyword clips, where
        the folder has no ``_silence_`` folder (TF default 10; speech_commands only).
    unknown_percent: clips from folders of non-keyword words kept per split, in percent of
        its keyword clips (TF default 10; a ``_unknown_`` folder is taken whole;
        speech_commands only).
    """

    name: str = "digits"
    root: str | None = None
    batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    eval_batch_size: int = Field(512, ge=1, le=MAX_BATCH)
    augment: bool = True
    cache: bool = True
    cache_dir: str | None = None
    train_limit: int | None = Field(None, ge=1)
    time_shift_ms: float = Field(100.0, ge=0.0, le=500.0)
    background_noise_prob: float = Field(0.8, ge=0.0, le=1.0)
    background_volume: float = Field(0.1, ge=0.0, le=1.0)
    validation_percent: float = Field(10.0, ge=0.0, lt=100.0)
    testing_percent: float = Field(10.0, gt=0.0, le=100.0)
    speaker_split: Literal["auto", "official", "rehash"] = "auto"
    folds: int | None = Field(None, ge=2, le=100)
    fold: int = Field(0, ge=0)
    speaker_pattern: str | None = None
    silence_percent: float = Field(10.0, ge=0.0, le=100.0)
    unknown_percent: float = Field(10.0, ge=0.0, le=100.0)

    @field_validator("speaker_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            compiled = re.compile(v)
        except re.error as err:
            raise ValueError(f"is not a valid regular expression ({err})") from None
        if compiled.groups == 0:
            raise ValueError(
                "has no group; mark the speaker with (?P<speaker>...) or a first group (...)"
            )
        return v

    @model_validator(mode="after")
    def _fields_used_by_this_data_set(self) -> DataConfig:
        if self.folds is not None:
            if self.fold >= self.folds:
                raise ValueError(
                    f"data.fold = {self.fold} must be below data.folds = {self.folds} "
                    f"(folds are numbered 0 .. {self.folds - 1})"
                )
            if self.testing_percent != 10.0:
                raise ValueError(
                    "data.testing_percent is unused with data.folds (each fold is the test "
                    "part of one run); remove it"
                )
        elif self.fold != 0:
            raise ValueError("data.fold is set but data.folds is not; set data.folds too")
        if (
            self.name in AUDIO_DATASETS
            and self.folds is None
            and self.validation_percent + self.testing_percent >= 100.0
        ):
            raise ValueError(
                f"data.validation_percent + data.testing_percent = "
                f"{self.validation_percent + self.testing_percent:g} leaves no training clips;"
                " the sum must be below 100"
            )
        if self.name in NO_FOLDER_DATASETS:
            # the embedded data sets read no folder, decode nothing and do not augment
            unused = [
                f for f in FOLDER_FIELDS if getattr(self, f) != type(self).model_fields[f].default
            ]
            if unused:
                raise ValueError(
                    f"data.{unused[0]} = {getattr(self, unused[0])!r} has no effect on data set "
                    f"'{self.name}', which is embedded (no folder, no cache, no augmentation);"
                    " remove it"
                )
        for fields, users in ((AUDIO_FIELDS, AUDIO_DATASETS), (SPEECH_FIELDS, SPEECH_DATASETS)):
            # a default value is harmless (a saved config lists every field); a changed one
            # for a data set that never reads it would be silently ignored, so it is an error
            unused = sorted(
                f for f in fields if getattr(self, f) != type(self).model_fields[f].default
            )
            if unused and self.name not in users:
                raise ValueError(
                    f"data.{unused[0]} is used only by data sets {', '.join(sorted(users))}; "
                    f"data set '{self.name}' has no use for it (remove it)"
                )
        return self


#: Fields read only by the audio loaders, and the data sets that read them.
AUDIO_FIELDS = frozenset(
    {"time_shift_ms", "background_noise_prob", "background_volume"}
    | {"testing_percent", "speaker_split", "folds", "fold", "speaker_pattern"}
)
AUDIO_DATASETS = frozenset({"speech_commands", "audio_folder"})
SPEECH_FIELDS = frozenset({"silence_percent", "unknown_percent"})
SPEECH_DATASETS = frozenset({"speech_commands"})
#: Fields read only by data sets from a folder; the embedded ones ignore them.
FOLDER_FIELDS = ("root", "cache", "cache_dir", "augment")
NO_FOLDER_DATASETS = frozenset({"digits"})


Loader = Callable[[DataConfig], DataBundle]
DATASETS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        DATASETS[name] = fn
        return fn

    return deco


@register_dataset("digits")
def _digits(cfg: DataConfig) -> DataBundle:
    from hamq.data.digits import load_digits_bundle

    return load_digits_bundle()


@register_dataset("cifar10")
def _cifar10(cfg: DataConfig) -> DataBundle:
    from hamq.data.cifar import load_cifar10

    return load_cifar10(cfg)


@register_dataset("image_folder")
def _image_folder(cfg: DataConfig) -> DataBundle:
    from hamq.data.images import load_image_folder

    return load_image_folder(cfg)


@register_dataset("speech_commands")
def _speech_commands(cfg: DataConfig) -> DataBundle:
    from hamq.data.speech import load_speech_commands

    return load_speech_commands(cfg)


@register_dataset("audio_folder")
def _audio_folder(cfg: DataConfig) -> DataBundle:
    from hamq.data.audio import load_audio_folder

    return load_audio_folder(cfg)


def load_dataset(cfg: DataConfig) -> DataBundle:
    """The data set named in ``cfg``; raises HamqError for an unknown name or bad folder.

    Data sets without a validation part of their own (all but the audio ones) get one here:
    a stratified ``validation_percent`` % of all samples, held out of the training part
    with a fixed seed (the same images on every machine). ``train_limit`` then subsamples
    what is left for training.
    """
    import torch

    if cfg.name not in DATASETS:
        raise unknown_name("data set", cfg.name, DATASETS)
    bundle = DATASETS[cfg.name](cfg)
    if bundle.val_x is None:
        hold_out_validation(bundle, cfg.validation_percent)
    if cfg.train_limit is not None and cfg.train_limit < bundle.train_x.shape[0]:
        keep = torch.randperm(bundle.train_x.shape[0], generator=torch.Generator().manual_seed(0))
        keep = keep[: cfg.train_limit].sort().values
        bundle.train_x, bundle.train_y = bundle.train_x[keep], bundle.train_y[keep]
    return bundle


def hold_out_validation(bundle: DataBundle, percent: float) -> None:
    """Move a stratified ``percent`` % of all samples (train + test) from the training part
    to a validation part, in place; fixed seed 0. 0 % leaves an empty validation part."""
    import torch

    n_all = bundle.train_y.numel() + bundle.test_y.numel()
    n_val = round(n_all * percent / 100.0)
    if n_val == 0 or bundle.train_y.numel() == 0:  # (no training data: refused later)
        bundle.val_x, bundle.val_y = bundle.train_x[:0], bundle.train_y[:0]
        return
    if n_val >= bundle.train_y.numel():
        raise HamqError(
            f"data.validation_percent = {percent:g} asks for {n_val} validation samples but "
            f"'{bundle.name}' has only {bundle.train_y.numel()} training samples; lower it"
        )
    from sklearn.model_selection import train_test_split

    labels = bundle.train_y.cpu().numpy()
    counts = torch.bincount(bundle.train_y.cpu())
    present = counts[counts > 0]
    # stratify where every class can give a sample to both parts
    can_stratify = int(present.min()) >= 2 and n_val >= present.numel()
    can_stratify = can_stratify and bundle.train_y.numel() - n_val >= present.numel()
    stratify = labels if can_stratify else None
    idx_train, idx_val = train_test_split(
        list(range(labels.shape[0])), test_size=n_val, random_state=0, stratify=stratify
    )
    idx_train_t = torch.tensor(sorted(idx_train), dtype=torch.int64)
    idx_val_t = torch.tensor(sorted(idx_val), dtype=torch.int64)
    bundle.val_x, bundle.val_y = bundle.train_x[idx_val_t], bundle.train_y[idx_val_t]
    bundle.train_x, bundle.train_y = bundle.train_x[idx_train_t], bundle.train_y[idx_train_t]


__all__ = ["DATASETS", "DataBundle", "DataConfig", "load_dataset", "register_dataset"]
