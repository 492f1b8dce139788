"""The fork server: import torch, Lightning and the config's modules once, then
fork one fresh process per run.

    python -m worker.forkserver PRELOAD_JSON

It talks to the parent with JSON lines: on stdin ``{"run_spec", "log", "env"}``
asks for a run; on stdout it answers ``{"ready": ...}`` once, ``{"started":
pid}`` per run and ``{"exited": pid, "status": code}`` when a run ends (code as
``Popen.returncode``: negative for a signal). It is single-threaded on purpose:
a fork copies only the calling thread, and a lock held by any other thread
would stay locked forever in the child.

It never starts CUDA; each forked run starts its own, so runs stay as isolated
as spawned ones: each gets its own session and process group, closes what it
inherited, takes its environment (CUDA_VISIBLE_DEVICES, thread counts), and
reseeds everything in ``worker.run`` exactly as a spawned run does.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import sys
import traceback
from typing import Any

from orchestrator.contract.records import PARENT_PID_ENV
from worker.lifeline import follow_parent

__all__ = ["main"]


def main(argv: list[str]) -> int:
    preload = json.loads(argv[0]) if argv else {}
    # The server lives only as long as the xorch that started it; its runs
    # get the parent-death signal from it in turn (see ``worker.run``).
    follow_parent(watch=False)
    for path in reversed(preload.get("import_paths", [])):
        if path not in sys.path:
            sys.path.insert(0, path)
    # The Lightning package the study's classes name (see worker.lightning_package).
    named = {str(m).split(".")[0] for m in preload.get("modules", [])}
    importlib.import_module("lightning.pytorch" if "lightning" in named else "pytorch_lightning")
    import torch

    import worker.run  # noqa: F401 - and our own worker with it

    loaded, failed = _preload(preload.get("modules", []))
    cuda_started = bool(torch.cuda.is_available() and torch.cuda.is_initialized())
    _send({"ready": True, "modules": loaded, "failed": failed, "cuda_started": cuda_started})
    if cuda_started:
        return 3  # forking a CUDA context is unsafe: the parent falls back to spawn

    return _serve(sys.stdin.fileno())


def _serve(stdin: int) -> int:
    """Answer requests and report exits as they happen: SIGCHLD writes to a
    self-pipe, so ``select`` wakes on a request or a run's end, never on a timer
    (a run's end reaches the parent within milliseconds)."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # a Python handler: the
    signal.set_wakeup_fd(wake_write)  # wakeup fd is only written for handled signals
    children: set[int] = set()
    pending = b""  # requests are read with os.read, so none waits in a file buffer
    while True:
        # The timeout is only a safety net; exits and requests wake us first.
        readable, _, _ = select.select([stdin, wake_read], [], [], 5.0)
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_read, 4096):
                    pass
        if stdin in readable:
            chunk = os.read(stdin, 65536)
            if not chunk:  # the parent closed the pipe: stop and take the runs along
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                # No interpreter teardown: unloading torch takes seconds the
                # parent would otherwise wait for at the end of every study.
                os._exit(0)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                pid = _fork_run(json.loads(line))
                children.add(pid)
                _send({"started": pid})
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                _send({"exited": pid, "status": os.waitstatus_to_exitcode(status)})


def _preload(modules: list[str]) -> tuple[list[str], dict[str, str]]:
    """Import the config's modules; those that fail are named with their error.

    A user's module may raise anything while it is imported, so everything is
    caught here, but nothing is hidden: the traceback goes to the fork server's
    log and the one-line error to the parent, which prints it. The server goes
    on without the module: each run imports it again and, if it still fails,
    reports a config error of its own.
    """
    loaded: list[str] = []
    failed: dict[str, str] = {}
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any error a module raises on import: reported, see above
            failed[module] = f"{type(exc).__name__}: {exc}"
            print(f"xorch forkserver: could not preload {module}:", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
        else:
            loaded.append(module)
    return loaded, failed


def _fork_run(request: dict[str, Any]) -> int:
    sys.stdout.flush()
    # Known before the fork: should the server die before the run reads it, the
    # run's getppid() is already the reaper's, and a run that took that for its
    # parent would never notice it had none (and train on as an orphan).
    server = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        # The server's SIGCHLD wiring is not the run's: a run's own children
        # (DataLoader workers) are reaped the default way.
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # (closerange below closes the pipe)
        os.setsid()  # its own group: the parent stops the run with its workers
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, 65536)  # the server's pipes and anything else inherited
        os.environ.update(request["env"])
        os.environ[PARENT_PID_ENV] = str(server)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - fd 0 lives on
        sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        from worker.run import main as run_main

        code = run_main([request["run_spec"]])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(OSError, ValueError):  # a full disk, a closed stream
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
