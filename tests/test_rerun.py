"""Running completed runs again (issue 21): ``experiments_runner.overwrite`` and
``xorch rerun``. The pure choice of runs is a table; the rest runs the real CLI
(``fake_xorch``) over fake workers: folders moved aside, attempts kept, one
summary row per run, refusals that touch nothing, SIGKILL mid-rerun then --resume."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
from pathlib import Path

import pytest
import yaml

from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import ConfigError
from orchestrator.ledger import Ledger
from orchestrator.rerun import (
    RerunError,
    RunChoice,
    parse_overwrite,
    parse_run_names,
    rerun_targets,
)
from orchestrator.state import Attempt, AttemptClass, RunRecord, RunStatus, StudyState
from orchestrator.state_store import load_study_state
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import read_state, running_attempt, snapshot, wait_for

SEEDS = (7, 8, 9)


def _attempt(number: int, cls: AttemptClass | None, duration: float = 1.0) -> Attempt:
    return Attempt(number, "t", "train.log", attempt_class=cls, duration_s=duration)


def _state(statuses: list[RunStatus], variants: tuple[str, ...] = ()) -> StudyState:
    runs = []
    for position, status in enumerate(statuses):
        seed = SEEDS[position // max(1, len(variants))]
        variant = variants[position % len(variants)] if variants else None
        done = status is RunStatus.COMPLETED
        attempts = (_attempt(1, AttemptClass.COMPLETED),) if done else ()
        runs.append(RunRecord(position, seed, f"run_{position:02d}_seed{seed}", status,
                              metrics={"val/loss": 1.0} if done else {}, attempts=attempts,
                              variant=variant))  # fmt: skip
    seeds = tuple(dict.fromkeys(r.seed for r in runs))
    configs = {v: {} for v in variants}
    return StudyState("f", {}, seeds, tuple(runs), variant_configs=configs)


C, F, P = RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.PENDING


@pytest.mark.parametrize(
    ("statuses", "variants", "choice", "reopen", "left"),
    [
        ([C, C, C], (), RunChoice(every=True), (0, 1, 2), ()),
        ([C, F, P], (), RunChoice(every=True), (0,), ()),
        ([C, C, C], (), RunChoice(names=(2, 0)), (2, 0), ()),
        ([C, F, C], (), RunChoice(names=(1, 2)), (2,), ((1, "failed"),)),
        ([C, C, C, C], ("a", "b"), RunChoice(names=(("b", 1),)), (3,), ()),
        ([C, C, C, C], ("a", "b"), RunChoice(names=(("a", 0), 3)), (0, 3), ()),
    ],
)
def test_rerun_targets(statuses, variants, choice, reopen, left) -> None:
    targets = rerun_targets(_state(statuses, variants), choice, "xorch rerun")
    assert (targets.reopen, targets.not_completed) == (reopen, left)


@pytest.mark.parametrize(
    ("statuses", "variants", "name", "words"),
    [
        ([C, C, C], (), 3, "no run 3 (its runs are 0 to 2)"),
        ([C, C, C], (), ("wide", 0), "no variant wide (variants: none"),
        ([C, C, C, C], ("a", "b"), ("c", 0), "no variant c (variants: a, b)"),
        ([C, C, C, C], ("a", "b"), ("a", 2), "variant a has no run 2 (its runs are 0 to 1)"),
    ],
)
def test_rerun_targets_refuse_a_run_the_study_lacks(statuses, variants, name, words) -> None:
    with pytest.raises(RerunError, match=r"^xorch rerun: .*" + re.escape(words)):
        rerun_targets(_state(statuses, variants), RunChoice(names=(name,)), "xorch rerun")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (False, None),
        (True, RunChoice(every=True)),
        ([3, 5, 3], RunChoice(names=(3, 5))),
        (4, RunChoice(names=(4,))),
        (["wide/2", 0], RunChoice(names=(("wide", 2), 0))),
    ],
)
def test_parse_overwrite(value, expected) -> None:
    assert parse_overwrite(value) == expected


@pytest.mark.parametrize("value", [[], [-1], ["wide"], ["a/b"], [True], {"a": 1}, [1.5]])
def test_parse_overwrite_refuses(value) -> None:
    with pytest.raises(ConfigError, match=r"^experiments_runner\.overwrite"):
        parse_overwrite(value)


def test_parse_run_names_from_the_command_line() -> None:
    assert parse_run_names(["3", "wide/02", "3"], "xorch rerun") == (3, ("wide", 2))


def test_reopen_keeps_attempts_and_a_rerun_times_only_its_own_attempts() -> None:
    state = _state([C, C])
    reopened = state.reopen(1)
    record = reopened.runs[1]
    assert (record.status, record.metrics, len(record.attempts)) == (P, {}, 1)
    with pytest.raises(RuntimeError, match="pending -> pending"):
        reopened.reopen(1)  # only a completed run is reopened
    running = reopened.start_attempt(1, _attempt(2, None))
    done = running.finish_attempt(1, _attempt(2, AttemptClass.COMPLETED, 2.5), {"val/loss": 0.5})
    assert done.runs[1].duration_s == 2.5  # not 3.5: the first round is history
    assert [a.number for a in done.runs[1].attempts] == [1, 2]


# -- real processes -----------------------------------------------------------------


def _study(
    tmp_path: Path, variants: dict | None = None, acts: dict | None = None, **runner: object
) -> tuple[Path, Path]:
    workdir = tmp_path / "a study's folder"
    workdir.mkdir(exist_ok=True)
    out = workdir / "out"
    config = fake_study_config(out, seeds=SEEDS, acts=acts, hang_timeout=5, **runner)
    if variants:
        config["experiments_runner"]["variants"] = variants
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = fake_xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    return path, out


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open() as f:
        return list(csv.DictReader(f))


def test_xorch_rerun_then_resume(tmp_path: Path) -> None:
    config, out = _study(tmp_path)
    first = (out / "run_01_seed8" / "metrics.json").read_bytes()
    result = fake_xorch("rerun", str(out), "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "run 1 (seed 8) reopened" in result.stdout
    assert not (out / "run_01_seed8").exists()
    assert (out / "run_01_seed8.old-1" / "metrics.json").read_bytes() == first
    state = read_state(out)
    assert state["runs"][1]["status"] == "pending"
    assert [a["outcome"] for a in state["runs"][1]["attempts"]] == ["completed"]
    assert [r["run"] for r in _rows(out)[:-2]] == ["0", "2"]  # no stale row meanwhile

    resumed = fake_xorch("launch", str(config), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    record = read_state(out)["runs"][1]
    assert record["status"] == "completed"
    assert [(a["number"], a["outcome"]) for a in record["attempts"]] == [
        (1, "completed"),
        (2, "completed"),
    ]
    assert record["attempts"][1]["resumed_from"] is None  # a fresh run, not a resume
    assert [r["run"] for r in _rows(out)[:-2]] == ["0", "1", "2"]
    assert (out / "run_01_seed8" / "metrics.json").exists()


def test_xorch_rerun_of_a_run_the_study_lacks_touches_nothing(tmp_path: Path) -> None:
    _, out = _study(tmp_path)
    before = snapshot(out.parent)
    result = fake_xorch("rerun", str(out), "1", "7", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "xorch: error: xorch rerun: the study has no run 7 (its runs are 0 to 2); "
        "name runs as xorch status lists them"
    ]
    assert snapshot(out.parent) == before


def test_overwrite_reruns_on_a_launch_and_a_resume_does_not_repeat_it(tmp_path: Path) -> None:
    config, out = _study(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["experiments_runner"]["overwrite"] = [0, 2]
    config.write_text(yaml.safe_dump(data))
    result = fake_xorch("launch", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run_00_seed7 runs again; its earlier folder is run_00_seed7.old-1" in result.stdout
    counts = [len(r["attempts"]) for r in read_state(out)["runs"]]
    assert counts == [2, 1, 2]
    assert sorted(p.name for p in out.glob("run_*")) == [
        "run_00_seed7", "run_00_seed7.old-1", "run_01_seed8", "run_02_seed9",
        "run_02_seed9.old-1",
    ]  # fmt: skip
    again = fake_xorch("launch", str(config), "--resume", cwd=tmp_path)
    assert again.returncode == 0
    assert "overwrite is not applied by a resume" in again.stderr + again.stdout
    assert [len(r["attempts"]) for r in read_state(out)["runs"]] == counts
    assert len(_rows(out)) == 3 + 2


def test_overwrite_true_reruns_every_run_and_an_unknown_run_is_refused(tmp_path: Path) -> None:
    config, out = _study(tmp_path, overwrite=True)  # a new study: nothing to rerun yet
    result = fake_xorch("launch", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [len(r["attempts"]) for r in read_state(out)["runs"]] == [2, 2, 2]
    data = yaml.safe_load(config.read_text())
    data["experiments_runner"]["overwrite"] = [5]
    config.write_text(yaml.safe_dump(data))
    before = snapshot(out)
    refused = fake_xorch("launch", str(config), cwd=tmp_path)
    assert refused.returncode == 2
    assert "experiments_runner.overwrite: the study has no run 5" in refused.stderr
    assert snapshot(out) == before


def test_rerun_of_a_variant_by_its_folder_index(tmp_path: Path) -> None:
    config, out = _study(tmp_path, variants={"base": {}, "wide": {"model.init_args.offset": 1}})
    result = fake_xorch("rerun", str(out), "wide/1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wide/run_01_seed8 moved aside to wide/run_01_seed8.old-1" in result.stdout
    assert fake_xorch("launch", str(config), "--resume", cwd=tmp_path).returncode == 0
    runs = read_state(out)["runs"]
    assert [(r["variant"], r["seed"]) for r in runs if len(r["attempts"]) == 2] == [("wide", 8)]
    assert len(_rows(out)) == 2 * (3 + 2)


def test_a_launch_killed_between_reopen_and_move_is_finished_by_resume(tmp_path: Path) -> None:
    """The order's weak point: the state says pending, the old folder (with its
    checkpoint) is still in place. The resume moves it aside before training, so
    the run starts fresh instead of resuming from the finished run's checkpoint."""
    config, out = _study(tmp_path)
    paths = StudyPaths(out)
    Ledger(paths, load_study_state(paths)).reopen([2])  # saved; no move yet
    result = fake_xorch("launch", str(config), "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "run_02_seed9.old-1" / "metrics.json").exists()
    record = read_state(out)["runs"][2]
    assert record["status"] == "completed"
    assert record["attempts"][-1]["resumed_from"] is None


def test_sigkill_of_xorch_mid_rerun_then_resume(tmp_path: Path) -> None:
    # The rerun's first attempt (the run's second) never ends by itself.
    config, out = _study(tmp_path, acts={"8": {"2": {"do": "slow"}}})
    data = yaml.safe_load(config.read_text())
    data["experiments_runner"]["overwrite"] = [1]
    config.write_text(yaml.safe_dump(data))
    proc = fake_xorch_popen("launch", str(config), cwd=tmp_path)
    try:
        wait_for(
            lambda: (running_attempt(out, 1) or {}).get("number") == 2, 60, "the rerun running"
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert read_state(out)["runs"][1]["status"] == "running"
    result = fake_xorch("launch", str(config), "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    record = read_state(out)["runs"][1]
    assert record["status"] == "completed"
    assert [a["outcome"] for a in record["attempts"]] == ["completed", "interrupted", "completed"]
    assert sorted(p.name for p in out.glob("run_01*")) == ["run_01_seed8", "run_01_seed8.old-1"]
    assert json.loads((out / "run_01_seed8.old-1" / "metrics.json").read_text())
    assert [r["run"] for r in _rows(out)[:-2]] == ["0", "1", "2"]
