"""runner_state.json: schema, transitions, and crash safety of every write."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import StateError, StateWriteError
from orchestrator.state import (
    Attempt,
    AttemptClass,
    RunRecord,
    RunStatus,
    StudyState,
)
from orchestrator.state_store import load_state, save_state
from tests.helpers import ROOT, tiny_config, xorch


def new_state(n: int = 3) -> StudyState:
    return StudyState(
        config_fingerprint="abc",
        training_config={"model": {"class_path": "a.B"}},
        seeds=tuple(range(10, 10 + n)),
        runs=tuple(
            RunRecord(index=i, seed=10 + i, dir=f"run_{i:02d}_seed{10 + i}") for i in range(n)
        ),
    )


def finished(attempt: Attempt, outcome: AttemptClass) -> Attempt:
    return dataclasses.replace(attempt, attempt_class=outcome, ended_at="t1", duration_s=1.5)


def test_round_trip_keeps_every_field(tmp_path):
    paths = StudyPaths(tmp_path)
    attempt = Attempt(
        number=1, started_at="t0", log="run_00_seed10/train.log", pid=123, pid_create_time=1.0
    )
    state = new_state().start_attempt(0, attempt)
    state = state.finish_attempt(0, finished(attempt, AttemptClass.COMPLETED), {"val/loss": 0.5})
    save_state(paths, state)
    loaded = load_state(paths)
    assert loaded == state
    payload = json.loads(paths.state.read_text())
    assert payload["schema_version"] == 1
    assert payload["runs"][0]["status"] == "completed"
    assert payload["runs"][0]["attempts"][0]["outcome"] == "completed"


def test_only_allowed_transitions():
    state = new_state()
    attempt = Attempt(number=1, started_at="t0", log="x")
    done = finished(attempt, AttemptClass.COMPLETED)
    with pytest.raises(RuntimeError, match="pending -> completed"):
        state.finish_attempt(0, done)
    state = state.start_attempt(0, attempt).finish_attempt(0, done, {"m": 1.0})
    with pytest.raises(RuntimeError, match="completed -> running"):
        state.start_attempt(0, attempt)


def test_a_failed_run_keeps_every_attempt_and_no_metrics():
    state = new_state()
    first = Attempt(number=1, started_at="t0", log="x")
    state = state.start_attempt(1, first).finish_attempt(1, finished(first, AttemptClass.HANG))
    second = Attempt(number=2, started_at="t2", log="x")
    state = state.start_attempt(1, second)
    state = state.finish_attempt(1, finished(second, AttemptClass.SIGNAL))
    record = state.runs[1]
    assert record.status is RunStatus.FAILED and record.failure is AttemptClass.SIGNAL
    assert [a.attempt_class for a in record.attempts] == [AttemptClass.HANG, AttemptClass.SIGNAL]
    assert record.duration_s == 3.0 and record.metrics == {}


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],
        lambda text: "",
        lambda text: "[1, 2]",
        lambda text: text.replace('"seeds"', '"sedes"'),
        lambda text: text.replace('"pending"', '"exploded"', 1),
    ],
)
def test_damaged_state_is_refused_and_left_byte_for_byte(tmp_path, damage):
    paths = StudyPaths(tmp_path)
    save_state(paths, new_state())
    save_state(paths, new_state())  # now a .bak exists too
    paths.state.write_text(damage(paths.state.read_text()))
    before = paths.state.read_bytes()
    with pytest.raises(StateError) as info:
        load_state(paths)
    assert "runner_state.json.bak" in str(info.value)
    assert paths.state.read_bytes() == before


def test_newer_schema_is_refused(tmp_path):
    paths = StudyPaths(tmp_path)
    save_state(paths, new_state())
    payload = json.loads(paths.state.read_text())
    payload["schema_version"] = 99
    paths.state.write_text(json.dumps(payload))
    with pytest.raises(StateError, match="schema_version 99, newer"):
        load_state(paths)


def test_a_failed_write_leaves_the_previous_state_intact(tmp_path, monkeypatch):
    paths = StudyPaths(tmp_path)
    save_state(paths, new_state())
    before = paths.state.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    attempt = Attempt(number=1, started_at="t0", log="x")
    with pytest.raises(StateWriteError, match="No space left on device"):
        save_state(paths, new_state().start_attempt(0, attempt))
    monkeypatch.undo()
    assert paths.state.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from tests.test_state import new_state
    from orchestrator.contract.paths import StudyPaths
    from orchestrator.state import Attempt
    from orchestrator.state_store import save_state

    kind, nth = sys.argv[2], int(sys.argv[3])
    paths = StudyPaths(Path(sys.argv[1]))
    calls = {"n": 0}

    def maybe_die():
        calls["n"] += 1
        if calls["n"] == nth:
            os._exit(9)

    if kind == "fsync":
        real_fsync = os.fsync
        def fsync(fd):
            maybe_die()
            real_fsync(fd)
        os.fsync = fsync
    else:
        def hook(event, args):
            if event == kind:  # note: os.replace is audited as "os.rename"
                maybe_die()
        sys.addaudithook(hook)
    save_state(paths, new_state().start_attempt(0, Attempt(number=1, started_at="t", log="x")))
    print("survived", calls["n"])
    """
)


@pytest.mark.parametrize(
    ("kind", "nth"),
    [
        ("os.rename", 1),
        ("os.rename", 2),
        ("os.link", 1),
        ("fsync", 1),
        ("fsync", 2),
        ("open", 1),
        ("open", 2),
    ],
)
def test_a_kill_at_any_point_of_a_write_leaves_the_old_or_the_new_state(tmp_path, kind, nth):
    paths = StudyPaths(tmp_path / "study dir")
    paths.root.mkdir()
    old = new_state()
    save_state(paths, old)
    new = old.start_attempt(0, Attempt(number=1, started_at="t", log="x"))
    result = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(paths.root), kind, str(nth)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 9, "kill point never reached: " + result.stdout + result.stderr
    loaded = load_state(paths)
    assert loaded is not None
    on_disk = dataclasses.replace(loaded, created_at=old.created_at)
    assert on_disk in (old, dataclasses.replace(new, created_at=old.created_at))


def test_cli_refuses_a_damaged_state_on_resume_without_touching_it(workdir, write_config):
    out = workdir / "out"
    config = write_config(tiny_config(out))
    paths = StudyPaths(out)
    out.mkdir()
    save_state(paths, new_state())
    paths.state.write_text(paths.state.read_text()[:40])
    before = paths.state.read_bytes()
    result = xorch("launch", str(config), "--resume", cwd=workdir)
    assert result.returncode == 2
    assert "damaged" in result.stderr and "Traceback" not in result.stderr
    assert paths.state.read_bytes() == before
    assert not any(p.name.startswith("run_") for p in out.iterdir())
