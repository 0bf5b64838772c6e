"""Markdown (GitHub) pipe tables, the one format every report and script table here uses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A pipe table: the header, its rule, one line per row (no trailing newline).

    Every row must have as many cells as ``head``: a short row would shift its cells
    under the wrong columns, so it is refused (``ValueError`` naming the row).
    """
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(rows):
        if len(row) != len(head):
            raise ValueError(f"row {i} has {len(row)} cells for {len(head)} columns: {row!r}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
