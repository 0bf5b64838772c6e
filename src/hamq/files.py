"""Reading the files a user hands hamq (configs, hardware files, sweeps, run records).

One place decides what a readable text file is, so every reader refuses the same bad
inputs with one line naming the file and the fix:

* a missing path, a folder where a file goes, a symlink loop, an unreadable file;
* a file over :data:`MAX_TEXT_BYTES` (1 MiB; hamq's own files are a few KiB), checked
  before reading, so a huge file costs nothing;
* bytes that are not UTF-8 (the offending byte and offset are named);
* YAML aliases (``*name``): a few lines of anchors and aliases expand exponentially (the
  "billion laughs"), and hamq's files never need them; duplicate keys, which YAML would
  silently resolve to the last one; tags other than the plain ones (``safe_load`` already
  refuses ``!!python/...``).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from hamq.errors import HamqError

#: Largest config, hardware, sweep or record file read (bytes).
MAX_TEXT_BYTES = 1 << 20


def read_text(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path`` (``what`` names it in errors: "config file", ...)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise HamqError(f"{what} '{p}' does not exist") from None
    except OSError as err:  # a symlink loop, a path through a file, no permission
        raise HamqError(f"{what} '{p}' cannot be opened ({err.strerror}); check the path") from None
    if p.is_dir():
        raise HamqError(f"{what} '{p}' is a folder; give the path of a file")
    if not stat.S_ISREG(st.st_mode):  # a device or pipe could be read forever
        raise HamqError(f"{what} '{p}' is not a regular file (a device or a pipe); give a file")
    if st.st_size > max_bytes:
        raise HamqError(
            f"{what} '{p}' is {st.st_size} bytes, more than the {max_bytes} a {what} may have;"
            " is it the right file?"
        )
    try:
        with p.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as err:
        raise HamqError(
            f"{what} '{p}' cannot be read ({err.strerror}); check its permissions"
        ) from None
    if len(raw) > max_bytes:  # the file grew since stat()
        raise HamqError(f"{what} '{p}' is longer than {max_bytes} bytes; is it the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HamqError(
            f"{what} '{p}' is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset "
            f"{err.start}); save it as UTF-8"
        ) from None


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"found the alias *{event.anchor}; hamq files may not use YAML aliases, "
                "write the values out",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"the key {key!r} appears twice; keep one",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text``; HamqError names ``source`` and the first problem."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None)
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        detail = problem or str(err).splitlines()[0]
        raise HamqError(f"{source} is not valid YAML: {detail}{where}") from None
    except RecursionError:
        raise HamqError(f"{source} is nested too deeply to be a hamq file") from None


def load_yaml_file(path: str | Path, what: str, allow_empty: bool = False) -> Any:
    """The YAML document of a user file; an empty file is an error unless ``allow_empty``."""
    text = read_text(path, what)
    data = parse_yaml(text, f"{what} '{path}'")
    if data is None and not allow_empty:
        raise HamqError(f"{what} '{path}' is empty; it must hold a YAML mapping (key: value)")
    return data


def load_json_file(path: str | Path, what: str) -> Any:
    """The JSON document of a file hamq wrote (``run.json``, ...), checked like YAML ones."""
    text = read_text(path, what, max_bytes=64 * MAX_TEXT_BYTES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise HamqError(
            f"{what} '{path}' is not valid JSON ({err.msg} at line {err.lineno}, column "
            f"{err.colno}); hamq writes this file: restore it, or train the run again"
        ) from None
    except RecursionError:
        raise HamqError(f"{what} '{path}' is nested too deeply to be a hamq file") from None


def file_mode() -> int:
    """The mode a new file gets under the process umask (``0o666 & ~umask``).

    ``tempfile.mkstemp`` creates 0600 files whatever the umask; hamq's atomic writes chmod
    their temporary file to this before the rename, so run folders and caches shared with
    a group get the same modes as files written with ``open``.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
