"""Values that are not numbers, on their way from metrics.json to runner_state.json,
and a run adopted on resume with the duration it really took."""

from __future__ import annotations

import json
import math
import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.commands.status import render_status, study_status
from orchestrator.config import load_study
from orchestrator.contract.paths import StudyPaths, run_dir_name
from orchestrator.contract.records import ErrorReport, RunResult
from orchestrator.state import Attempt, RunRecord, RunStatus, StudyState
from orchestrator.state_store import load_state, save_state
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import ended_attempts, read_state, tiny_config, xorch

INF, NAN = float("inf"), float("nan")


def test_metrics_json_with_nan_infinity_and_strings_reads_without_a_traceback(tmp_path):
    path = tmp_path / "metrics.json"
    # Python's json writes NaN and Infinity for the non-finite floats a diverged run logs.
    huge = "1" + "0" * 400  # an integer past a float's range
    path.write_text(
        '{"metrics": {"val/loss": Infinity, "val/acc": NaN, "train/loss": -Infinity,'
        ' "lr": 0.1, "note": "diverged", "epochs": 3, "flag": true, "big": '
        + huge
        + ', "shape": [1, 2], "none": null}, "skipped_metrics": "oops",'
        ' "resumed_from": 7, "peak_gpu_mem_mb": "a lot"}'
    )
    result = RunResult.read(path)
    assert result is not None
    assert result.metrics["val/loss"] == INF and result.metrics["train/loss"] == -INF
    assert math.isnan(result.metrics["val/acc"])
    assert (result.metrics["lr"], result.metrics["epochs"]) == (0.1, 3.0)
    assert set(result.metrics) == {"val/loss", "val/acc", "train/loss", "lr", "epochs"}
    assert result.not_numbers == ("note", "flag", "big", "shape", "none")
    assert result.note == (
        "metrics.json: left out values that are not numbers: note, flag, big, shape, none"
    )
    assert (result.skipped_metrics, result.resumed_from, result.peak_gpu_mem_mb) == ((), None, None)


@pytest.mark.parametrize(
    "text", ["", "NaN", "[1, 2]", '{"metrics": "inf"}', "{\x00\xff", '{"metrics": {"a": 1}']
)
def test_a_metrics_json_that_is_not_a_result_reads_as_none(tmp_path, text):
    path = tmp_path / "metrics.json"
    path.write_text(text, errors="surrogateescape")
    assert RunResult.read(path) is None


def test_an_error_json_of_the_wrong_shape_reads_as_none(tmp_path):
    path = tmp_path / "error.json"
    path.write_text('{"type": 3, "message": NaN}')
    assert ErrorReport.read(path) is None


def test_the_worker_writes_what_the_reader_reads(tmp_path):
    path = tmp_path / "metrics.json"
    RunResult(metrics={"val/loss": INF, "val/acc": NAN}).write(path)
    assert "not_numbers" not in json.loads(path.read_text())
    back = RunResult.read(path)
    assert back is not None and back.metrics["val/loss"] == INF and back.note == ""


def test_non_finite_metrics_survive_runner_state_json(tmp_path):
    """Decision: runner_state.json keeps Python's NaN/Infinity tokens (it is read
    only by xorch's own loader, which takes them back exactly); ``xorch status
    --json`` is the strict-JSON view for other tools."""
    paths = StudyPaths(tmp_path / "a study")
    paths.root.mkdir()
    metrics = ({"val/loss": INF}, {"val/loss": NAN}, {"val/loss": -INF}, {"val/loss": 0.5})
    runs = tuple(
        RunRecord(
            index=i,
            seed=i,
            dir=run_dir_name(i, i, 4),
            status=RunStatus.COMPLETED,
            attempts=ended_attempts(1.0),
            metrics=m,
        )
        for i, m in enumerate(metrics)
    )
    save_state(paths, StudyState("f", {}, tuple(range(4)), runs))
    text = paths.state.read_text()
    assert "Infinity" in text and "NaN" in text and "-Infinity" in text
    loaded = load_state(paths)
    assert loaded is not None
    values = [r.metrics["val/loss"] for r in loaded.runs]
    assert values[0] == INF and math.isnan(values[1]) and values[2:] == [-INF, 0.5]
    save_state(paths, loaded)  # and saves again unchanged
    assert paths.state.read_text() == text
    status = study_status(paths.root)
    assert status.not_finite == {"val/loss": "3 runs not finite: 1 nan, 1 inf, 1 -inf"}
    rows = json.loads(render_status(status, as_json=True), parse_constant=_strict)["rows"]
    assert [r["metrics"]["val/loss"] for r in rows] == ["inf", "nan", "-inf", 0.5]


