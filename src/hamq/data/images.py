"""Image data sets kept as uint8 (N, 3, H, W) and the batched image transform.

Folder layout ``root/{train,test}/<class>/*.png|jpg|jpeg``, decoded with Pillow (RGB) and
cached as tensors (:mod:`hamq.data.cache`). The transform converts a uint8 batch on the
device to normalized float; in train mode it first applies the CIFAR augmentation: random
crop with 4-pixel zero padding and random horizontal flip (:func:`augment.random_crop_flip`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hamq.data import augment
from hamq.data.bundle import DataBundle
from hamq.data.cache import cached, resolve_cache_dir
from hamq.data.root import require_root
from hamq.errors import HamqError

if TYPE_CHECKING:
    from hamq.data import DataConfig

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
CROP_PADDING_PX = 4
LOADER_VERSION = 1
FOLDER_LAYOUT = "root/train/<class>/*.png|jpg and root/test/<class>/*.png|jpg"
#: Largest image decoded (pixels): CIFAR images have 1,024; Pillow's own bomb limit is 179M.
MAX_IMAGE_PIXELS = 1 << 24


@dataclass
class ImageTransform:
    """uint8 (N, C, H, W) on the device -> float32 (x / 255 - mean) / std.

    In train mode with ``augment``: random crop after ``pad`` pixels of zero padding and a
    random horizontal flip, done on the uint8 batch with the given generator.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    pad: int = CROP_PADDING_PX
    _stats_on: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __call__(self, x: torch.Tensor, train: bool, gen: torch.Generator | None) -> torch.Tensor:
        if train and self.augment:
            if gen is None:
                raise ValueError("train-mode augmentation needs a torch.Generator")
            x = augment.random_crop_flip(x, self.pad, gen)
        key = str(x.device)
        if key not in self._stats_on:
            shape = (1, len(self.mean), 1, 1)
            self._stats_on[key] = (
                torch.tensor(self.mean, device=x.device).view(shape),
                torch.tensor(self.std, device=x.device).view(shape),
            )
        mean, std = self._stats_on[key]
        return (x.float() / 255.0 - mean) / std


def image_files(folder: Path) -> list[Path]:
    """PNG/JPEG files directly in ``folder``, sorted by name; a broken link is an error."""
    out = []
    for p in folder.iterdir():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if p.is_file():
            out.append(p)
        elif p.is_symlink():
            raise HamqError(
                f"image '{p}' is a broken symbolic link (or a link loop); fix or remove it"
            )
    return sorted(out)


def decode_images(paths: Sequence[Path]) -> torch.Tensor:
    """(N, 3, H, W) uint8 RGB; every image must have the size of the first."""
    from PIL import Image, UnidentifiedImageError

    out: np.ndarray | None = None
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise HamqError(
                        f"image '{p}' is {im.width}x{im.height} pixels, more than the "
                        f"{MAX_IMAGE_PIXELS} an image data set may have; resize the images"
                    )
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as err:
            raise HamqError(
                f"cannot read image '{p}': {err}; replace or remove the damaged file"
            ) from None
        if out is None:
            out = np.empty((len(paths), *arr.shape), dtype=np.uint8)
        if arr.shape != out.shape[1:]:
            raise HamqError(
                f"image '{p}' is {arr.shape[1]}x{arr.shape[0]} pixels, but '{paths[0]}' is "
                f"{out.shape[2]}x{out.shape[1]}; all images of a data set must have one size"
            )
        out[i] = arr
    if out is None:
        return torch.zeros((0, 3, 0, 0), dtype=torch.uint8)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def read_image_folder(
    root: Path, classes: Sequence[str] | None, cache_dir: Path | None, kind: str
) -> tuple[list[str], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Decode ``root/{train,test}/<class>/*`` (cached).

    Args:
        classes: required class names in label order, or None to take the sorted
            sub-folders of ``root/train``.

    Returns:
        (classes, {"train": (x uint8 (N,3,H,W), y int64 (N,)), "test": (...)}).
    """
    found = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    if classes is None:
        classes = found
    elif sorted(classes) != found:
        raise HamqError(
            f"data.root '{root}/train' has class folders {found}; expected exactly "
            f"{sorted(classes)}"
        )
    extra = sorted(
        d.name for d in (root / "test").iterdir() if d.is_dir() and d.name not in classes
    )
    if extra:
        raise HamqError(
            f"data.root '{root}/test' has class folders {extra} that '{root}/train' lacks; "
            "every test class needs training images (add them, or remove the folder)"
        )
    files: dict[str, list[Path]] = {}
    labels: dict[str, list[int]] = {}
    for split in ("train", "test"):
        files[split], labels[split] = [], []
        for ci, name in enumerate(classes):
            folder = root / split / name
            got = image_files(folder) if folder.is_dir() else []
            if not got:
                raise HamqError(
                    f"class '{name}' has no images in '{folder}': an empty class makes the run "
                    f"meaningless; add images there, or remove the class from every split"
                )
            files[split] += got
            labels[split] += [ci] * len(got)
        if not files[split]:
            raise HamqError(f"data.root '{root}' has no images under {split}/; {FOLDER_LAYOUT}")
    n_train = len(files["train"])

    def build() -> dict[str, torch.Tensor]:
        return {"images": decode_images(files["train"] + files["test"])}

    images = cached(
        kind,
        root,
        files["train"] + files["test"],
        {"version": LOADER_VERSION, "classes": list(classes)},
        build,
        cache_dir,
    )["images"]
    y = {s: torch.tensor(labels[s], dtype=torch.int64) for s in ("train", "test")}
    return list(classes), {
        "train": (images[:n_train], y["train"]),
        "test": (images[n_train:], y["test"]),
    }


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W), in [0, 1] units."""
    xf = x.to(torch.float64) / 255.0
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


def has_folder_layout(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def load_image_folder(cfg: DataConfig) -> DataBundle:
    """The ``image_folder`` data set; normalized by the training set's channel statistics."""
    root = require_root(cfg, "image_folder")
    if not has_folder_layout(root):
        raise HamqError(
            f"data.root '{root}' has no 'train' and 'test' sub-folders; expected {FOLDER_LAYOUT}"
        )
    classes, parts = read_image_folder(
        root, None, resolve_cache_dir(cfg.cache, cfg.cache_dir), "image-folder"
    )
    (train_x, train_y), (test_x, test_y) = parts["train"], parts["test"]
    mean, std = channel_stats(train_x)
    return DataBundle(
        name="image_folder",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        classes=classes,
        input_shape=tuple(train_x.shape[1:]),
        transform=ImageTransform(mean, std, cfg.augment),
    )
