"""Column-aligned plain-text tables: the one layout of every table xorch prints
(``xorch status``, ``summary``, ``compare``, ``power``, the end of a launch)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["aligned_lines"]


def aligned_lines(rows: Sequence[Sequence[str]], numbers_right: bool = False) -> list[str]:
    """``rows`` (the header first) padded into columns two spaces apart, with
    trailing blanks cut. ``numbers_right``: every column but the first is
    right-aligned, so the digits of numbers line up."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        pad = str.rjust if numbers_right else str.ljust
        cells += [pad(c, w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return [line(row) for row in rows]
