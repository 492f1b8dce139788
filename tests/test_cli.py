"""The commands around a study: status, summary, compare, plot, replay, validate."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from tests.fakes import (
    fake_study_config,
    fake_xorch_popen,
    finished_fake_study,
    write_csv_logs,
)
from tests.helpers import read_state, snapshot, tiny_config, xorch

COMMANDS = ["launch", "validate", "status", "summary", "compare", "power", "report", "plot",
            "replay", "export"]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"xorch {command}" in result.output


def test_shell_completion_is_offered():
    result = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in result.output


@pytest.fixture(scope="module")
def fake_study(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """A finished 3-seed study of fake workers, shared by the tests that only read it."""
    path, out, result = finished_fake_study(tmp_path_factory.mktemp("cli-fake"))
    return path, out, result


def test_status_json_and_table_of_a_finished_study(fake_study):
    _, out, _ = fake_study
    result = xorch("status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["total"] == 3 and status["counts"] == {"completed": 3}
    assert [row["seed"] for row in status["rows"]] == [42, 101, 28]
    state = read_state(out)
    for row, record in zip(status["rows"], state["runs"], strict=True):
        assert row["attempt"] == 1 and row["duration_s"] == record["duration_s"]
        assert row["metrics"]["val/loss"] == record["metrics"]["val/loss"]
    table = xorch("status", str(out)).stdout
    assert "run  seed  status" in table and "completed" in table and "\x1b[" not in table


def test_summary_figures_agree_with_summary_csv(fake_study):
    _, out, _ = fake_study
    result = xorch("summary", str(out), "--format", "json", "-m", "val/loss", "-m", "val/acc")
    assert result.returncode == 0, result.stderr
    rows = {row["metric"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == ["val/acc", "val/loss"]
    csv_rows = pd.read_csv(out / "summary.csv", dtype={"run": str}).set_index("run")
    for metric, row in rows.items():
        assert row["n"] == 3
        assert row["mean"] == pytest.approx(float(csv_rows.loc["mean", metric]), abs=1e-6)
        assert row["std"] == pytest.approx(float(csv_rows.loc["std", metric]), abs=1e-6)
        assert row["ci_low"] < row["mean"] < row["ci_high"]
    latex = xorch("summary", str(out), "--format", "latex").stdout
    assert "\\begin{tabular}" in latex and "val/loss" in latex
    bad = xorch("summary", str(out), "-m", "val/nope")
    assert bad.returncode == 2 and "val/nope" in bad.stderr and "Traceback" not in bad.stderr


def test_compare_a_study_with_itself_finds_no_difference(fake_study):
    _, out, _ = fake_study
    result = xorch("compare", str(out), str(out), "--format", "csv", "-m", "val/loss")
    assert result.returncode == 0, result.stderr
    reference, row = list(pd.read_csv(io.StringIO(result.stdout)).itertuples())
    assert row.diff == 0.0 and row.vs == reference.group


def test_plot_and_replay_on_a_copy_of_the_study(fake_study, tmp_path, monkeypatch):
    import orchestrator.commands.replay as replay_module
    from orchestrator.launchers.local import LocalLauncher

    _, out, _ = fake_study
    copy = tmp_path / "copied study"
    shutil.copytree(out, copy)
    write_csv_logs(copy)
    plotted = xorch("plot", str(copy), "-m", "val/loss")
    assert plotted.returncode == 0, plotted.stderr
    for name in ("curves.png", "spread.png"):
        assert (copy / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The replay's child is a fake worker: the CLI, in-process, with replay's
    # run_one given the fake launcher (a real replay is tested in test_e2e).
    real_run_one = replay_module.run_one

    def fake_run_one(run_spec, runner, reporter):
        return real_run_one(run_spec, runner, reporter, LocalLauncher(entry="tests.fake_worker"))

    monkeypatch.setattr(replay_module, "run_one", fake_run_one)
    replayed = CliRunner().invoke(app, ["replay", str(copy), "1"])
    assert replayed.exit_code == 0, replayed.output
    assert "match: all" in replayed.output
    again = json.loads((copy / "run_01_seed101_replay" / "metrics.json").read_text())
    assert again["metrics"] == read_state(copy)["runs"][1]["metrics"]
    missing = xorch("replay", str(copy), "7")
    assert missing.returncode == 2 and "runs 0..2" in missing.stderr


@pytest.mark.lightning  # validate's build check builds the run in a Lightning child
def test_validate_shows_the_plan_and_touches_nothing(workdir, write_config):
    path = write_config(tiny_config(workdir / "out", seeds=(7, 8)))
    before = snapshot(workdir)
    result = xorch(
        "validate",
        str(path),
        "experiments_runner.max_parallel=2",
        "experiments_runner.gpus=none",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "run 1: seed 8 -> run_01_seed8" in result.stdout
    assert "2 runs at a time" in result.stdout
    assert snapshot(workdir) == before


def test_status_reads_a_running_study_without_blocking_it(workdir, write_config):
    out = workdir / "out"
    config = fake_study_config(out, seeds=(1, 2), steps=30)  # 3 s a run: long enough to be seen
    parent = fake_xorch_popen("launch", str(write_config(config)), cwd=workdir)
    seen_epoch = False
    try:
        while parent.poll() is None:
            result = xorch("status", str(out), "--json", timeout=60)
            if result.returncode == 0:  # before the first write there is no study yet
                status = json.loads(result.stdout)  # never half-written
                running = [r for r in status["rows"] if r["status"] == "running"]
                seen_epoch |= any(r["epoch"] for r in running)
            time.sleep(0.2)
        stdout, _ = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, stdout
    assert seen_epoch
    assert "\x1b[" not in stdout  # a pipe gets plain lines


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["lanch", "x.yaml"], "xorch: error: No such command 'lanch'. Did you mean 'launch'?"),
        (["launch", "--reum", "x.yaml"], "No such option: --reum (Possible options: --resume)"),
    ],
)
def test_a_command_line_mistake_is_one_line_with_the_suggestion(args, expected):
    result = xorch(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "╭" not in result.stderr
