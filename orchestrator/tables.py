"""Tables as text: the one column-aligned layout of every table xorch prints
(``xorch status``, ``summary``, ``compare``, ``power``, the end of a launch), and
the same rows as Markdown, LaTeX, CSV or JSON for ``--format``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from orchestrator.errors import XorchError

__all__ = [
    "FORMATS",
    "Cell",
    "aligned_lines",
    "human_cell",
    "latex_escape",
    "markdown_escape",
    "render_rows",
]

FORMATS: tuple[str, ...] = ("table", "markdown", "latex", "csv", "json")

Cell: TypeAlias = "str | int | float"


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


def render_rows(header: Sequence[str], records: Sequence[Sequence[Cell]], fmt: str) -> str:
    """``records`` under ``header`` as ``fmt`` (one of FORMATS), ending in a newline."""
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise XorchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return writer(header, records)


def human_cell(cell: Cell) -> str:
    """A cell for people: 6 significant digits; ``n/a`` where a value is undefined."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, int):
        return str(cell)
    if math.isnan(cell):
        return "n/a"
    return f"{cell:.6g}"


def _table(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    rows = [list(header), *([human_cell(c) for c in r] for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    rows.insert(1, ["-" * w for w in widths])
    # Names read best left-aligned, numbers right-aligned so their digits line up.
    return "\n".join(aligned_lines(rows, numbers_right=True)) + "\n"


def _markdown(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(markdown_escape(c) for c in cells) + " |"

    rule = "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|"
    body = [line([human_cell(c) for c in r]) for r in records]
    return "\n".join([line(header), rule, *body]) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",  # in text mode (OT1) a bare < prints as an inverted !
    ">": r"\textgreater{}",
}

_MARKDOWN_SPECIAL = {"|": "\\|", "<": "&lt;", ">": "&gt;"}


def markdown_escape(text: str) -> str:
    """A cell's text for a Markdown table: ``|`` would end the cell and ``<``/``>``
    open an HTML tag (``n<10`` would vanish from the rendered page)."""
    return "".join(_MARKDOWN_SPECIAL.get(ch, ch) for ch in text)


def latex_escape(text: str) -> str:
    # One pass over the characters, so the braces of \textbackslash{} are not escaped again.
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return " & ".join(latex_escape(c) for c in cells) + r" \\"

    spec = "l" + "r" * (len(header) - 1)
    body = [line([human_cell(c) for c in r]) for r in records]
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\hline", line(header), r"\hline", *body]
    return "\n".join([*lines, r"\hline", r"\end{tabular}"]) + "\n"


def _machine(cell: Cell) -> str | int | float | None:
    """A cell for programs: full precision; None (empty in CSV, null in JSON) for nan,
    an undefined number; ``"inf"``/``"-inf"`` for an infinite one (strict JSON has no
    infinity, and null would read as "undefined"; CSV writes the same text, which
    pandas reads back as a float)."""
    if isinstance(cell, float) and not math.isfinite(cell):
        return None if math.isnan(cell) else ("inf" if cell > 0 else "-inf")
    return cell


def _csv(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    # repr of a float is its shortest exact form, so the numbers read back unchanged;
    # an empty cell is what summary.csv writes for "no value" too.
    writer.writerows([["" if v is None else v for v in map(_machine, r)] for r in records])
    return buffer.getvalue()


def _json(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    objects = [dict(zip(header, map(_machine, r), strict=True)) for r in records]
    # allow_nan=False: the output must be strict JSON that any parser accepts.
    return json.dumps(objects, indent=2, allow_nan=False) + "\n"


_WRITERS: Mapping[str, Callable[[Sequence[str], Sequence[Sequence[Cell]]], str]] = {
    "table": _table,
    "markdown": _markdown,
    "latex": _latex,
    "csv": _csv,
    "json": _json,
}
