"""summary.csv: the seed document's format and numbers."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd

from orchestrator.seed_table import NotFinite, split_finite
from orchestrator.state import RunRecord, RunStatus
from orchestrator.summary import mean_std_line, summary_text
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import ended_attempts, xorch

SEED_EXAMPLE = [  # seed, duration_s, train/loss, val/loss, val/F1Score
    (42, 142.30, 0.21, 0.34, 0.82),
    (101, 139.80, 0.19, 0.33, 0.825),
    (28, 141.10, 0.20, 0.35, 0.818),
]


def records(rows=SEED_EXAMPLE) -> list[RunRecord]:
    return [
        RunRecord(
            index=i,
            seed=seed,
            dir=f"run_{i:02d}_seed{seed}",
            status=RunStatus.COMPLETED,
            attempts=ended_attempts(d),
            metrics={"train/loss": a, "val/loss": b, "val/F1Score": c},
        )
        for i, (seed, d, a, b, c) in enumerate(rows)
    ]


def test_seed_example_comes_out_as_documented():
    lines = summary_text(records()).splitlines()
    assert lines[0] == "run,seed,duration_s,train/loss,val/F1Score,val/loss"
    assert lines[1] == "0,42,142.30,0.210000,0.820000,0.340000"
    assert lines[3] == "2,28,141.10,0.200000,0.818000,0.350000"
    assert lines[4] == "mean,-,141.07,0.200000,0.821000,0.340000"
    assert lines[5].startswith("std,-,1.25,0.010000,0.003606,")  # ddof=1


def test_summary_parses_back_with_pandas_and_matches_its_statistics():
    frame = pd.read_csv(io.StringIO(summary_text(records())), dtype={"run": str})
    runs = frame[~frame["run"].isin(["mean", "std"])]
    assert list(runs["seed"].astype(int)) == [42, 101, 28]
    mean_row = frame[frame["run"] == "mean"].iloc[0]
    std_row = frame[frame["run"] == "std"].iloc[0]
    for column in ("train/loss", "val/loss", "val/F1Score"):
        values = runs[column].astype(float)
        assert abs(float(mean_row[column]) - values.mean()) < 5e-7
        assert abs(float(std_row[column]) - values.std(ddof=1)) < 5e-7
    assert mean_row["seed"] == "-" and std_row["seed"] == "-"


def test_a_single_run_has_std_zero():
    lines = summary_text(records(SEED_EXAMPLE[:1])).splitlines()
    assert lines[-1] == "std,-,0.00,0.000000,0.000000,0.000000"


def test_metric_missing_in_one_run_leaves_an_empty_cell_and_averages_the_rest():
    runs = records()
    runs[2] = RunRecord(
        index=2,
        seed=28,
        dir="d",
        status=RunStatus.COMPLETED,
        attempts=ended_attempts(1.0),
        metrics={"val/loss": 0.5, "test/acc": 0.9},
    )
    lines = summary_text(runs).splitlines()
    assert lines[0] == "run,seed,duration_s,test/acc,train/loss,val/F1Score,val/loss"
    assert lines[1] == "0,42,142.30,,0.210000,0.820000,0.340000"
    assert lines[4].startswith("mean,-,94.37,0.900000,0.200000,0.822500,")


# ------------------------------------------------------------------ values that are not numbers

INF, NAN = float("inf"), float("nan")


def test_values_that_are_not_numbers_are_written_visibly_and_left_out_of_mean_and_std():
    runs = records(
        [
            (1, 1.0, 0.2, 0.4, 0.8),
            (2, 2.0, NAN, INF, 0.9),
            (3, 3.0, 0.3, 0.5, -INF),
            (4, 4.0, 0.4, 0.6, 0.7),
        ]
    )
    text = summary_text(runs)
    lines = text.splitlines()
    assert lines[2] == "1,2,2.00,nan,0.900000,inf"
    assert lines[3] == "2,3,3.00,0.300000,-inf,0.500000"
    frame = pd.read_csv(io.StringIO(text), dtype={"run": str})
    body = frame[~frame["run"].isin(["mean", "std"])]
    for column in ("train/loss", "val/loss", "val/F1Score"):
        values = body[column].astype(float)
        assert values.isna().sum() + np.isinf(values).sum() == 1  # read back as such
        finite = values[np.isfinite(values)]
        mean = float(frame.loc[frame["run"] == "mean", column].iloc[0])
        std = float(frame.loc[frame["run"] == "std", column].iloc[0])
        assert abs(mean - finite.mean()) < 5e-7 and abs(std - finite.std(ddof=1)) < 5e-7
    assert lines[-2] == "mean,-,2.50,0.300000,0.800000,0.500000"


def test_a_column_without_any_finite_value_has_empty_mean_and_std():
    runs = records([(1, 1.0, NAN, 0.4, 0.8), (2, 2.0, INF, 0.5, 0.9)])
    lines = summary_text(runs).splitlines()
    assert lines[1] == "0,1,1.00,nan,0.800000,0.400000"
    assert lines[-2] == "mean,-,1.50,,0.850000,0.450000"
    assert lines[-1].startswith("std,-,0.71,,")
    one = records([(1, 1.0, 0.2, INF, 0.8), (2, 2.0, 0.3, 0.5, 0.9)])
    assert summary_text(one).splitlines()[-1].endswith(",0.000000")  # one finite value: std 0


def test_the_closing_line_counts_the_runs_left_out():
    assert mean_std_line("val/loss", [0.4, INF, 0.42]) == (
        "val/loss: 0.41 ± 0.0141421 std (n=2; 1 run not finite: inf)"
    )
    assert mean_std_line("m", [NAN, 1.0, NAN, -INF]) == (
        "m: 1 ± 0 std (n=1; 3 runs not finite: 2 nan, 1 -inf)"
    )
    assert mean_std_line("m", [NAN, NAN]) == "m: no finite value (n=0; 2 runs not finite: nan)"
    assert mean_std_line("m", [1.0, 3.0]) == "m: 2 ± 1.41421 std (n=2)"
    finite, left_out = split_finite([1.0, INF, -INF, NAN, 2.0])
    assert finite == [1.0, 2.0] and left_out == NotFinite(nan=1, inf=1, neg_inf=1)
    assert left_out.describe() == "3 runs not finite: 1 nan, 1 inf, 1 -inf"


def test_a_diverged_seed_does_not_crash_launch_resume_status_or_summary(workdir, write_config):
    """One seed logs val/loss = inf: the study ends normally, every command says
    how many runs were left out, and the numbers agree with summary.csv."""
    out = workdir / "out"
    diverge = {"2": {"*": {"do": "complete", "metrics": {"val/loss": "inf"}}}}
    config = fake_study_config(
        out, seeds=(1, 2, 3), acts=diverge, summary_metrics=["val/loss", "val/acc"]
    )
    path = write_config(config)
    first = fake_xorch("launch", str(path), cwd=workdir)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    line = next(x for x in first.stdout.splitlines() if "val/loss: " in x and "±" in x)
    assert line.endswith("(n=2; 1 run not finite: inf)"), line

    rows = (out / "summary.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("val/loss")
    cells = [r.split(",")[column] for r in rows[1:]]
    assert cells[1] == "inf" and "" not in cells
    finite = [float(cells[0]), float(cells[2])]
    assert abs(float(cells[3]) - np.mean(finite)) < 5e-7  # the mean row
    assert abs(float(cells[4]) - np.std(finite, ddof=1)) < 5e-7  # the std row

    again = fake_xorch("launch", str(path), "--resume", cwd=workdir)  # crashed the same way before
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(n=2; 1 run not finite: inf)" in again.stdout

    status = xorch("status", str(out), cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert "val/loss: 1 run not finite: inf" in status.stdout
    assert re.search(r"^1\s+2\s+completed\s.*\sinf\s", status.stdout, re.M), status.stdout
    as_json = xorch("status", str(out), "--json", cwd=workdir)

    def strict(token: str) -> None:
        raise AssertionError(f"{token} is not strict JSON")

    payload = json.loads(as_json.stdout, parse_constant=strict)
    assert payload["rows"][1]["metrics"]["val/loss"] == "inf"
    assert payload["not_finite"] == {"val/loss": "1 run not finite: inf"}

    described = xorch("summary", str(out), "--format", "json", "-m", "val/loss", cwd=workdir)
    assert described.returncode == 0, described.stderr
    (stats,) = json.loads(described.stdout, parse_constant=strict)
    assert stats["n"] == 2 and stats["not_finite"] == 1
    assert abs(stats["mean"] - float(cells[3])) < 5e-7
    assert abs(stats["std"] - float(cells[4])) < 5e-7
    table = xorch("summary", str(out), cwd=workdir)
    assert "val/loss: 1 run not finite: inf; left out of the statistics" in table.stdout
