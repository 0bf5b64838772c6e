"""Unpack the data archives of ``../shared/data`` into a git-ignored folder, once.

    from hamq.data.shared import unpack
    root = unpack("../shared/data/cifar10-jpeg.tar.gz", "data")   # -> data/cifar10-jpeg

or from a shell: ``python -m hamq.data.shared ../shared/data/cifar10-jpeg.tar.gz data``.

An archive is extracted only when its marker file ``dest/.<archive name>.unpacked`` is
missing or records a different archive (size, mtime); extraction goes to a temporary
folder inside ``dest`` that is renamed into place, so an interrupted run leaves no half
folder behind. Members are filtered with tarfile's ``data`` filter (no absolute paths, no
``..``, no links out of the folder, no device files).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from hamq.errors import HamqError

#: ``../shared/data`` seen from the repository root (the checkout's parent holds ``shared``).
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def shared_data_dir() -> Path | None:
    """``$HAMQ_SHARED_DATA`` or ``<checkout>/../shared/data`` if it exists, else None."""
    env = os.environ.get("HAMQ_SHARED_DATA")
    path = Path(env) if env else SHARED_DATA
    return path if path.is_dir() else None


def _top_folder(tar: tarfile.TarFile, archive: Path) -> str:
    tops = {m.name.split("/", 1)[0] for m in tar.getmembers() if m.name not in ("", ".")}
    if len(tops) != 1:
        raise HamqError(
            f"archive '{archive}' has {len(tops)} top-level entries; expected one folder"
        )
    return tops.pop()


def unpack(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a ``.tar.gz`` with one top folder into ``dest``; return ``dest/<top folder>``.

    Does nothing (returns at once) when the same archive was already extracted there.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise HamqError(f"archive '{archive}' does not exist")
    st = archive.stat()
    stamp = {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = dest / f".{archive.name}.unpacked"
    if marker.exists():
        try:
            info = json.loads(marker.read_text())
        except ValueError:
            info = {}
        target = dest / str(info.get("folder", ""))
        if {k: info.get(k) for k in stamp} == stamp and info.get("folder") and target.is_dir():
            return target
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        top = _top_folder(tar, archive)
        tmp = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=dest))
        try:
            tar.extractall(tmp, filter="data")
            target = dest / top
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp / top, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(json.dumps({**stamp, "folder": top}))
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m hamq.data.shared ARCHIVE [DEST]``: unpack (default DEST: ``data``)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m hamq.data.shared ARCHIVE [DEST]", file=sys.stderr)
        return 2
    try:
        print(unpack(args[0], args[1] if len(args) == 2 else "data"))
    except HamqError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
