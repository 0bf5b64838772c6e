"""CIFAR-10 from the official python batches or from an image folder.

``data.root`` may hold either layout (checked in this order):

1. the official batches ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` (and
   ``batches.meta``), in ``root`` itself or in ``root/cifar-10-batches-py``;
2. images ``root/{train,test}/<class>/*.png|jpg`` with the ten CIFAR class folders, which
   is how ``../shared/data/cifar10-jpeg.tar.gz`` unpacks (``cifar10-jpeg/...``).

The batches are pickles. They are read by an unpickler that resolves only the three
globals a pickled numpy array needs (``_reconstruct``, ``ndarray``, ``dtype``), so a
tampered file cannot run code: any other global is refused with a :class:`HamqError`.
Sizes are checked before anything is allocated: a batch file over
:data:`MAX_BATCH_FILE_BYTES` is refused unread, and the array constructor refuses a shape
above :data:`MAX_ARRAY_BYTES` (an array's bytes must then come from the file itself). The
unpickled object must be a dict of plain values (bytes, str, int, float, lists, tuples,
numeric numpy arrays); anything else is refused.

Images stay uint8 (N, 3, 32, 32); normalization by the CIFAR-10 training-set channel
statistics and the crop/flip augmentation happen batch-wise on the device
(:class:`hamq.data.images.ImageTransform`).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hamq.data.bundle import DataBundle
from hamq.data.cache import resolve_cache_dir
from hamq.data.images import FOLDER_LAYOUT, ImageTransform, has_folder_layout, read_image_folder
from hamq.data.root import require_root
from hamq.errors import HamqError

if TYPE_CHECKING:
    from hamq.data import DataConfig

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
#: Per-channel mean and standard deviation of the 50,000 training images, pixels in [0, 1].
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCH_FOLDER = "cifar-10-batches-py"
IMAGE_SIDE = 32


#: A batch file is ~31 MB (10,000 images); anything far larger is not one.
MAX_BATCH_FILE_BYTES = 256 << 20
#: Largest array a batch may construct: the whole training set is 150 MB.
MAX_ARRAY_BYTES = 256 << 20
#: How deep lists/dicts may nest in a batch (the official ones nest 2 levels).
MAX_NESTING = 8


def _numpy_reconstruct() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


def _bounded_reconstruct(cls: Any, shape: Any, typecode: Any) -> Any:
    """numpy's ``_reconstruct`` (the empty array a pickle then fills), refusing the classes,
    shapes and types a CIFAR batch does not use before anything is allocated."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"array class {cls!r} refused (numpy.ndarray only)")
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise pickle.UnpicklingError(f"array shape {str(shape)[:40]} refused")
    if not isinstance(typecode, bytes | str) or len(typecode) > 4:
        raise pickle.UnpicklingError(f"array type {str(typecode)[:40]} refused")
    itemsize = np.dtype(typecode).itemsize
    n = 1
    for d in shape:
        n *= d
    if n * max(1, itemsize) > MAX_ARRAY_BYTES:
        raise pickle.UnpicklingError(
            f"an array of shape {shape} ({n * max(1, itemsize)} bytes) is larger than any "
            f"CIFAR-10 batch holds ({MAX_ARRAY_BYTES} bytes at most)"
        )
    return _numpy_reconstruct()(cls, shape, typecode)


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` for the plain numeric and byte types only (never object)."""
    dt = np.dtype(*args)
    if dt.kind not in "biufcSU" or dt.hasobject:
        raise pickle.UnpicklingError(f"array type {dt} refused (numbers and bytes only)")
    return dt


#: The pickle opcodes a batch may use: plain values, containers, memo, and the globals and
#: calls that rebuild a numpy array. No sets, bytearrays, out-of-band buffers, extension
#: registry, persistent ids or class instances.
_ALLOWED_OPCODES = frozenset(
    "PROTO FRAME STOP MARK POP POP_MARK DUP PUT BINPUT LONG_BINPUT GET BINGET LONG_BINGET "
    "MEMOIZE NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT "
    "STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 "
    "BINBYTES SHORT_BINBYTES BINBYTES8 EMPTY_DICT DICT SETITEM SETITEMS EMPTY_LIST LIST "
    "APPEND APPENDS EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 GLOBAL STACK_GLOBAL REDUCE "
    "BUILD".split()
)


def _scan_opcodes(raw: bytes) -> None:
    """Walk the opcodes without building anything: every declared length is checked against
    the bytes that follow (a string claiming a terabyte in a small file allocates nothing)
    and any opcode outside :data:`_ALLOWED_OPCODES` is refused."""
    for op, _, pos in pickletools.genops(raw):
        if op.name not in _ALLOWED_OPCODES:
            raise pickle.UnpicklingError(f"pickle opcode {op.name} at byte {pos} refused")


#: (module, name) -> object: the only globals a batch file may reference. numpy 1 pickles
#: name ``numpy.core``, numpy 2 ``numpy._core``; both mean the same function.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _bounded_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _bounded_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
}


def _check_plain(obj: Any, depth: int = 0) -> None:
    """Refuse anything but the plain types of a batch (pickle opcodes can build sets,
    bytearrays and object arrays without any global)."""
    if depth > MAX_NESTING:
        raise ValueError(f"values nested more than {MAX_NESTING} levels deep")
    if obj is None or isinstance(obj, bytes | str | int | float):
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or obj.dtype.kind not in "biufcSU":
            raise ValueError(f"an array of type {obj.dtype}")
        return
    if isinstance(obj, list | tuple):
        for v in obj:
            _check_plain(v, depth + 1)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, depth + 1)
            _check_plain(v, depth + 1)
        return
    raise ValueError(f"a {type(obj).__name__}")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: dicts, lists, bytes, ints, and numpy arrays only."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def read_batch_file(path: Path) -> dict[bytes, Any]:
    """The dict in one CIFAR-10 python batch file, unpickled without running its code.

    Raises HamqError naming the file when it is unreadable or references any global other
    than numpy's array reconstruction.
    """
    expected = (
        "expected an official cifar-10-batches-py file (a pickled dict of numpy arrays and "
        "lists only)"
    )
    try:
        st = path.stat()
        size = st.st_size
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file (a device or a pipe)")
        if size > MAX_BATCH_FILE_BYTES:
            raise ValueError(f"{size} bytes, more than a batch file has ({MAX_BATCH_FILE_BYTES})")
        raw = path.read_bytes()
        _scan_opcodes(raw)
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        _check_plain(obj)
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        OSError,
        KeyError,
        IndexError,
        AttributeError,
        MemoryError,
        RecursionError,
        OverflowError,
    ) as err:
        raise HamqError(f"cannot read CIFAR-10 batch '{path}': {err}; {expected}") from None
    if not isinstance(obj, dict):
        raise HamqError(f"CIFAR-10 batch '{path}' holds a {type(obj).__name__}, not a dict")
    return obj


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of one batch file.

    The file stores ``b"data"``: uint8 (N, 3072), each row the red, green and blue 32x32
    planes in row-major order, and ``b"labels"``: N ints in 0..9.
    """
    batch = read_batch_file(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    side = IMAGE_SIDE
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * side * side
        or not isinstance(labels, list)
        or len(labels) != data.shape[0]
    ):
        raise HamqError(
            f"CIFAR-10 batch '{path}' lacks b'data' uint8 (N, 3072) and b'labels' (N ints)"
        )
    for i, label in enumerate(labels):
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(CLASSES):
            raise HamqError(
                f"CIFAR-10 batch '{path}' has label {str(label)[:20]} at index {i}; labels are "
                "whole numbers 0..9"
            )
    y = torch.tensor(labels, dtype=torch.int64)
    x = torch.from_numpy(data.reshape(-1, 3, side, side).copy())
    return x, y


def find_batch_folder(root: Path) -> Path | None:
    """The folder holding the official batches: ``root`` or ``root/cifar-10-batches-py``."""
    for folder in (root, root / BATCH_FOLDER):
        if (folder / TEST_BATCH).is_file() and (folder / TRAIN_BATCHES[0]).is_file():
            return folder
    return None


def read_batches(folder: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": (x, y), "test": (x, y)} from the official batch files in ``folder``."""
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if not (folder / n).is_file()]
    if missing:
        raise HamqError(f"CIFAR-10 batch folder '{folder}' lacks {', '.join(missing)}")
    meta = folder / "batches.meta"
    if meta.is_file():
        names = read_batch_file(meta).get(b"label_names")
        expected = [c.encode() for c in CLASSES]
        if names is not None and names != expected:
            shown = str(names)[:200]
            raise HamqError(f"'{meta}' lists classes {shown}; expected {list(CLASSES)}")
    train = [read_batch(folder / n) for n in TRAIN_BATCHES]
    return {
        "train": (torch.cat([x for x, _ in train]), torch.cat([y for _, y in train])),
        "test": read_batch(folder / TEST_BATCH),
    }


def load_cifar10(cfg: DataConfig) -> DataBundle:
    """The ``cifar10`` data set from either layout (module docstring)."""
    root = require_root(cfg, "cifar10")
    batch_folder = find_batch_folder(root)
    if batch_folder is not None:
        parts = read_batches(batch_folder)
    elif has_folder_layout(root):
        _, parts = read_image_folder(
            root, CLASSES, resolve_cache_dir(cfg.cache, cfg.cache_dir), "cifar10-folder"
        )
        shape = tuple(parts["train"][0].shape[1:])
        if shape != (3, IMAGE_SIDE, IMAGE_SIDE):
            raise HamqError(f"data.root '{root}' images are {shape}; CIFAR-10 needs (3, 32, 32)")
    else:
        raise HamqError(
            f"data.root '{root}' has no 'train' and 'test' sub-folders and no "
            f"{BATCH_FOLDER} files; expected {BATCH_FOLDER}/data_batch_1..5 and test_batch, "
            f"or {FOLDER_LAYOUT}"
        )
    (train_x, train_y), (test_x, test_y) = parts["train"], parts["test"]
    return DataBundle(
        name="cifar10",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        classes=list(CLASSES),
        input_shape=(3, IMAGE_SIDE, IMAGE_SIDE),
        transform=ImageTransform(MEAN, STD, cfg.augment),
    )
