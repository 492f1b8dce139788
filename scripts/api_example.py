"""The Python API on a study of variants: val/loss per epoch for each variant, and
the comparison that ``xorch compare STUDY`` prints.

    python scripts/api_example.py outputs/lr_study [--png val_loss.png]

The figure (default: ``val_loss.png`` in the current folder, never in the study)
has one line per variant: the mean over its seeds at each epoch, with each
seed's curve faint behind it. The study is only read, so it may still be running.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from orchestrator.api import XorchError, load_study

METRIC = "val/loss"
SHOWN = ["metric", "group", "n", "mean", "ci_low", "ci_high", "vs", "diff", "p_holm", "better"]


def plot_metric(curves: pd.DataFrame, metric: str, png: Path) -> None:
    """One colour per variant: its seeds faint, their mean per epoch bold."""
    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)  # Agg, never pyplot: no display is needed
    axes = figure.add_subplot()
    mine = curves[curves["metric"] == metric]
    for colour, (variant, rows) in enumerate(mine.groupby("variant", sort=False)):
        for _, seed_rows in rows.groupby("seed"):
            axes.plot(seed_rows["epoch"], seed_rows["value"], color=f"C{colour}", alpha=0.25)
        mean = rows.groupby("epoch")["value"].mean()
        axes.plot(mean.index, mean.values, color=f"C{colour}", linewidth=2, label=str(variant))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, not 0.25 steps
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.legend(title="variant (mean of seeds)")
    figure.savefig(png, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a study of variants (its output_base_dir)")
    parser.add_argument("--png", type=Path, default=Path("val_loss.png"))
    args = parser.parse_args(argv)
    try:
        study = load_study(args.study)
        comparison = study.compare(METRIC)
    except XorchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    runs = study.runs()
    print(f"{study.root.name}: {len(runs)} runs, {', '.join(study.variants)}")
    print(runs.groupby("variant", sort=False)["status"].value_counts().to_string())
    curves = study.curves()
    if curves.empty:
        print("no CSVLogger logs: no curves to plot")
    else:
        plot_metric(curves, METRIC, args.png)
        print(f"wrote {args.png}")
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(comparison[SHOWN].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
