"""The Python API for notebooks: a study folder read into pandas DataFrames.

    from orchestrator.api import load_study

    study = load_study("outputs/my_study")
    study.runs()       # one row per run: variant, seed, status, attempts, duration_s, metrics
    study.curves()     # long format: run x epoch x metric, from each run's CSVLogger logs
    study.summary()    # the numbers of `xorch summary` (and summary.csv's mean and std)
    study.compare()    # a study of variants: the numbers of `xorch compare` (comparison.csv)
    study.power(effect=0.01)  # the figures of `xorch power`

Reading never disturbs the study, also while it runs: no lock is taken and
nothing is written. runner_state.json is read as ``xorch status`` reads it; the
launcher replaces it atomically (``contract.atomic``: a temp file renamed over
it), so a reader sees the old file or the new one, never a half-written one. A
``Study`` is the state as it was when loaded; ``load_study`` again for a newer
one. Every number comes from the functions the commands print (``summary_cmd``,
``compare``, ``power``, ``run_logs``), so the API and the CLI cannot disagree.
Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from orchestrator.commands.compare import COMPARE_COLUMNS, compare_variants, comparison_records
from orchestrator.commands.power import PowerAsk, power_records, power_rows
from orchestrator.commands.run_logs import run_curves
from orchestrator.commands.status import run_status_label
from orchestrator.commands.summary_cmd import summary_table
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import XorchError
from orchestrator.inference import parse_goals
from orchestrator.state import StudyState
from orchestrator.state_store import load_study_state, study_folder

__all__ = ["CURVE_COLUMNS", "RUN_COLUMNS", "Study", "XorchError", "load_study"]

# runs()'s columns before the metrics (one column per metric any run logged, sorted).
RUN_COLUMNS: tuple[str, ...] = ("run", "variant", "seed", "status", "attempts", "duration_s",
                                "dir")  # fmt: skip
CURVE_COLUMNS: tuple[str, ...] = ("run", "variant", "seed", "epoch", "metric", "value")

MetricNames = str | Sequence[str] | None


def load_study(folder: Path | str) -> Study:
    """The study in ``folder`` (its output_base_dir), as it is now.

    Raises the CLI's XorchError (a StateError) for a folder that holds no study or
    a damaged runner_state.json."""
    root = study_folder(folder)
    return Study(root, load_study_state(StudyPaths(root)))


@dataclass(frozen=True)
class Study:
    """One study's state as loaded; every method reads, none writes."""

    root: Path
    state: StudyState

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants in the config's order; empty for a study of one config."""
        return tuple(self.state.variant_configs)

    @property
    def summary_metrics(self) -> tuple[str, ...]:
        return self.state.summary_metrics

    def runs(self) -> pd.DataFrame:
        """One row per run in run order: RUN_COLUMNS, then every final metric (NaN where a
        run has none: not completed, or it did not log that metric). ``status`` is the
        one ``xorch status`` shows (a failed run's failure class); ``variant`` is None in
        a study of one config; ``duration_s`` is the recorded one (None while running)."""
        names = sorted({name for record in self.state.runs for name in record.metrics})
        rows = [
            (record.index, record.variant, record.seed, run_status_label(record),
             len(record.attempts), record.duration_s, record.dir,
             *(record.metrics.get(name, float("nan")) for name in names))
            for record in self.state.runs
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=[*RUN_COLUMNS, *names])

    def curves(self) -> pd.DataFrame:
        """Long format, CURVE_COLUMNS: one row per (run, epoch, metric) logged, from each
        run's CSVLogger logs (a running run's too) read as ``xorch plot`` reads them
        (resumed versions merged, a later version's epoch wins). A run without a readable
        log has no rows."""
        paths = StudyPaths(self.root)
        frames = []
        for record in self.state.runs:  # a run not started has no folder, so no log
            epochs = run_curves(paths, record).epochs
            if epochs.empty:
                continue
            long = epochs.rename_axis("epoch").reset_index()
            long = long.melt(id_vars="epoch", var_name="metric", value_name="value")
            long = long.dropna(subset=["value"])
            long.insert(0, "run", record.index)
            long.insert(1, "variant", record.variant)
            long.insert(2, "seed", record.seed)
            frames.append(long[list(CURVE_COLUMNS)])
        if not frames:
            return pd.DataFrame(columns=list(CURVE_COLUMNS))
        return pd.concat(frames, ignore_index=True)

    def summary(self, metric: MetricNames = None) -> pd.DataFrame:
        """``xorch summary``'s table: a row per metric (per metric and variant in a study
        of variants) with n, mean, std, sem, the 95% t interval, min, median, max and
        not_finite, over the completed runs."""
        table = summary_table(self.state, _names(metric))
        return pd.DataFrame(list(table.records), columns=list(table.columns))

    def compare(
        self,
        metric: MetricNames = None,
        goal: Mapping[str, str] | None = None,
        paired: bool | None = None,
    ) -> pd.DataFrame:
        """``xorch compare STUDY``'s table (comparison.csv's numbers): each variant against
        the reference, paired by seed, a row per (metric, variant). ``goal``: metric ->
        "min" or "max" over the study's own. A study without variants is refused."""
        goals = parse_goals([f"{name}={way}" for name, way in (goal or {}).items()])
        table = compare_variants(self.state, _names(metric), goals, paired)
        return pd.DataFrame(comparison_records(table), columns=list(COMPARE_COLUMNS))

    def power(
        self,
        metric: MetricNames = None,
        effect: float | None = None,
        alpha: float = 0.05,
        power: float = 0.8,
        paired: bool | None = None,
        other: Study | None = None,
    ) -> pd.DataFrame:
        """``xorch power``'s figures: seeds needed to detect ``effect`` and the smallest
        difference the current seeds detect; against ``other`` as ``xorch power A B``."""
        states = [self.state] if other is None else [self.state, other.state]
        columns, records = power_records(
            power_rows(states, _names(metric), PowerAsk(effect, alpha, power), paired)
        )
        return pd.DataFrame(records, columns=list(columns))


def _names(metric: MetricNames) -> list[str] | None:
    """One metric's name or several as a list; None (or none named) for the commands' default."""
    if metric is None:
        return None
    return [metric] if isinstance(metric, str) else (list(metric) or None)
