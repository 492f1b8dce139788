"""orchestrator.commands.summary_cmd: the numbers agree with numpy and scipy, the edge cases are
the documented ones, and every output format reads back."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from orchestrator.commands.summary_cmd import (
    STATS_COLUMNS,
    render_stats,
    study_metric_stats,
)
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import XorchError
from orchestrator.seed_table import NotFinite, describe
from orchestrator.state import RunRecord, RunStatus, StudyState
from orchestrator.state_store import load_state, save_state
from orchestrator.summary import summary_text
from orchestrator.tables import FORMATS
from tests.helpers import ended_attempts

TOL = 1e-12


def close(x: float, y: float) -> bool:
    return abs(x - y) <= TOL * max(1.0, abs(y))


def make_state(rows: list[dict[str, float]], extra: list[RunRecord] = ()) -> StudyState:
    """Completed runs with ``rows`` as their final metrics, then ``extra`` records."""
    runs = [
        RunRecord(index=i, seed=100 + i, dir=f"run_{i:02d}_seed{100 + i}",
                  status=RunStatus.COMPLETED, attempts=ended_attempts(1.0), metrics=m)
        for i, m in enumerate(rows)
    ]  # fmt: skip
    for record in extra:
        runs.append(RunRecord(index=len(runs), seed=100 + len(runs), dir=record.dir,
                              status=record.status, metrics=record.metrics))  # fmt: skip
    return StudyState(config_fingerprint="f", training_config={}, seeds=tuple(r.seed for r in runs),
                      runs=tuple(runs))  # fmt: skip


# --------------------------------------------------------------------------- describe


@pytest.mark.parametrize("n", [2, 3, 5, 10, 57])
def test_describe_agrees_with_numpy_and_scipy(n):
    data = np.random.default_rng(n).normal(0.3, 0.05, size=n)
    s = describe(data.tolist())
    sem = scipy_stats.sem(data)
    low, high = scipy_stats.t.interval(0.95, n - 1, loc=np.mean(data), scale=sem)
    assert s.n == n
    assert close(s.mean, np.mean(data)) and close(s.std, np.std(data, ddof=1))
    assert close(s.sem, sem) and close(s.ci_low, low) and close(s.ci_high, high)
    assert (s.min, s.max) == (data.min(), data.max())
    assert close(s.median, np.median(data))
    assert s.ci_low < s.mean < s.ci_high


def test_describe_of_one_value_has_no_interval():
    s = describe([0.25])
    assert (s.n, s.mean, s.std, s.min, s.median, s.max) == (1, 0.25, 0.0, 0.25, 0.25, 0.25)
    assert math.isnan(s.sem) and math.isnan(s.ci_low) and math.isnan(s.ci_high)


def test_describe_of_nothing_has_no_values_and_nan_statistics():
    s = describe([])
    assert s.n == 0 and s.not_finite.count == 0
    assert all(math.isnan(v) for v in (s.mean, s.std, s.sem, s.ci_low, s.min, s.max))


def test_values_that_are_not_numbers_are_counted_and_left_out_as_in_summary_csv():
    s = describe([0.1, float("nan"), 0.3, float("inf")])
    finite = describe([0.1, 0.3])
    assert s.n == 2 and s.not_finite == NotFinite(nan=1, inf=1)
    assert (s.mean, s.std, s.ci_low, s.max) == (finite.mean, finite.std, finite.ci_low, 0.3)
    assert s.not_finite.describe() == "2 runs not finite: 1 nan, 1 inf"
    none = describe([float("-inf")])
    assert none.n == 0 and none.not_finite.count == 1 and math.isnan(none.mean)


def test_study_stats_and_summary_csv_agree_on_a_diverged_seed():
    import pandas as pd

    rows = [{"val/loss": 0.34}, {"val/loss": float("inf")}, {"val/loss": 0.36},
            {"val/loss": float("nan")}, {"val/loss": 0.35}]  # fmt: skip
    state = make_state(rows)
    frame = pd.read_csv(io.StringIO(summary_text(state.completed)), dtype={"run": str})
    ((name, s),) = study_metric_stats(state)
    assert name == "val/loss" and s.n == 3 and s.not_finite.count == 2
    mean = float(frame.loc[frame["run"] == "mean", "val/loss"].iloc[0])
    std = float(frame.loc[frame["run"] == "std", "val/loss"].iloc[0])
    assert abs(s.mean - mean) < 5e-7 and abs(s.std - std) < 5e-7
    table = render_stats([(name, s)], "table")
    assert table.splitlines()[-1] == (
        "val/loss: 2 runs not finite: 1 nan, 1 inf; left out of the statistics"
    )
    assert json.loads(render_stats([(name, s)], "json"))[0]["not_finite"] == 2


# --------------------------------------------------------------------------- a study's stats


def test_study_stats_use_completed_runs_only_and_sort_the_metrics(tmp_path):
    state = make_state(
        [{"val/loss": 0.34, "train/loss": 0.21}, {"val/loss": 0.33, "train/loss": 0.19},
         {"val/loss": 0.35, "train/loss": 0.20, "test/acc": 0.9}],
        extra=[RunRecord(index=0, seed=0, dir="run_03_seed103", status=RunStatus.FAILED,
                         metrics={"val/loss": 100.0, "only/failed": 1.0}),
               RunRecord(index=0, seed=0, dir="run_04_seed104")],
    )  # fmt: skip
    # Saved and loaded from a folder with a space in its name, as a user's study would be.
    paths = StudyPaths(tmp_path / "my study")
    paths.root.mkdir()
    save_state(paths, state)
    loaded = load_state(paths)
    assert loaded is not None

    rows = study_metric_stats(loaded)
    assert [name for name, _ in rows] == ["test/acc", "train/loss", "val/loss"]
    by_name = dict(rows)
    assert by_name["val/loss"].n == 3 and close(by_name["val/loss"].mean, 0.34)
    assert close(by_name["val/loss"].std, 0.01)
    assert by_name["test/acc"].n == 1  # logged by one completed run only

    chosen = study_metric_stats(loaded, ["val/loss", "train/loss", "val/loss"])
    assert [name for name, _ in chosen] == ["val/loss", "train/loss"]


def test_unknown_metric_names_the_available_ones():
    state = make_state([{"val/loss": 0.3}, {"val/loss": 0.4, "val/acc": 0.8}])
    with pytest.raises(XorchError, match=r"val/los\b.*available: val/acc, val/loss"):
        study_metric_stats(state, ["val/los"])


def test_a_study_without_completed_runs_is_an_error():
    state = make_state([], extra=[RunRecord(index=0, seed=0, dir="r", status=RunStatus.FAILED)])
    with pytest.raises(XorchError, match="no completed run"):
        study_metric_stats(state)


# --------------------------------------------------------------------------- rendering

TRICKY = "val/F1_score%&"  # LaTeX-special characters in a metric name


def sample_stats():
    state = make_state([{"val/loss": 0.34, TRICKY: 0.8}, {"val/loss": 0.33},
                        {"val/loss": 0.35123456789}])  # fmt: skip
    return study_metric_stats(state)


def stats_values(rows):
    return [[name, s.n, s.mean, s.std, s.sem, s.ci_low, s.ci_high, s.min, s.median, s.max,
             s.not_finite.count] for name, s in rows]  # fmt: skip


CASES = [
    (render_stats, sample_stats, stats_values, STATS_COLUMNS),
]


@pytest.mark.parametrize(("render", "sample", "values", "columns"), CASES)
def test_csv_reads_back_exactly(render, sample, values, columns):
    rows = sample()
    parsed = list(csv.reader(io.StringIO(render(rows, "csv"))))
    assert parsed[0] == list(columns)
    for got, expected in zip(parsed[1:], values(rows), strict=True):
        assert got[0] == expected[0] and int(got[1]) == expected[1]
        for cell, number in zip(got[2:], expected[2:], strict=True):
            if isinstance(number, float) and math.isnan(number):
                assert cell == ""
            else:
                assert float(cell) == number  # full precision, not rounded


@pytest.mark.parametrize(("render", "sample", "values", "columns"), CASES)
def test_json_reads_back_exactly(render, sample, values, columns):
    rows = sample()
    parsed = json.loads(render(rows, "json"))
    assert len(parsed) == len(rows)
    for obj, expected in zip(parsed, values(rows), strict=True):
        assert list(obj) == list(columns)
        for got, number in zip(obj.values(), expected, strict=True):
            if isinstance(number, float) and math.isnan(number):
                assert got is None
            else:
                assert got == number


@pytest.mark.parametrize(("render", "sample", "values", "columns"), CASES)
def test_markdown_and_latex_carry_the_numbers(render, sample, values, columns):
    rows = sample()
    markdown = render(rows, "markdown").splitlines()
    latex = render(rows, "latex")
    assert markdown[0].startswith("| metric |") and set(markdown[1]) <= set("|:-")
    assert len(markdown) == 2 + len(rows)
    assert all(line.count("|") == len(columns) + 1 for line in markdown)
    assert latex.startswith(r"\begin{tabular}{l" + "r" * (len(columns) - 1) + "}")
    assert latex.rstrip().endswith(r"\end{tabular}")
    assert r"val/F1\_score\%\&" in latex and "F1_score" not in latex
    assert "ci\\_" in latex  # headers are escaped too
    for line, row in zip(markdown[2:], values(rows), strict=True):
        for number in row[1:]:
            if isinstance(number, int):
                shown = str(number)
            else:
                shown = "n/a" if math.isnan(number) else f"{number:.6g}"
            assert shown in line and shown in latex


@pytest.mark.parametrize(("render", "sample", "values", "columns"), CASES)
def test_table_is_plain_and_aligned(render, sample, values, columns):
    rows = sample()
    text = render(rows, "table")
    assert "\x1b" not in text and "\r" not in text and "\t" not in text
    lines = text.splitlines()
    assert lines[0].split() == list(columns)
    assert set(lines[1].replace(" ", "")) == {"-"}
    # Numbers are right-aligned up to the last column, so every line ends at one place.
    assert len({len(line) for line in lines}) == 1
    assert f"{values(rows)[1][2]:.6g}" in text


def test_unknown_format_is_an_error():
    with pytest.raises(XorchError, match="html.*" + ", ".join(FORMATS)):
        render_stats([], "html")


def test_every_format_renders_an_empty_list():
    for fmt in FORMATS:
        assert render_stats([], fmt).endswith("\n")
    assert json.loads(render_stats([], "json")) == []
