"""``differences.png`` of a study of variants: per final metric, each variant
minus the reference seed by seed (the points), their mean and the paired t
interval of that mean (the bar), against a line at zero: the comparison table's
``diff`` and ``diff_ci_low``/``diff_ci_high`` (``orchestrator.inference.contrast``),
drawn."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from orchestrator.commands.figures import JITTER, balanced_columns, new_figure
from orchestrator.state import StudyState

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DIFFERENCES_PNG", "differences_figure"]

DIFFERENCES_PNG = "differences.png"  # in plots/, beside curves.png and spread.png

# variant -> metric -> seed -> value
_Groups = Mapping[str, Mapping[str, Mapping[int, float]]]


def differences_figure(state: StudyState, metrics: Sequence[str] | None = None) -> Figure | None:
    """Per final metric, each variant minus the reference on the seeds both completed:
    the seeds as points, the mean difference with its paired 95% t interval as a bar,
    and a line at zero. None when no variant shares a completed seed with the reference."""
    from orchestrator.commands.compare import variant_groups
    from orchestrator.inference import default_goal

    reference = state.compare_to or next(iter(state.variant_configs))
    groups = variant_groups(state)
    others = [v for v in groups if v != reference]
    logged = sorted({m for values in groups.values() for m in values})
    names = [m for m in (metrics or logged) if m in logged]
    names = [
        m for m in names
        if any(set(groups[v].get(m, {})) & set(groups[reference].get(m, {})) for v in others)
    ]  # fmt: skip
    if not names or not others:
        return None
    width = max(2.9, 0.9 + 0.8 * len(others))
    figure = new_figure(len(names), balanced_columns(len(names), width), (width, 4.2))
    rng = np.random.default_rng(0)
    colours = {v: f"C{i % 10}" for i, v in enumerate(groups)}
    for axes, name in zip(figure.axes, names, strict=True):
        labels = _difference_panel(axes, name, groups, reference, others, colours, rng)
        axes.axhline(0.0, color="0.35", lw=1.0, ls="--", label="no difference")
        if axes is figure.axes[0]:
            _legend(axes)
        axes.set_xticks(range(1, len(others) + 1), labels, fontsize="small")
        axes.set_xlim(0.4, len(others) + 0.8)
        goal = state.goal.get(name) or default_goal(name).value
        better = "lower" if goal == "min" else "higher"
        axes.set_title(f"{name} minus {reference}\n({better} is better)", fontsize="small")
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _difference_panel(
    axes: Axes,
    name: str,
    groups: _Groups,
    reference: str,
    others: Sequence[str],
    colours: Mapping[str, str],
    rng: np.random.Generator,
) -> list[str]:
    """One metric's panel: per variant its seeds' differences and the mean's bar;
    returns the x labels."""
    from orchestrator.inference import contrast

    base = groups[reference].get(name, {})
    labels = []
    for position, variant in enumerate(others, start=1):
        mine = groups[variant].get(name, {})
        shared = sorted(set(mine) & set(base))
        diffs = np.array([mine[s] - base[s] for s in shared], dtype=float)
        labels.append(f"{variant}\n{len(shared)} pair{'' if len(shared) == 1 else 's'}")
        finite = diffs[np.isfinite(diffs)]
        if finite.size:
            jitter = rng.uniform(-JITTER, JITTER, size=finite.size)
            axes.scatter(position + jitter, finite, s=18, alpha=0.6, zorder=3,
                         color=colours[variant])  # fmt: skip
        c = contrast(name, variant, mine, reference, base, paired=True) if len(shared) > 1 \
            else None  # fmt: skip
        if c is not None and math.isfinite(c.diff):
            low, high = c.diff_ci_low, c.diff_ci_high
            if math.isfinite(low) and math.isfinite(high):
                axes.errorbar([position + 0.3], [c.diff],
                              yerr=[[c.diff - low], [high - c.diff]], fmt="D",
                              color="black", capsize=5, ms=5, zorder=4)  # fmt: skip
            else:
                axes.plot([position + 0.3], [c.diff], "D", color="black", ms=5, zorder=4)
    return labels


def _legend(axes: Axes) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker="o", color="0.5", alpha=0.6, label="one seed"),
        Line2D([], [], ls="-", marker="D", color="black", label="mean, 95% CI (paired t)"),
    ]
    axes.legend(handles=handles, fontsize="x-small", loc="best")
