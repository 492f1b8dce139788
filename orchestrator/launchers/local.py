"""Children on this machine: ``python -m worker.train_one`` in a new session,
or, for a ``command:`` study, the user's program itself, started at once (no
wrapper interpreter in between) and tied to this parent's life by the kernel's
parent-death signal (``_start_program``).

A new session (and so a new process group) keeps the terminal's Ctrl-C away
from the child: the parent decides how a child stops, and can stop the child's
DataLoader workers with it by signalling the whole group. What left the group
(a ``setsid`` child, a double-forked grandchild) carries the run's marker and
is ended with the run too (``orchestrator.run_processes``).
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from orchestrator.contract.child import COMMAND_ENTRY, TRAIN_ENTRY
from orchestrator.contract.command import invocation
from orchestrator.contract.environment import RUN_MARK_ENV, child_environment, run_mark
from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import RunSpec
from orchestrator.launchers.base import ChildProcess, Launcher, Wakeup
from orchestrator.liveness import identify
from orchestrator.run_processes import RunSweep

__all__ = ["LocalChild", "LocalLauncher", "stop_process_group", "wake_on_exit"]


class LocalChild(ChildProcess):
    def __init__(self, popen: subprocess.Popen[bytes], sweep: RunSweep | None = None) -> None:
        self._popen = popen
        self._process, self.create_time = identify(popen.pid)
        # What the run left outside its process group, found by its marker.
        self._sweep = sweep

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        code = self._popen.poll()
        if code is not None:
            # The leader is gone; DataLoader workers it left in its group go too.
            _signal_group(self.pid, signal.SIGKILL)
            if self._sweep is not None:
                self._sweep.kill_once()
        return code

    def notify_exit(self, wakeup: Wakeup) -> bool:
        if not wakeup.watch_exit(self.pid):
            wake_on_exit(self.pid, wakeup)  # no pidfd: a thread waits for it
        return True

    def request_stop(self) -> None:
        _signal_group(self.pid, signal.SIGTERM)
        if self._sweep is not None:
            self._sweep.terminate()

    def stop(self, grace_period: float) -> int:
        stop_process_group(self.pid, grace_period, reap=self._popen.poll)
        code = self._popen.wait()
        if self._sweep is not None:  # what left the group ends with the run
            self._sweep.kill_once()
        return code

    def rss_bytes(self) -> int | None:
        return self.tree_rss(self._process)

    @staticmethod
    def tree_rss(process: psutil.Process | None) -> int | None:
        """Resident memory of a process and all its descendants (DataLoader workers)."""
        if process is None:
            return None
        try:
            total = process.memory_info().rss
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return total
        except psutil.Error:
            return None


def wake_on_exit(pid: int, wakeup: Wakeup) -> None:
    """Set ``wakeup`` when our child ``pid`` exits, from a thread that waits for
    it without reaping it (WNOWAIT): ``Popen`` still collects the status, so
    nothing races over it. The thread costs no CPU while the child runs.

    A bare ``_thread`` thread: ``threading.Thread.start`` waits until the new
    thread has run, 2-3 ms a start on the 2-core box while the child just
    started takes the other core (issue 20); nothing ever joins this thread,
    and like a daemon thread it does not hold up the interpreter's exit."""

    def wait() -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        wakeup.set()

    _thread.start_new_thread(wait, ())


