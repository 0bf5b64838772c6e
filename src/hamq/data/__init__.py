"""Data sets by name: the embedded default (digits) and the real ones (CIFAR-10, Speech
Commands, generic audio/image folders). Each loader returns a :class:`DataBundle`."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from hamq.config_base import Section
from hamq.data.bundle import DataBundle
from hamq.errors import unknown_name


class DataConfig(Section):
    """Which data set and how to batch it.

    name: registered data set (``digits`` is embedded; others read ``root``).
    root: folder of the data set on disk (unused by ``digits``).
    batch_size: training batch size.
    eval_batch_size: batch size for evaluation and energy estimation.
    augment: apply the data set's training augmentation.
    """

    name: str = "digits"
    root: str | None = None
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    augment: bool = True


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


def load_dataset(cfg: DataConfig) -> DataBundle:
    """The data set named in ``cfg``; raises HamqError for an unknown name or bad folder."""
    if cfg.name not in DATASETS:
        raise unknown_name("data set", cfg.name, DATASETS)
    return DATASETS[cfg.name](cfg)


__all__ = ["DATASETS", "DataBundle", "DataConfig", "load_dataset", "register_dataset"]
