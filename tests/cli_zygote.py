"""Each ``xorch ARGS`` of the tests as a real process, forked from a warm one.

A test that runs ``xorch`` to its end (``helpers.xorch``, ``fakes.fake_xorch``)
needs a real process: its own pid, exit code, signal handlers, working folder,
environment and stdout/stderr. It does not need a fresh interpreter: 0.3 s of
imports per ``launch``, and about 1 s more for the statistics behind
``summary``, ``compare`` and ``power``, were most of what the quick suite spent.
So each test process keeps one warm process (this module, run as
``python -m tests.cli_zygote``) that has imported the CLI and what its commands
import, and forks it once per call, as xorch's own fork server does for runs.
The fork is set up as ``python -m orchestrator ARGS`` would start (the given
folder, environment, ``sys.argv``, ``sys.path[0]``, stdin from /dev/null) and
exits as Python does (``SystemExit`` codes, a traceback on stderr and 1 for an
uncaught exception, threads joined and ``atexit`` handlers run).

Tests whose subject is a fresh interpreter (what a command imports, the
interpreter's start) start their own subprocess instead; tests that signal or
kill xorch use ``xorch_popen`` / ``fake_xorch_popen``, real ``Popen`` processes.

Protocol, one JSON line per call on stdin: ``{"module", "args", "cwd", "env",
"out", "err"}``; the answers are ``pid N`` once forked, then ``rc N`` (the
return code as ``subprocess`` gives it: negative for a signal).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

ROOT = str(Path(__file__).resolve().parent.parent)

# What the CLI's commands import lazily, imported once here instead of in
# every call. The list is a speed-up only: a module not named is imported by
# the fork that needs it, as a fresh process would.
WARM = (
    "orchestrator.cli",
    "orchestrator.study",
    "orchestrator.commands",
    "orchestrator.commands.compare",
    "orchestrator.commands.power",
    "orchestrator.commands.plot",
    "orchestrator.commands.report_page",
    "orchestrator.commands.summary_cmd",
    "orchestrator.commands.status",
    "orchestrator.commands.validate",
    "orchestrator.compose",
    "scipy.stats",
    "scipy.optimize",
    "statsmodels.stats.power",
    "statsmodels.stats.multitest",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "yaml",
)


def _warm() -> None:
    for name in WARM:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _exit_code(exc: SystemExit) -> int:
    """The exit status Python gives ``SystemExit(code)``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _become(request: dict[str, Any]) -> None:
    """In the fork: the process ``python -m MODULE ARGS`` would be."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["out"]), (2, request["err"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *[p for p in extra if p not in sys.path], *sys.path[1:]]
    importlib.invalidate_caches()
    module = request["module"]
    sys.argv = [module, *request["args"]]


def _run_fork(request: dict[str, Any]) -> None:
    code = 0
    try:
        _become(request)
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # as the interpreter's exit does
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def main() -> None:
    _warm()
    answer = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        answer.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_fork(request)
        answer.write(f"pid {pid}\n")
        answer.flush()
        _, status = os.waitpid(pid, 0)
        answer.write(f"rc {os.waitstatus_to_exitcode(status)}\n")
        answer.flush()


class Zygote:
    """The test process's side: one warm process, started at the first call."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lines = _Lines(-1)
        self._lock = threading.Lock()
        self._folder = Path(tempfile.mkdtemp(prefix="xorch-zygote-"))

    def _started(self, pythonpath: str) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.cli_zygote"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                cwd=self._folder,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, pythonpath]))},
            )
            assert self._process.stdout is not None
            self._lines = _Lines(self._process.stdout.fileno())
        return self._process

    def run(
        self, module: str, args: tuple[str, ...], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``python -m MODULE ARGS`` run to its end, as ``subprocess.run`` with
        ``capture_output=True, text=True`` would give it."""
        with self._lock:
            process = self._started(env.get("PYTHONPATH", ""))
            out, err = self._folder / "stdout", self._folder / "stderr"
            request = {"module": module, "args": list(args), "cwd": str(cwd), "env": env}
            assert process.stdin is not None and process.stdout is not None
            line = json.dumps({**request, "out": str(out), "err": str(err)}) + "\n"
            process.stdin.write(line.encode())
            pid = int(self._lines.expect("pid", None))
            try:
                code = int(self._lines.expect("rc", timeout))
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self._lines.expect("rc", None)
                raise subprocess.TimeoutExpired([module, *args], timeout) from None
            return subprocess.CompletedProcess(
                [sys.executable, "-m", module, *args],
                code,
                out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )


class _Lines:
    """Lines read off the warm process's stdout, with a time limit per line
    (select sees the pipe, so nothing may wait in a Python buffer)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def expect(self, word: str, timeout: float | None) -> str:
        while b"\n" not in self._buffer:
            if timeout is not None and not select.select([self._fd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(word, timeout)
            chunk = os.read(self._fd, 4096)
            if not chunk:
                raise RuntimeError("tests.cli_zygote ended")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode()
        if not text.startswith(word + " "):
            raise RuntimeError(f"tests.cli_zygote answered {text!r}, not {word}")
        return text.split()[1]


_ZYGOTE: Zygote | None = None


def run(
    module: str, args: tuple[str, ...], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` forked from this test process's warm process."""
    global _ZYGOTE
    if _ZYGOTE is None:
        _ZYGOTE = Zygote()
    return _ZYGOTE.run(module, args, cwd, env, timeout)


if __name__ == "__main__":
    main()
