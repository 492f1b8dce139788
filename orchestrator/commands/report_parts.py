"""Pieces of ``xorch report``'s HTML shared by its modules: escaping, tables,
intervals and figures as ``data:`` URLs (so the page needs no other file)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from orchestrator.tables import human_cell

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["esc", "figure_html", "html_table", "interval", "png_data_url"]


def png_data_url(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def interval(low: float, high: float) -> str:
    if low != low or high != high:  # nan
        return "n/a"
    return f"[{human_cell(low)}, {human_cell(high)}]"


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]],
           numeric: Sequence[int] | None = None) -> str:  # fmt: skip
    """An HTML table; ``numeric`` columns (default: all but the first and last) align right."""
    right = set(range(1, len(header) - 1)) if numeric is None else set(numeric)

    def cells(row: Sequence[str], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=num' if i in right else ''}>{esc(c)}</{tag}>"
            for i, c in enumerate(row)
        )

    head = f"<thead><tr>{cells(header, 'th')}</tr></thead>"
    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return f"<div class='scroll'><table>{head}<tbody>{body}</tbody></table></div>"


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def figure_html(figure: Figure, alt: str, caption: str) -> str:
    """A figure embedded as a PNG, with its caption."""
    return (f"<figure><img alt='{esc(alt)}' src='{png_data_url(figure)}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>")  # fmt: skip
