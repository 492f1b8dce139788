"""Faults injected where the filesystem can fail, in the style of filelock's
tests: ``os.link``, ``os.fsync`` and ``os.replace`` raise a chosen errno at a
chosen call, the state lock times out, a heartbeat cannot be written. After
each, the files on disk are checked: runner_state.json holds the old or the new
state, whole, never a torn one; runner_state.json.bak holds a whole older state;
no temp file is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import locks
from orchestrator.contract.paths import StudyPaths
from orchestrator.contract.records import Heartbeat, HeartbeatPhase
from orchestrator.errors import StateWriteError
from orchestrator.state import RunRecord, StudyState
from orchestrator.state_store import load_backup, load_state, save_state


def study_state(version: int) -> StudyState:
    """A state whose metrics tell which save it came from."""
    runs = tuple(
        RunRecord(index=i, seed=i, dir=f"run_{i:02d}_seed{i}", metrics={"version": float(version)})
        for i in range(3)
    )
    return StudyState("abc", {"model": {}}, tuple(range(3)), runs)


def version_of(state: StudyState | None) -> int | None:
    return None if state is None else int(state.runs[0].metrics["version"])


def fail_at(
    monkeypatch: pytest.MonkeyPatch, name: str, nth: int, code: int = errno.ENOSPC
) -> list[int]:
    """Make ``os.<name>`` raise OSError(code) on its ``nth`` call from now on
    (the others go through); returns the call counter."""
    real: Callable[..., Any] = getattr(os, name)
    calls = [0]

    def faulty(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == nth:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, faulty)
    return calls


@pytest.fixture
def saved(tmp_path: Path) -> StudyPaths:
    """A study folder after two saves: state v2, backup v1."""
    paths = StudyPaths(tmp_path / "study dir")
    paths.root.mkdir()
    save_state(paths, study_state(1))
    save_state(paths, study_state(2))
    assert version_of(load_state(paths)) == 2 and version_of(load_backup(paths)) == 1
    return paths


def leftovers(paths: StudyPaths) -> list[str]:
    return sorted(p.name for p in paths.root.iterdir() if p.name.endswith(".tmp"))


# In save_state's write of v3: fsync #1 is the temp file's, #2 the folder's
# (after the rename); os.replace #1 moves the hard-linked backup into place,
# #2 the new state; os.link makes the backup's hard link.
FAULTS = [
    ("link", 1, {2}, {1}),
    ("fsync", 1, {2}, {1}),
    ("replace", 1, {2}, {1}),
    ("replace", 2, {2}, {2}),
    # The folder's fsync fails after the rename: the new state is in place
    # (whether it survives a power cut is what the failed fsync leaves open).
    ("fsync", 2, {3}, {2}),
]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
@pytest.mark.parametrize(("call", "nth", "state_after", "backup_after"), FAULTS)
def test_a_failed_state_write_leaves_whole_files(
    saved, monkeypatch, call, nth, state_after, backup_after, code
):
    state_bytes = saved.state.read_bytes()
    fail_at(monkeypatch, call, nth, code)
    with pytest.raises(StateWriteError, match=os.strerror(code)):
        save_state(saved, study_state(3))
    monkeypatch.undo()
    assert version_of(load_state(saved)) in state_after
    assert version_of(load_backup(saved)) in backup_after
    if state_after == {2}:
        assert saved.state.read_bytes() == state_bytes  # not rewritten at all
    assert leftovers(saved) == []
    # The next save works, rotates as usual and leaves no temp file either
    # (after the failed second rename the backup and the state are one file:
    # renaming a link onto another link of the same file is a no-op).
    save_state(saved, study_state(4))
    assert version_of(load_state(saved)) == 4
    assert version_of(load_backup(saved)) == max(state_after)
    assert leftovers(saved) == []


def test_a_fault_in_every_call_of_a_save_is_survived(saved, monkeypatch):
    # Fail each os call of the atomic writer in turn until one save goes
    # through: whichever call fails, the files stay whole.
    for name in ("link", "fsync", "replace"):
        for nth in range(1, 4):
            fail_at(monkeypatch, name, nth)
            with contextlib.suppress(StateWriteError):
                save_state(saved, study_state(5))
            monkeypatch.undo()
            assert version_of(load_state(saved)) in {2, 5}, (name, nth)
            assert version_of(load_backup(saved)) in {1, 2, 5}, (name, nth)
    assert leftovers(saved) == []


def test_a_state_lock_held_too_long_is_a_write_error_and_changes_nothing(saved, monkeypatch):
    # Another process holds the state lock (here: another open file
    # description in this process, which flock treats the same way).
    monkeypatch.setattr(locks, "STATE_LOCK_TIMEOUT_S", 0.2)
    state_bytes, backup_bytes = saved.state.read_bytes(), saved.state_backup.read_bytes()
    holder = os.open(saved.state_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(StateWriteError, match="the previous state is intact"):
            save_state(saved, study_state(3))
    finally:
        os.close(holder)
    assert saved.state.read_bytes() == state_bytes
    assert saved.state_backup.read_bytes() == backup_bytes
    assert leftovers(saved) == []
    save_state(saved, study_state(3))  # the lock is free again
    assert version_of(load_state(saved)) == 3


# --------------------------------------------------------------------------- heartbeats


def beat(n: int) -> Heartbeat:
    return Heartbeat(pid=os.getpid(), time=float(n), phase=HeartbeatPhase.TRAIN, epoch=n)


@pytest.mark.parametrize(("call", "nth"), [("fsync", 1), ("replace", 1), ("open", 1)])
def test_a_heartbeat_that_cannot_be_written_raises_nothing_and_keeps_the_last(
    tmp_path, monkeypatch, call, nth
):
    path = tmp_path / "heartbeat.json"
    assert beat(1).write_if_possible(path)
    fail_at(monkeypatch, call, nth)
    assert not beat(2).write_if_possible(path)
    monkeypatch.undo()
    assert Heartbeat.read(path) == beat(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heartbeat.json"]


@pytest.mark.lightning  # the worker's callback inside a real fit
def test_training_goes_on_while_heartbeats_cannot_be_written(tmp_path, monkeypatch):
    # The worker's own callback in a real (tiny) fit: every heartbeat write
    # fails with ENOSPC, and the fit still runs to its last epoch.
    pl = pytest.importorskip("pytorch_lightning")
    from worker.callbacks import callbacks_for
    from worker.tasks.quick import QuickClassifier, QuickDataModule

    path = tmp_path / "heartbeat.json"
    beat(0).write(path)
    real_replace = os.replace
    refused: list[str] = []

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(dst) == str(path):
            refused.append(str(dst))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        callbacks=[callbacks_for(pl).heartbeat(path, interval_s=0.0, resumed_from=None)],
    )  # fmt: skip
    model = QuickClassifier(features=8, hidden=16, classes=3, lr=0.05)
    data = QuickDataModule(features=8, classes=3, train_size=32, val_size=16, batch_size=16)
    trainer.fit(model, datamodule=data)
    monkeypatch.undo()
    assert trainer.current_epoch == 2 and not trainer.interrupted
    assert len(refused) > 4  # the callback did try, at every batch
    assert Heartbeat.read(path) == beat(0)  # the last good beat, whole
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
