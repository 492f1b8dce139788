"""Pictures of a study: learning curves over seeds and the spread of final metrics.

``plot_study`` reads only files (runner_state.json and each completed run's
CSVLogger logs) and writes two PNGs into ``<study>/plots/``:

- ``curves.png``: one panel per metric, x = epoch. Each panel has every run's
  curve as a faint line, the per-epoch mean over the runs as a bold line, and
  one shaded band of mean ± std (ddof=1; zero width where only one run reached
  that epoch). By default the metrics are every ``train/*`` and ``val/*`` metric
  logged once per epoch; step-level metrics (``*_step``, or several values in
  one epoch) are left out unless named.
- ``spread.png``: one panel per final metric (``RunRecord.metrics``), a box plot
  with each seed's value drawn over it as a point, jittered sideways so equal
  values stay visible. Non-finite values cannot be placed and are left out; the
  panel says how many.

When ``metrics`` is given it chooses the panels of both files; a name must be a
curve metric or a final metric, and a file none of the names fits is not written.

A run's per-epoch value of a metric is the last one logged in that epoch. A
resumed run has one ``version_N`` log per child start: they are merged in
version order, and an epoch found in a later version replaces that whole epoch
of the earlier ones (the retried epoch is the one that counted).

matplotlib is imported inside the functions, and figures are drawn on an Agg
canvas made for them, never through pyplot: nothing needs a display, no global
backend is switched under a caller that uses pyplot itself, and no figure is
left registered in pyplot's global list.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from orchestrator.contract.atomic import atomic_write_bytes
from orchestrator.contract.paths import RunPaths, StudyPaths
from orchestrator.errors import XorchError
from orchestrator.state import RunRecord
from orchestrator.state_store import load_state

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["CURVE_PREFIXES", "plot_study", "run_epoch_metrics"]

CURVE_PREFIXES: tuple[str, ...] = ("train/", "val/")

_DPI = 110
_JITTER = 0.12  # half-width of the sideways scatter of seed points, in box widths


@dataclass(frozen=True)
class _RunCurves:
    """One completed run's per-epoch metrics (index: epoch) and its step-level names."""

    label: str
    epochs: pd.DataFrame
    step_level: frozenset[str]


# --------------------------------------------------------------------------- reading logs


def run_epoch_metrics(run_dir: Path) -> pd.DataFrame:
    """One run's metrics per epoch, all its CSVLogger versions merged.

    Index: epoch (int, sorted); one float column per metric; NaN where a metric
    was not logged in an epoch. Empty when the run has no readable log.
    """
    return _read_run(RunPaths(Path(run_dir)))[0]


def _read_run(run: RunPaths) -> tuple[pd.DataFrame, frozenset[str]]:
    merged = pd.DataFrame()
    step_level: set[str] = set()
    for path in run.csv_metric_logs():
        log = _read_log(path)
        if log is None:
            continue
        epochs, many = log
        step_level |= many
        # Later versions win for a whole epoch: drop it from what came before.
        kept = merged.drop(index=epochs.index, errors="ignore")
        merged = epochs if kept.empty else pd.concat([kept, epochs])
    return merged.sort_index(), frozenset(step_level)


def _read_log(path: Path) -> tuple[pd.DataFrame, set[str]] | None:
    """Per-epoch values of one metrics.csv and the metrics logged more than once an epoch."""
    try:
        # A crash can cut the last line short: skip such a line, keep the rest.
        raw = pd.read_csv(path, on_bad_lines="skip")
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    if "epoch" not in raw.columns:
        return None
    values = raw.drop(columns=["epoch", "step"], errors="ignore").apply(
        pd.to_numeric, errors="coerce"
    )
    values["epoch"] = pd.to_numeric(raw["epoch"], errors="coerce")
    values = values.dropna(subset=["epoch"])
    if values.empty:
        return None
    values["epoch"] = values["epoch"].astype(int)
    grouped = values.groupby("epoch")
    per_epoch = grouped.last()  # the last non-null value of each column in each epoch
    counts = grouped.count().max()
    many = {str(name) for name, count in counts.items() if count > 1}
    per_epoch.index = per_epoch.index.astype(int)
    return per_epoch.astype(float), many


# --------------------------------------------------------------------------- the study


def plot_study(study_dir: Path, metrics: Sequence[str] | None = None) -> list[Path]:
    """Write ``plots/curves.png`` and ``plots/spread.png``; return the paths written.

    Raises XorchError when the folder holds no study, the study has no completed
    run, its completed runs left neither CSV logs nor final metrics, or a named
    metric is unknown. Runs without CSV logs (a command run that only wrote
    metrics.json) give spread.png alone.
    """
    written = []
    for path, figure in _study_figures(Path(study_dir), metrics):
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_png(figure, path)
        written.append(path)
    return written


