"""User-facing errors.

Anything a user can cause (a bad config value, a missing folder, a corrupt file) raises
:class:`HamqError` with a one-line message naming the problem and the fix. The CLI prints
the message and exits with code 2; it never shows a traceback for these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HamqError(Exception):
    """An error caused by user input; its message is shown as is, on one line."""


def closest(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest valid name, or '' if none is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> HamqError:
    """Error for a name that is not in a registry, listing the valid ones."""
    choices = sorted(choices)
    return HamqError(
        f"unknown {kind} '{name}'{closest(name, choices)}; allowed: {', '.join(choices)}"
    )


#: Longest message the CLI prints; a longer one is cut (a hostile value must not flood stderr).
MAX_MESSAGE_CHARS = 1000


def one_line(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` as one printable line: line breaks escaped, unencodable characters
    escaped, cut to ``limit`` characters with a note of how much was left out."""
    text = message.replace("\r", "\\r").replace("\n", "\\n")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        text = f"{text[: limit - 40]}... ({len(text) - limit + 40} more characters)"
    return text
