"""Unpack the data archives of ``../shared/data`` into a git-ignored folder, once.

    from hamq.data.shared import unpack
    root = unpack("../shared/data/cifar10-jpeg.tar.gz", "data")   # -> data/cifar10-jpeg

or from a shell: ``python -m hamq.data.shared ../shared/data/cifar10-jpeg.tar.gz data``.

An archive is extracted only when its marker file ``dest/.<archive name>.unpacked`` is
missing or records a different archive (size, mtime); extraction goes to a temporary
folder inside ``dest`` that is renamed into place, so an interrupted run leaves no half
folder behind. Before anything is written, every member must be a plain relative path
under the one top folder (no absolute paths, no ``..``) and a file, folder or link; then
tarfile's ``data`` filter refuses links out of the folder and device files. A file that is
not a tar archive, a truncated or corrupt one (the compressed stream is read to its end, so
a cut-off tail is noticed), or a destination that is not a folder is a HamqError.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from hamq.errors import HamqError, one_line

#: ``../shared/data`` seen from the repository root (the checkout's parent holds ``shared``).
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def shared_data_dir() -> Path | None:
    """``$HAMQ_SHARED_DATA`` or ``<checkout>/../shared/data`` if it exists, else None."""
    env = os.environ.get("HAMQ_SHARED_DATA")
    path = Path(env) if env else SHARED_DATA
    return path if path.is_dir() else None


def _top_folder(tar: tarfile.TarFile, archive: Path) -> str:
    members = tar.getmembers()
    for m in members:
        parts = PurePosixPath(m.name).parts
        if m.name.startswith("/") or ".." in parts:
            raise HamqError(
                f"archive '{archive}' holds '{m.name[:100]}', a path outside its folder; "
                "refusing to unpack it (use an archive of one folder with relative paths)"
            )
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise HamqError(
                f"archive '{archive}' holds '{m.name[:100]}', which is not a file, folder or "
                "link; refusing to unpack it"
            )
    tops = {
        PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts != (".",)
    }
    tops.discard(".")
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
    if archive.is_dir():
        raise HamqError(f"archive '{archive}' is a folder; give a .tar.gz file")
    if not archive.is_file():
        raise HamqError(f"archive '{archive}' does not exist")
    if dest.exists() and not dest.is_dir():
        raise HamqError(f"destination '{dest}' is a file; give a folder to unpack into")
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
    try:
        with tarfile.open(archive, "r:*") as tar:
            top = _top_folder(tar, archive)
            tmp = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=dest))
            try:
                tar.extractall(tmp, filter="data")
                _read_to_end(tar)
                if not (tmp / top).is_dir():
                    raise HamqError(f"archive '{archive}' has no top folder, only '{top}'")
                target = dest / top
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp / top, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        if isinstance(err, OSError) and not isinstance(err, tarfile.TarError | EOFError):
            if err.filename is not None:
                raise HamqError(
                    f"cannot unpack '{archive}' into '{dest}': {err.strerror} ('{err.filename}')"
                ) from None
        detail = " ".join(str(err).split())[:200]
        if isinstance(err, tarfile.FilterError):
            raise HamqError(
                f"archive '{archive}' holds an unsafe member ({detail}); refusing to unpack it"
            ) from None
        raise HamqError(
            f"archive '{archive}' is not a readable tar archive, or is truncated or unsafe "
            f"({type(err).__name__}: {detail}); download or copy it again"
        ) from None
    marker.write_text(json.dumps({**stamp, "folder": top}))
    return target


def _read_to_end(tar: tarfile.TarFile) -> None:
    """Read the compressed stream to its end, so that a truncated tail or a bad checksum is
    noticed (tar stops at its end-of-archive blocks, before the gzip trailer)."""
    fileobj = tar.fileobj
    if fileobj is None:
        return
    while fileobj.read(1 << 20):
        pass


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
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to unpack", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
