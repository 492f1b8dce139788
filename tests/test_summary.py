"""summary.csv: the seed document's format and numbers."""

from __future__ import annotations

import io

import pandas as pd

from orchestrator.state import RunRecord, RunStatus
from orchestrator.summary import summary_text

SEED_EXAMPLE = [  # seed, duration_s, train/loss, val/loss, val/F1Score
    (42, 142.30, 0.21, 0.34, 0.82),
    (101, 139.80, 0.19, 0.33, 0.825),
    (28, 141.10, 0.20, 0.35, 0.818),
]


def records(rows=SEED_EXAMPLE) -> list[RunRecord]:
    return [
        RunRecord(index=i, seed=seed, dir=f"run_{i:02d}_seed{seed}", status=RunStatus.COMPLETED,
                  duration_s=d, metrics={"train/loss": a, "val/loss": b, "val/F1Score": c})
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
    runs[2] = RunRecord(index=2, seed=28, dir="d", status=RunStatus.COMPLETED, duration_s=1.0,
                        metrics={"val/loss": 0.5, "test/acc": 0.9})
    lines = summary_text(runs).splitlines()
    assert lines[0] == "run,seed,duration_s,test/acc,train/loss,val/F1Score,val/loss"
    assert lines[1] == "0,42,142.30,,0.210000,0.820000,0.340000"
    assert lines[4].startswith("mean,-,94.37,0.900000,0.200000,0.822500,")