def _study_figures(
    study_dir: Path, metrics: Sequence[str] | None = None
) -> list[tuple[Path, Figure]]:
    """The figures plot_study saves, each with its target path; nothing is written."""
    paths = StudyPaths(study_dir)
    state = load_state(paths)
    if state is None:
        raise XorchError(f"{study_dir} holds no xorch study ({paths.state.name} is missing)")
    runs = state.completed
    if not runs:
        raise XorchError(f"the study in {study_dir} has no completed run to plot yet")
    curves = [_run_curves(paths, run) for run in runs]
    curves = [c for c in curves if not c.epochs.empty]
    final_names = sorted({name for run in runs for name in run.metrics})
    # A command run that only wrote metrics.json has final values but no
    # curves: its study still gets spread.png.
    if not curves and not final_names:
        raise XorchError(
            f"no completed run in {study_dir} has a CSV log "
            "(lightning_logs/version_*/metrics.csv) or final metrics to plot"
        )
    curve_names = sorted(
        {str(name) for c in curves for name in c.epochs.columns if c.epochs[name].notna().any()}
    )

    if metrics is None:
        step_level = frozenset().union(*(c.step_level for c in curves))
        chosen_curves = [
            name
            for name in curve_names
            if name.startswith(CURVE_PREFIXES)
            and not name.endswith("_step")
            and name not in step_level
        ]
        if curves and not chosen_curves:
            raise XorchError(
                f"the CSV logs in {study_dir} have no train/ or val/ metric logged once per "
                f"epoch; name the metrics to plot (logged: {', '.join(curve_names)})"
            )
        chosen_final = final_names
    else:
        if isinstance(metrics, str):  # a bare "val/loss" would otherwise become letters
            metrics = [metrics]
        wanted = list(dict.fromkeys(metrics))
        unknown = [m for m in wanted if m not in curve_names and m not in final_names]
        if unknown:
            raise XorchError(
                f"metric {', '.join(unknown)} is not in the study's logs; per-epoch: "
                f"{', '.join(curve_names) or 'none'}; final: {', '.join(final_names) or 'none'}"
            )
        chosen_curves = [m for m in wanted if m in curve_names]
        chosen_final = [m for m in wanted if m in final_names]

    figures: list[tuple[Path, Figure]] = []
    if chosen_curves:
        figures.append((paths.curves_plot, _curves_figure(curves, chosen_curves)))
    if chosen_final:
        figures.append((paths.spread_plot, _spread_figure(runs, chosen_final)))
    return figures


def _run_curves(paths: StudyPaths, run: RunRecord) -> _RunCurves:
    epochs, step_level = _read_run(paths.run(run.dir))
    return _RunCurves(f"run {run.index} (seed {run.seed})", epochs, step_level)


# --------------------------------------------------------------------------- drawing


def _new_figure(panels: int, max_columns: int, panel_size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(panels, max_columns)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows), dpi=_DPI)
    FigureCanvasAgg(figure)  # attaches itself to the figure
    for i in range(panels):
        figure.add_subplot(rows, columns, i + 1)
    return figure


def _curves_figure(curves: Sequence[_RunCurves], metrics: Sequence[str]) -> Figure:
    """One panel per metric: faint per-run lines, the mean, and one mean ± std band."""
    from matplotlib.ticker import MaxNLocator

    figure = _new_figure(len(metrics), max_columns=2, panel_size=(6.0, 3.6))
    for axes, name in zip(figure.axes, metrics, strict=True):
        table = pd.DataFrame(
            {c.label: c.epochs[name] for c in curves if name in c.epochs.columns}
        ).dropna(how="all")
        epochs = table.index.to_numpy(dtype=float)
        mean = table.mean(axis=1).to_numpy(dtype=float)
        # One run at an epoch has no spread to show: a zero-width band, as in summary.csv.
        std = table.std(axis=1, ddof=1).fillna(0.0).to_numpy(dtype=float)
        for label in table.columns:
            seed_curve = table[label].dropna()
            axes.plot(seed_curve.index, seed_curve.to_numpy(), color="0.55", lw=0.8, alpha=0.5)
        axes.plot(epochs, mean, color="C0", lw=2.0, label=f"mean of {table.shape[1]} runs")
        axes.fill_between(epochs, mean - std, mean + std, color="C0", alpha=0.25, label="± std")
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _spread_figure(runs: Sequence[RunRecord], metrics: Sequence[str]) -> Figure:
    """One panel per final metric: a box plot with each seed's value as a point."""
    # A fixed seed: the same study always gives the same picture.
    rng = np.random.default_rng(0)
    figure = _new_figure(len(metrics), max_columns=4, panel_size=(3.2, 4.0))
    for axes, name in zip(figure.axes, metrics, strict=True):
        values = np.array([r.metrics[name] for r in runs if name in r.metrics], dtype=float)
        finite = values[np.isfinite(values)]
        _spread_panel(axes, finite, rng)
        left_out = values.size - finite.size
        note = f"n={finite.size}" + (f", {left_out} non-finite left out" if left_out else "")
        axes.set_xticks([1.0], [note])
        axes.set_title(name)
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _spread_panel(axes: Axes, values: np.ndarray, rng: np.random.Generator) -> None:
    if values.size == 0:
        axes.text(0.5, 0.5, "no finite value", ha="center", va="center",
                  transform=axes.transAxes)  # fmt: skip
        axes.set_xlim(0.5, 1.5)
        return
    # showfliers=False: every value is drawn as a point anyway, outliers included.
    axes.boxplot([values], positions=[1.0], widths=0.5, showfliers=False)
    jitter = rng.uniform(-_JITTER, _JITTER, size=values.size)
    axes.scatter(1.0 + jitter, values, s=18, color="C0", alpha=0.8, zorder=3)
    axes.set_xlim(0.5, 1.5)


def _save_png(figure: Figure, path: Path) -> None:
    # Drawn in memory, then written beside the target and renamed (atomic.py),
    # so a reader never sees half a PNG.
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
