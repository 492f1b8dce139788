"""The plots' canvas: an Agg figure of equal panels (never through pyplot, so
nothing needs a display and no global backend or figure list is touched), the
panel layout, and the PNG written atomically."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.contract.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["JITTER", "balanced_columns", "new_figure", "save_png"]

_DPI = 110
JITTER = 0.12  # half-width of the sideways scatter of seed points, in box widths


def new_figure(panels: int, max_columns: int, panel_size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(panels, max_columns)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows), dpi=_DPI)
    FigureCanvasAgg(figure)  # attaches itself to the figure
    for i in range(panels):
        figure.add_subplot(rows, columns, i + 1)
    return figure


def balanced_columns(panels: int, panel_width: float, page_width: float = 12.0) -> int:
    """As many columns as fit ``page_width`` inches, then as few as keep the rows full:
    four panels that fit three across go two by two, not three and one."""
    most = max(1, int(page_width // panel_width))
    return max(1, math.ceil(panels / math.ceil(panels / most)))


def save_png(figure: Figure, path: Path) -> None:
    # Drawn in memory, then written beside the target and renamed (atomic.py),
    # so a reader never sees half a PNG.
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
