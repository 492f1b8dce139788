"""worker.report, the user scripts' metrics API, writes the contract's records
where the parent reads them (no child process: the API is called in-process)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import Heartbeat, HeartbeatPhase, RunResult
from worker.report import Reporter


def test_rows_beats_and_final_metrics_are_the_records_the_parent_reads(tmp_path: Path) -> None:
    reporter = Reporter(run_dir=str(tmp_path), attempt=2)
    reporter(epoch=0, loss=1.5)
    reporter(epoch=1, loss=0.5, acc=0.75)  # a new metric widens the header
    reporter.final(acc=0.8)
    paths = RunPaths(tmp_path)

    with open(paths.csv_metric_log(2), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["epoch"], r["loss"], r["acc"]) for r in rows] == [
        ("0", "1.5", ""),
        ("1", "0.5", "0.75"),
    ]
    beat = Heartbeat.read(paths.heartbeat)
    assert beat is not None and beat.phase is HeartbeatPhase.TRAIN and beat.epoch == 1
    result = RunResult.read(paths.metrics)
    assert result is not None and result.metrics == {"acc": 0.8}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "heartbeat.json",
        "lightning_logs",
        "metrics.json",
    ]


def test_outside_xorch_every_call_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XORCH_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    reporter = Reporter()
    reporter(epoch=0, loss=1.0)
    reporter.beat()
    reporter.final(loss=1.0)
    assert list(tmp_path.iterdir()) == []