def _strict(token: str) -> None:
    raise AssertionError(f"{token} is not strict JSON")


def test_a_run_finished_while_the_parent_was_dead_is_adopted_with_its_real_duration(
    workdir, write_config
):
    """The parent was SIGKILLed after the child wrote metrics.json but before it
    recorded the end: resume adopts the run, timed from its start to that file."""
    out = workdir / "out"
    config_path = write_config(tiny_config(out, seeds=(5,)))
    spec = load_study(config_path)
    paths = StudyPaths(out)
    paths.root.mkdir(parents=True)
    started = datetime.now(timezone.utc) - timedelta(seconds=100)
    dead_pid = 2**22 + 12345  # past pid_max on most machines: surely not alive
    attempt = Attempt(
        number=1,
        started_at=started.astimezone().isoformat(timespec="milliseconds"),
        log="run_0_seed5/train.log",
        pid=dead_pid,
        pid_create_time=1.0,
    )
    record = RunRecord(index=0, seed=5, dir=run_dir_name(0, 5, 1))
    state = StudyState(
        spec.fingerprint, dict(spec.training), (5,), (record,), summary_metrics=("val/loss",)
    ).start_attempt(0, attempt)
    save_state(paths, state)
    run = paths.run(record.dir)
    run.root.mkdir()
    resumed = json.dumps(str(run.root / "last.ckpt"))
    run.metrics.write_text(
        f'{{"metrics": {{"val/loss": 0.25, "val/acc": "high"}}, "resumed_from": {resumed}}}'
    )
    written = started.timestamp() + 42.5  # the child finished 42.5 s after it started
    os.utime(run.metrics, (written, written))

    before = time.time()
    result = xorch("launch", str(config_path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (saved,) = read_state(out)["runs"]
    assert saved["status"] == "completed" and saved["metrics"] == {"val/loss": 0.25}
    (adopted,) = saved["attempts"]
    assert adopted["duration_s"] == pytest.approx(42.5, abs=0.01)
    assert adopted["resumed_from"] == f"{record.dir}/last.ckpt"  # as metrics.json says
    assert saved["duration_s"] == pytest.approx(42.5, abs=0.01)
    ended = datetime.fromisoformat(adopted["ended_at"]).timestamp()
    assert abs(ended - written) < 0.01 and ended < before
    assert adopted["reason"] == (
        "finished while the parent was away; metrics.json: left out "
        "values that are not numbers: val/acc"
    )
    assert "42.50" in (out / "summary.csv").read_text().splitlines()[1]


def test_a_run_interrupted_by_the_parents_death_is_timed_to_its_last_heartbeat(
    workdir, write_config
):
    out = workdir / "out"
    config_path = write_config(fake_study_config(out, seeds=(6,)))
    spec = load_study(config_path)
    paths = StudyPaths(out)
    paths.root.mkdir(parents=True)
    started = datetime.now(timezone.utc) - timedelta(seconds=100)
    attempt = Attempt(
        number=1,
        started_at=started.astimezone().isoformat(timespec="milliseconds"),
        log="run_0_seed6/train.log",
        pid=2**22 + 12346,
        pid_create_time=1.0,
    )
    record = RunRecord(index=0, seed=6, dir=run_dir_name(0, 6, 1))
    save_state(
        paths,
        StudyState(spec.fingerprint, dict(spec.training), (6,), (record,)).start_attempt(
            0, attempt
        ),
    )
    run = paths.run(record.dir)
    run.root.mkdir()
    run.heartbeat.write_text(
        json.dumps({"pid": 1, "time": started.timestamp() + 30.0, "phase": "train"})
    )
    result = fake_xorch("launch", str(config_path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = read_state(out)["runs"][0]["attempts"]
    assert first["outcome"] == "interrupted"
    assert first["duration_s"] == pytest.approx(30.0, abs=0.01)
    assert second["outcome"] == "completed"