_XORCH_ROOT = str(Path(__file__).resolve().parents[2])
_PR_SET_PDEATHSIG = 1
# What a program is started through when setpriv(1) is there: setpriv asks for
# SIGKILL at this parent's death (kept across exec), then the shell checks that
# its parent is still this process, since it may have died before the request,
# and execs the program ("$@": no word of it is parsed by the shell). The same
# two steps as ``die_with_this_parent`` below, but in the child's own programs,
# so subprocess can start the child with vfork: a hook between fork and exec
# forces a full fork of this parent, 5-6 ms a start on the 2-core box against
# about 2 ms for the two extra execs (issue 20).
_LIFELINE_SCRIPT = 'test "$PPID" = "$0" || exit 1; exec "$@"'
# What the shell passes on to the program: it drops a variable whose name is not
# a shell name (Lmod's exported BASH_FUNC_module%%, a dotted Spark setting).
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The first bytes of a file the kernel execs itself (else execve fails with
# ENOEXEC, where the shell would run the file as a shell script instead).
_EXECUTABLE_MAGIC = (b"#!", b"\x7fELF")


@functools.cache
def _lifeline_tools() -> tuple[str, str] | None:
    """setpriv and sh, once they have been seen to work together here; None
    without them (setpriv is util-linux's, --pdeathsig since 2.33)."""
    setpriv, shell = shutil.which("setpriv"), shutil.which("sh")
    if setpriv is None or shell is None:
        return None
    probe = _lifeline_argv((setpriv, shell), os.getpid(), ["true"])
    try:
        done = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (setpriv, shell) if done.returncode == 0 and not done.stderr else None


def _kernel_execs(program: str) -> bool:
    """Whether execve would start ``program`` (an executable ELF file or script)."""
    try:
        with open(program, "rb") as handle:
            magic = handle.read(4)
    except OSError:
        return False
    return os.access(program, os.X_OK) and magic.startswith(_EXECUTABLE_MAGIC)


def _start_program(
    run: RunPaths, env: Mapping[str, str], log: Any
) -> subprocess.Popen[bytes] | None:
    """A ``command:`` run's program, exec'd straight from here: what
    ``worker.command_run`` would do, without its interpreter's start-up (a
    trivial program's run costs little more than the program). None when the
    program cannot be started: the wrapper then reports why, as the run's error."""
    start = invocation(RunSpec.load(run.run_spec), env, _XORCH_ROOT)
    parent = os.getpid()
    tools = _lifeline_tools()
    if tools is not None and not _kernel_execs(start.argv[0]):
        return None
    if tools is not None and not all(_SHELL_NAME.fullmatch(name) for name in start.env):
        tools = None  # the shell would lose some of the environment: the hook keeps it
    try:
        return subprocess.Popen(
            _lifeline_argv(tools, parent, start.argv),
            cwd=start.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=start.env,
            start_new_session=True,
            preexec_fn=None if tools is not None else _die_with(parent),
        )
    except OSError:
        return None


def _lifeline_argv(tools: tuple[str, str] | None, parent: int, program: Sequence[str]) -> list[str]:
    """The program's argv, behind setpriv and the shell's check when ``tools``.
    The shell sets PWD to the working folder, as for any program a shell starts."""
    if tools is None:
        return list(program)
    setpriv, shell = tools
    lifeline = [setpriv, "--pdeathsig", "KILL", "--", shell, "-c", _LIFELINE_SCRIPT, str(parent)]
    return [*lifeline, *program]


def _die_with(parent: int) -> Callable[[], None]:
    """Where setpriv is missing: the parent-death signal set between fork and
    exec (a full fork, see ``_LIFELINE_SCRIPT``)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not after fork

    def die_with_this_parent() -> None:  # between fork and exec: no imports, no locks
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return die_with_this_parent


class LocalLauncher(Launcher):
    def __init__(self, entry: str = TRAIN_ENTRY) -> None:
        # The child's module: worker.train_one for a Lightning run,
        # worker.command_run for a study's own program (``command:``).
        self.entry = entry

    def start(self, run: RunPaths, env: Mapping[str, str]) -> LocalChild:
        sweep = RunSweep(run_mark(run.root), time.time())
        env = child_environment({**env, RUN_MARK_ENV: sweep.mark})
        with open(run.log, "ab") as log:
            if self.entry == COMMAND_ENTRY and sys.platform.startswith("linux"):
                popen = _start_program(run, env, log)
                if popen is not None:
                    return LocalChild(popen, sweep)
            popen = subprocess.Popen(
                [sys.executable, "-m", self.entry, str(run.run_spec)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return LocalChild(popen, sweep)


def stop_process_group(
    pgid: int, grace_period: float, reap: Callable[[], object] | None = None, poll_s: float = 0.1
) -> None:
    """SIGTERM the group, wait up to ``grace_period`` for it to empty, then SIGKILL.

    ``reap`` collects our own child's exit status, so its zombie does not keep
    the group looking alive.
    """
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_period
    while True:
        if reap is not None:
            reap()
        if not _group_alive(pgid) or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    _signal_group(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts until reaped; check the members themselves.
    for proc in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
