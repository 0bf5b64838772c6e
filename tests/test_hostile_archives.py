"""Hostile drill: ``python -m hamq.data.shared ARCHIVE DEST`` on archives that are not
tars, are truncated, or would write outside their folder; nothing may be written outside
DEST. The cases call the module's ``main`` in-process (a subprocess costs seconds of
imports each); one test runs the real ``python -m`` entry point."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from hamq.data.shared import main as shared_main
from hostile import assert_refused, run_module

Member = tuple[str, bytes | None, bytes, str]  # (name, data, tar type, link target)
REG = tarfile.REGTYPE


def make_tar(path: Path, members: list[Member], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.size = len(data) if kind == REG and data is not None else 0
            tar.addfile(info, io.BytesIO(data) if kind == REG and data is not None else None)
    return path


def good_members() -> list[Member]:
    return [("top/a.txt", b"x" * 50_000, REG, ""), ("top/b.txt", b"y", REG, "")]


def _cut(fraction: float) -> Callable[[Path], Path]:
    def build(p: Path) -> Path:
        raw = make_tar(p, good_members()).read_bytes()
        p.write_bytes(raw[: int(len(raw) * fraction)] if fraction < 1 else raw[:-4])
        return p

    return build


def _bad_gzip_crc(p: Path) -> Path:
    raw = bytearray(make_tar(p, good_members()).read_bytes())
    raw[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    p.write_bytes(bytes(raw))
    return p


def _gzip_of_junk(p: Path) -> Path:
    p.write_bytes(gzip.compress(b"not a tar archive at all" * 100))
    return p


# (id, builder of the archive at the given path, words the error must contain)
CASES: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    ("plain text file", lambda p: (p.write_text("hello world"), p)[1], ["not a readable tar"]),
    ("empty file", lambda p: (p.write_bytes(b""), p)[1], ["not a readable tar"]),
    ("gzip of junk", _gzip_of_junk, ["not a readable tar"]),
    ("truncated gzip (half)", _cut(0.5), ["truncated"]),
    ("truncated gzip (trailer cut)", _cut(1.0), ["end-of-stream"]),
    ("gzip with a bad checksum", _bad_gzip_crc, ["CRC"]),
    (
        "path traversal inside the folder",
        lambda p: make_tar(p, [*good_members(), ("top/../../evil.txt", b"x", REG, "")]),
        ["top/../../evil.txt", "outside its folder"],
    ),
    (
        "path traversal at the top",
        lambda p: make_tar(p, [("../evil/a.txt", b"x", REG, "")]),
        ["../evil/a.txt", "outside its folder"],
    ),
    (
        "absolute path",
        lambda p: make_tar(p, [("/tmp/hamq-evil-abs/a.txt", b"x", REG, "")]),
        ["/tmp/hamq-evil-abs/a.txt", "outside its folder"],
    ),
    (
        "symlink to an absolute path",
        lambda p: make_tar(
            p, [*good_members(), ("top/link", None, tarfile.SYMTYPE, "/etc/passwd")]
        ),
        ["unsafe member", "absolute"],
    ),
    (
        "symlink out of the folder",
        lambda p: make_tar(
            p, [*good_members(), ("top/link", None, tarfile.SYMTYPE, "../../../etc/passwd")]
        ),
        ["unsafe member", "outside the destination"],
    ),
    (
        "hard link to an absolute path",
        lambda p: make_tar(p, [*good_members(), ("top/hl", None, tarfile.LNKTYPE, "/etc/passwd")]),
        ["unsafe member"],
    ),
    (
        "character device",
        lambda p: make_tar(p, [*good_members(), ("top/dev", None, tarfile.CHRTYPE, "")]),
        ["top/dev", "not a file, folder or link"],
    ),
    (
        "fifo",
        lambda p: make_tar(p, [*good_members(), ("top/fifo", None, tarfile.FIFOTYPE, "")]),
        ["top/fifo", "not a file, folder or link"],
    ),
    ("no members", lambda p: make_tar(p, []), ["0 top-level entries"]),
    (
        "two top folders",
        lambda p: make_tar(p, [("one/a", b"x", REG, ""), ("two/b", b"y", REG, "")]),
        ["2 top-level entries"],
    ),
    (
        "a single file, no folder",
        lambda p: make_tar(p, [("lonely.txt", b"x", REG, "")]),
        ["no top folder"],
    ),
]


@pytest.mark.parametrize(("case", "build", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_archives_are_refused(
    case: str,
    build: Callable[[Path], Path],
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    archive = build(tmp_path / "thing.tar.gz")
    dest = tmp_path / "box" / "dest"
    code = shared_main([str(archive), str(dest)])
    assert_refused(code, capsys.readouterr().err, [str(archive), *needles])
    # nothing escaped the destination, nothing half-extracted stayed in it
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) in ([], ["dest"])
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not Path("/tmp/hamq-evil-abs").exists()


def test_archive_and_destination_problems(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = make_tar(tmp_path / "good.tar.gz", good_members())
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args, needles in (
        ([str(tmp_path), str(tmp_path / "d")], ["is a folder"]),
        ([str(tmp_path / "none.tar.gz"), str(tmp_path / "d")], ["does not exist"]),
        ([str(good), str(afile)], ["afile", "is a file"]),
    ):
        assert_refused(shared_main(args), capsys.readouterr().err, needles)


def test_entry_point_refuses_and_unpacks(tmp_path: Path) -> None:
    """``python -m hamq.data.shared``: a traversal is refused in one line, a sound archive
    unpacks."""
    bad = make_tar(tmp_path / "bad.tar.gz", [("../evil.txt", b"x", REG, "")])
    proc = run_module("hamq.data.shared", str(bad), str(tmp_path / "d"), timeout=300)
    assert_refused(proc.returncode, proc.stderr, ["../evil.txt", "outside its folder"])
    assert not (tmp_path / "evil.txt").exists()
    good = make_tar(tmp_path / "good.tar.gz", good_members())
    proc = run_module("hamq.data.shared", str(good), str(tmp_path / "ok"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ok" / "top" / "a.txt").read_bytes() == b"x" * 50_000
