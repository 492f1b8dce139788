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

In a study of variants each variant has its colour (the same in every figure):
``curves.png`` draws one mean line and band per variant (its seeds faint in its
colour), ``spread.png`` one box with the seed points per variant, side by side,
and a third file, ``differences.png`` (``differences_figure``), shows per final
metric each variant minus the reference seed by seed (the points), their mean
and the paired t interval of that mean (the bar), against a line at zero: the
comparison table's ``diff`` and ``diff_ci_low``/``diff_ci_high``
(``orchestrator.inference.contrast``), drawn.

When ``metrics`` is given it chooses the panels of both files; a name must be a
curve metric or a final metric, and a file none of the names fits is not written.

The runs' logs are read by ``run_logs`` (per epoch, resumed versions merged),
the figures drawn on ``figures``' canvas: matplotlib is imported inside the
functions, on an Agg canvas made for them, never through pyplot: nothing needs a
display, no global backend is switched under a caller that uses pyplot itself,
and no figure is left registered in pyplot's global list. ``differences.png`` is
``difference_plot``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd

from orchestrator.commands.difference_plot import DIFFERENCES_PNG, differences_figure
from orchestrator.commands.figures import JITTER, balanced_columns, new_figure, save_png
from orchestrator.commands.run_logs import RunCurves, run_curves, run_epoch_metrics
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import XorchError
from orchestrator.seed_table import from_runs
from orchestrator.state import RunRecord
from orchestrator.state_store import load_state

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["CURVE_PREFIXES", "DIFFERENCES_PNG", "differences_figure", "plot_study",
           "run_epoch_metrics"]  # fmt: skip

CURVE_PREFIXES: tuple[str, ...] = ("train/", "val/")
_Item = TypeVar("_Item")  # what a figure is drawn from: the runs' curves, or the runs


# --------------------------------------------------------------------------- the study


def plot_study(study_dir: Path, metrics: Sequence[str] | None = None) -> list[Path]:
    """Write ``plots/curves.png`` and ``plots/spread.png``; return the paths written.

    Raises XorchError when the folder holds no study, the study has no completed
    run, its completed runs left neither CSV logs nor final metrics, or a named
    metric is unknown. Runs without CSV logs (a command run that only wrote
    metrics.json) give spread.png alone.
    """
    figures = study_figures(Path(study_dir), metrics)
    state = load_state(StudyPaths(Path(study_dir)))
    if state is not None and state.variant_configs:
        difference = differences_figure(state, metrics)
        if difference is not None:
            figures.append((StudyPaths(Path(study_dir)).plots / DIFFERENCES_PNG, difference))
    written = []
    for path, figure in figures:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(figure, path)
        written.append(path)
    return written


