"""Data sets by name: the embedded default (digits) and the real ones (CIFAR-10, Speech
Commands, generic audio/image folders). Each loader returns a :class:`DataBundle`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field, model_validator

from hamq.config_base import Section
from hamq.data.bundle import DataBundle
from hamq.errors import unknown_name

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

    Audio data sets only (``speech_commands``, ``audio_folder``; a value other than the
    default for another data set is an error, as it would have no effect):

    time_shift_ms: training augmentation, each clip shifted by a uniform random time in
        [-time_shift_ms, +time_shift_ms] milliseconds, zero-filled (TF default 100).
    background_noise_prob: probability, per training clip, of mixing in background noise
        (TF's ``background_frequency``, default 0.8).
    background_volume: noise amplitude factor drawn uniformly in [0, background_volume],
        relative to full scale 1.0 (TF's ``background_volume_range``, default 0.1).
    validation_percent, testing_percent: speaker-hash split percentages (TF's defaults
        10 and 10) used where the folder has no ``validation_list.txt``/``testing_list.txt``.
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
    validation_percent: float = Field(10.0, ge=0.0, le=100.0)
    testing_percent: float = Field(10.0, gt=0.0, le=100.0)
    speaker_split: Literal["auto", "official", "rehash"] = "auto"
    silence_percent: float = Field(10.0, ge=0.0, le=100.0)
    unknown_percent: float = Field(10.0, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _fields_used_by_this_data_set(self) -> DataConfig:
        if self.validation_percent + self.testing_percent >= 100.0:
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
    | {"validation_percent", "testing_percent", "speaker_split"}
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
    """The data set named in ``cfg``; raises HamqError for an unknown name or bad folder."""
    if cfg.name not in DATASETS:
        raise unknown_name("data set", cfg.name, DATASETS)
    bundle = DATASETS[cfg.name](cfg)
    if cfg.train_limit is not None and cfg.train_limit < bundle.train_x.shape[0]:
        import torch

        keep = torch.randperm(bundle.train_x.shape[0], generator=torch.Generator().manual_seed(0))
        keep = keep[: cfg.train_limit].sort().values
        bundle.train_x, bundle.train_y = bundle.train_x[keep], bundle.train_y[keep]
    return bundle


__all__ = ["DATASETS", "DataBundle", "DataConfig", "load_dataset", "register_dataset"]
