"""``launcher: forkserver``: runs forked from a helper that imported torch once.

The helper (``worker.forkserver``, never this process) pays the import of
torch, Lightning and the config's modules once; each run is then a fork of it,
in its own session, started in a fraction of a second. This side only speaks
JSON lines with it: a reader thread collects the helper's messages, so polling a
run never blocks. A helper that died is started again for the next run; where
forking is not safe (not Linux, or CUDA already started in the helper) runs fall
back to spawn, and the reporter says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from orchestrator.contract.environment import RUN_MARK_ENV, child_environment, run_mark
from orchestrator.contract.paths import RunPaths
from orchestrator.launchers.base import ChildProcess, Launcher, Wakeup
from orchestrator.launchers.local import LocalChild, LocalLauncher, stop_process_group
from orchestrator.liveness import identify
from orchestrator.run_processes import RunSweep
from orchestrator.state import AttemptClass
from orchestrator.tracker_config import tracker_modules

__all__ = ["ForkedChild", "ForkserverLauncher", "preload_modules"]

READY_TIMEOUT_S = 300.0  # importing torch on a slow shared disk can take a while


class _Helper:
    """One running fork server and what it has told us."""

    def __init__(self, preload: Mapping[str, Any], log_path: Path) -> None:
        env = child_environment()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker.forkserver", json.dumps(preload)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        self._lock = threading.Condition()
        self._messages: list[dict[str, Any]] = []
        self.exits: dict[int, int] = {}
        self._eof = False
        # The scheduler's wake-ups: set on every exit the helper reports, and
        # when the helper itself goes away (its runs went with it).
        self.wakeups: set[Wakeup] = set()
        self._reader = threading.Thread(target=self._read, name="xorch-forkserver", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                with self._lock:
                    if "exited" in message:
                        self.exits[int(message["exited"])] = int(message["status"])
                    else:
                        self._messages.append(message)
                    self._lock.notify_all()
                if "exited" in message:
                    self._wake()
        with self._lock:
            self._eof = True
            self._lock.notify_all()
        self._wake()

    def _wake(self) -> None:
        for wakeup in list(self.wakeups):
            wakeup.set()

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        with self._lock:
            self._lock.wait_for(lambda: self._messages or not self.alive, timeout=timeout)
            return self._messages.pop(0) if self._messages else None

    @property
    def alive(self) -> bool:
        # End of its output counts as death already: the exit status may lag.
        return not self._eof and self.process.poll() is None

    def send(self, request: Mapping[str, Any]) -> None:
        stdin: IO[bytes] | None = self.process.stdin
        assert stdin is not None
        stdin.write((json.dumps(request) + "\n").encode())
        stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin:
                self.process.stdin.close()  # the helper stops on end of input
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ForkedChild(ChildProcess):
    """A run forked by the helper. Its exit status comes from the helper, which
    is its parent and reaps it."""

    def __init__(self, pid: int, helper: _Helper, sweep: RunSweep | None = None) -> None:
        self._pid = pid
        self._helper = helper
        self._process, self.create_time = identify(pid)
        # A forked run's own /proc environ is the server's, but what it execs
        # carries the run's marker: a program it started in a new session.
        self._sweep = sweep

    @property
    def pid(self) -> int:
        return self._pid

    def ended_as(self) -> tuple[AttemptClass, str] | None:
        if self._pid not in self._helper.exits and not self._helper.alive:
            return AttemptClass.INTERRUPTED, "the fork server died, and this run with it"
        return None

    def notify_exit(self, wakeup: Wakeup) -> bool:
        self._helper.wakeups.add(wakeup)
        if self.poll() is not None or not self._helper.alive:
            wakeup.set()  # it ended before we listened
        return True

    def poll(self) -> int | None:
        code = self._helper.exits.get(self._pid)
        if code is None and not self._helper.alive:
            # The helper died and took the run with it (parent-death signal).
            code = -signal.SIGKILL
        if code is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGKILL)  # DataLoader workers left behind
            if self._sweep is not None:
                self._sweep.kill_once()
        return code

    def request_stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, signal.SIGTERM)
        if self._sweep is not None:
            self._sweep.terminate()

    def stop(self, grace_period: float) -> int:
        stop_process_group(self._pid, grace_period, reap=self.poll)
        with self._helper._lock:
            self._helper._lock.wait_for(lambda: self.poll() is not None, timeout=10)
        code = self.poll()
        return code if code is not None else -signal.SIGKILL

    def rss_bytes(self) -> int | None:
        return LocalChild.tree_rss(self._process)


class ForkserverLauncher(Launcher):
    def __init__(
        self,
        preload: Mapping[str, Any],
        log_path: Path,
        say: Callable[[str], None] = lambda message: None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.preload = preload
        self.log_path = log_path
        self.say = say
        self.warn = warn or say  # a module that did not preload: stderr, not progress
        self._helper: _Helper | None = None
        self._fallback: LocalLauncher | None = None
        if not sys.platform.startswith("linux"):
            self._fall_back("forking is only used on Linux")

    def _fall_back(self, why: str) -> None:
        # Said once: after this every run is spawned.
        self.say(
            f"launcher forkserver: {why}; starting runs with spawn instead "
            "(launcher: spawn chooses it from the start)"
        )
        self._fallback = LocalLauncher()

    def _ready_helper(self) -> _Helper | None:
        if self._helper is not None and self._helper.alive:
            return self._helper
        if self._helper is not None:
            self.say("launcher forkserver: the fork server died; starting it again")
        helper = _Helper(self.preload, self.log_path)
        ready = helper.next_message(READY_TIMEOUT_S)
        if not ready or not ready.get("ready"):
            helper.close()
            self._fall_back(f"the fork server did not start (see {self.log_path})")
            return None
        for module, error in (ready.get("failed") or {}).items():
            self.warn(
                f"launcher forkserver: could not preload {module} ({error}; traceback in "
                f"{self.log_path}); each run imports it again itself"
            )
        if ready.get("cuda_started"):
            helper.close()
            self._fall_back("CUDA was started while importing the config's modules")
            return None
        self._helper = helper
        return helper

    def start(self, run: RunPaths, env: Mapping[str, str]) -> LocalChild | ForkedChild:
        helper = None if self._fallback else self._ready_helper()
        if helper is None:
            assert self._fallback is not None
            return self._fallback.start(run, env)
        sweep = RunSweep(run_mark(run.root), time.time())
        marked = {**env, RUN_MARK_ENV: sweep.mark}
        helper.send({"run_spec": str(run.run_spec), "log": str(run.log), "env": marked})
        message = helper.next_message(60.0)
        if not message or "started" not in message:
            self._helper = None
            self._fall_back("the fork server stopped answering")
            assert self._fallback is not None
            return self._fallback.start(run, env)
        return ForkedChild(int(message["started"]), helper, sweep)

    def close(self) -> None:
        if self._helper is not None:
            self._helper.close()
            self._helper = None
        # An empty log says nothing; as the default launcher it would sit in
        # every study folder.
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size == 0:
                self.log_path.unlink()


def preload_modules(config: Mapping[str, Any], import_paths: Sequence[str]) -> dict[str, Any]:
    """The modules a fork server imports up front: those the config's model, data
    and callbacks name, by ``class_path`` or Hydra's ``_target_``, and the
    packages of the trackers its loggers write to."""
    entries = [config.get("model"), config.get("data"), *(config.get("callbacks") or [])]
    modules = sorted(
        {
            str(e.get("class_path", e.get("_target_"))).rpartition(".")[0]
            for e in entries
            if isinstance(e, Mapping) and ("class_path" in e or "_target_" in e)
        }
    )
    # The trackers' packages too: each takes seconds to import (MLflow's five).
    modules += tracker_modules(config)
    return {"modules": modules, "import_paths": list(import_paths)}