def study_figures(
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
    curves = [run_curves(paths, run) for run in runs]
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

    chosen_curves, chosen_final = _chosen_metrics(
        study_dir, curves, curve_names, final_names, metrics
    )
    variants = list(state.variant_configs)
    return [
        *_drawn(paths.curves_plot, curves, chosen_curves, variants, _curves_figure,
                _variant_curves_figure),
        *_drawn(paths.spread_plot, runs, chosen_final, variants, _spread_figure,
                _variant_spread_figure),
    ]  # fmt: skip


def _drawn(
    path: Path,
    items: Sequence[_Item],
    metrics: Sequence[str],
    variants: Sequence[str],
    one_config: Callable[[Sequence[_Item], Sequence[str]], Figure],
    per_variant: Callable[[Sequence[_Item], Sequence[str], Sequence[str]], Figure],
) -> list[tuple[Path, Figure]]:
    """The figure for ``path``, drawn per variant in a study of variants; none when no
    metric was chosen for it."""
    if not metrics:
        return []
    figure = per_variant(items, metrics, variants) if variants else one_config(items, metrics)
    return [(path, figure)]


def _chosen_metrics(
    study_dir: Path,
    curves: Sequence[RunCurves],
    curve_names: Sequence[str],
    final_names: Sequence[str],
    metrics: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    """The panels of curves.png and of spread.png: the metrics named (each must
    be a curve or a final metric), else every per-epoch train/ and val/ curve and
    every final metric."""
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
        chosen_final = list(final_names)
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
    return chosen_curves, chosen_final


# --------------------------------------------------------------------------- drawing


def _curves_figure(curves: Sequence[RunCurves], metrics: Sequence[str]) -> Figure:
    """One panel per metric: faint per-run lines, the mean, and one mean ± std band."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(len(metrics), max_columns=2, panel_size=(6.0, 3.6))
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
    figure = new_figure(len(metrics), max_columns=4, panel_size=(3.2, 4.0))
    table = from_runs(runs)
    for axes, name in zip(figure.axes, metrics, strict=True):
        values = np.array(list(table.every_run().get(name, {}).values()), dtype=float)
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
    jitter = rng.uniform(-JITTER, JITTER, size=values.size)
    axes.scatter(1.0 + jitter, values, s=18, color="C0", alpha=0.8, zorder=3)
    axes.set_xlim(0.5, 1.5)


def _variant_curves_figure(
    curves: Sequence[RunCurves], metrics: Sequence[str], variants: Sequence[str]
) -> Figure:
    """One panel per metric; per variant, in its colour: its seeds faint, its mean bold,
    and its mean ± std band."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(len(metrics), max_columns=2, panel_size=(6.0, 3.8))
    for axes, name in zip(figure.axes, metrics, strict=True):
        for position, variant in enumerate(variants):
            colour = f"C{position % 10}"
            table = pd.DataFrame(
                {c.label: c.epochs[name] for c in curves
                 if c.variant == variant and name in c.epochs.columns}
            ).dropna(how="all")  # fmt: skip
            if table.empty:
                continue
            for label in table.columns:
                seed_curve = table[label].dropna()
                axes.plot(seed_curve.index, seed_curve.to_numpy(), color=colour, lw=0.7,
                          alpha=0.3)  # fmt: skip
            epochs = table.index.to_numpy(dtype=float)
            mean = table.mean(axis=1).to_numpy(dtype=float)
            std = table.std(axis=1, ddof=1).fillna(0.0).to_numpy(dtype=float)
            axes.plot(epochs, mean, color=colour, lw=2.2,
                      label=f"{variant} (mean of {table.shape[1]})")  # fmt: skip
            axes.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.18)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", title="band: ± std", title_fontsize="small")
    figure.tight_layout()
    return figure


def _variant_spread_figure(
    runs: Sequence[RunRecord], metrics: Sequence[str], variants: Sequence[str]
) -> Figure:
    """One panel per final metric: per variant a box plot with each seed as a point."""
    rng = np.random.default_rng(0)
    width = max(2.9, 0.6 + 0.75 * len(variants))
    figure = new_figure(len(metrics), balanced_columns(len(metrics), width), (width, 4.0))
    table = from_runs(runs)
    for axes, name in zip(figure.axes, metrics, strict=True):
        labels = []
        for position, variant in enumerate(variants, start=1):
            values = np.array(list(table.values(name, variant).values()), dtype=float)
            finite = values[np.isfinite(values)]
            left_out = values.size - finite.size
            labels.append(f"{variant}\nn={finite.size}" + (f", {left_out} n/f" if left_out else ""))
            if finite.size == 0:
                continue
            axes.boxplot([finite], positions=[position], widths=0.5, showfliers=False,
                         medianprops={"color": "black"})  # not a variant's colour  # fmt: skip
            jitter = rng.uniform(-JITTER, JITTER, size=finite.size)
            axes.scatter(position + jitter, finite, s=18, alpha=0.85, zorder=3,
                         color=f"C{(position - 1) % 10}")  # fmt: skip
        axes.set_xticks(range(1, len(variants) + 1), labels, fontsize="small")
        axes.set_xlim(0.4, len(variants) + 0.6)
        axes.set_title(name)
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure
