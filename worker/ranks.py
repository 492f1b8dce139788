"""DDP ranks inside one run: which rank this process is, what it may write,
and how one rank's end becomes the whole run's.

Lightning's ``ddp`` strategy starts ranks 1..N-1 from rank 0 by running
``python -m worker.train_one RUN_SPEC`` again, with ``LOCAL_RANK`` set; they
inherit rank 0's process group (the parent stops them all with one
``killpg``) and its output (train.log). The rules:

- Only rank 0 writes heartbeat.json and metrics.json; Lightning itself
  writes last.ckpt and the CSV logs on rank 0 only.
- Every rank follows its own parent (rank 0 follows xorch, the others follow
  rank 0), so a parent death ends the whole tree.
- error.json: the first rank to raise writes it, from Lightning's
  ``on_exception`` hook, before the Trainer's teardown closes the process
  group (first writer wins, its rank named in the message); a rank that fails
  only because another one raised or died (gloo's "connection closed") finds
  it written.
- A rank other than 0 that ends badly ends the run: rank 0's watcher (in place
  of Lightning's own, which polls every 5 s and kills without a word) kills the
  other ranks and ends rank 0 the same way: the same exit status (error.json
  says why), or, for a rank killed by a signal, rank_exit.json naming it and
  the same signal, so the parent's usual verdict applies to the whole run with
  the rank in its evidence. A signal death is always a cause, never a
  consequence of another rank's failure; so when rank 0's own step fails, it
  first looks (SETTLE_S) for a rank killed by a signal.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.contract.atomic import atomic_write_json
from orchestrator.contract.records import PARENT_PID_ENV, ErrorReport, RankExit

__all__ = [
    "RankWatch",
    "lead_ranks",
    "own_ranks_in_one_task",
    "process_rank",
    "settle_failed_ranks",
    "take_over_rank_watch",
    "write_first_error",
]

WATCH_EVERY_S = 0.2
# How long rank 0, whose own step failed, waits to see whether another rank
# died first (its death is then the cause: gloo reports a closed connection).
SETTLE_S = 2.0


def process_rank() -> int:
    """This process's rank in its run: Lightning sets LOCAL_RANK for the ranks it
    starts (one node), a Slurm task has SLURM_PROCID; 0 otherwise."""
    for name in ("LOCAL_RANK", "SLURM_PROCID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def lead_ranks() -> None:
    """Rank 0: the ranks Lightning starts from here follow this process, not xorch."""
    os.environ[PARENT_PID_ENV] = str(os.getpid())


def write_first_error(report: ErrorReport, path: Path, rank: int) -> bool:
    """Write ``report`` to ``path`` unless some rank already did; False then.

    The file is made complete under a temporary name and linked into place:
    ``link`` fails if the name exists, so two ranks never overwrite each other."""
    if rank:
        report = ErrorReport(
            type=report.type,
            message=f"rank {rank}: {report.message}",
            traceback=report.traceback,
            cuda_oom=report.cuda_oom,
            host_oom=report.host_oom,
            resumed_from=report.resumed_from,
        )
    temp = path.with_name(f".{path.name}.rank{rank}.tmp")
    atomic_write_json(temp, report.to_json())
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


class RankWatch:
    """Rank 0's watch over the ranks it started (a thread, every WATCH_EVERY_S).

    Until the ranks have met (the process group is up), it also calls ``beat``:
    the ranks it started import torch and Lightning and build the run while
    rank 0 waits for them inside ``trainer.fit``, where no training hook beats,
    so hang_timeout would otherwise have to cover another process's start-up
    (tens of seconds on a loaded machine). A rank that dies meanwhile ends the
    run as below; one stuck before the meeting is caught by the process group's
    own timeout (Lightning's ``DDPStrategy(timeout=...)``, 30 min) or run_timeout,
    as rank 0's own start-up is not by hang_timeout either. From the meeting on
    only training hooks beat, so a rank that hangs in training stops the beats.
    """

    def __init__(
        self,
        procs: Sequence[subprocess.Popen[Any]],
        rank_exit: Path,
        beat: Callable[[], object] | None = None,
    ) -> None:
        self.procs = procs
        self.rank_exit = rank_exit
        self.beat = beat
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, name="xorch-rank-watch", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(WATCH_EVERY_S)
            if self.beat is not None:
                if _ranks_met():
                    self.beat = None  # for good: training hooks beat from here on
                else:
                    self.beat()
            failed = self.first_failed()
            if failed is not None:
                self.end_like(*failed)
            if all(p.returncode == 0 for p in self.procs):
                return  # every rank finished: nothing left to watch

    def first_failed(self) -> tuple[int, subprocess.Popen[Any]] | None:
        """The first rank (1..N-1) that ended with a non-zero status, if any.
        A rank killed by a signal comes before one that exited with an error:
        it cannot have died of another rank's failure."""
        ended = [(rank, p) for rank, p in enumerate(self.procs, 1) if p.poll() not in (None, 0)]
        ended.sort(key=lambda item: (item[1].returncode or 0) > 0)
        return ended[0] if ended else None

    def settle(self) -> None:
        """Rank 0 failed: if another rank was killed by a signal (within
        SETTLE_S), that was the cause: end as it did. A rank that exited with
        an error now most likely failed of rank 0's own failure."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            failed = self.first_failed()
            if failed is not None and (failed[1].returncode or 0) < 0:
                self.end_like(*failed)
            if time.monotonic() >= deadline or all(p.poll() is not None for p in self.procs):
                return
            time.sleep(0.05)

    def end_like(self, rank: int, proc: subprocess.Popen[Any]) -> None:
        """Name the rank, stop the others, and end this process as that rank ended."""
        with self._lock:  # the thread and the main thread may both get here
            code = proc.returncode
            assert code is not None
            if code < 0:  # an exit status has error.json as its evidence
                with contextlib.suppress(OSError):
                    RankExit(rank=rank, pid=proc.pid, exit_code=code).write(self.rank_exit)
            for other in self.procs:
                if other.poll() is None:
                    with contextlib.suppress(OSError):
                        other.kill()
            if code < 0:
                # The same signal, so that the parent classifies the run as it
                # would that rank (killed, oom_killed, signal).
                with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler
                    signal.signal(-code, signal.SIG_DFL)
                with contextlib.suppress(OSError):
                    os.kill(os.getpid(), -code)
                time.sleep(1.0)
                os._exit(128 - code)
            os._exit(code)  # that rank's error.json (first writer) says why


def _ranks_met() -> bool:
    """Whether this process's process group is up (torch is loaded by then:
    the ranks are started from ``trainer.fit``)."""
    import torch.distributed

    return torch.distributed.is_available() and torch.distributed.is_initialized()


_watch: RankWatch | None = None


def take_over_rank_watch(
    rank_exit: Path,
    package: str = "pytorch_lightning",
    beat: Callable[[], object] | None = None,
) -> None:
    """Rank 0: watch the ranks Lightning starts with ``RankWatch`` instead of
    Lightning's ``_ChildProcessObserver``. Lightning calls the module function
    ``_launch_process_observer(procs)`` right after starting them; if a later
    Lightning has no such function, its own observer stays (the run still
    ends, without rank_exit.json, and hang_timeout must cover the ranks'
    start-up). ``package``: the run's Lightning package, ``pytorch_lightning``
    or ``lightning.pytorch``. ``beat``: rank 0's heartbeat while the ranks start
    (see ``RankWatch``)."""
    subprocess_script = importlib.import_module(f"{package}.strategies.launchers.subprocess_script")

    if not hasattr(subprocess_script, "_launch_process_observer"):
        return

    def launch_watch(child_processes: list[subprocess.Popen[Any]]) -> None:
        global _watch
        _watch = RankWatch(child_processes, rank_exit, beat)

    setattr(subprocess_script, "_launch_process_observer", launch_watch)  # noqa: B010


def settle_failed_ranks() -> None:
    """Rank 0 raised: if another rank died first, end as it did (no return)."""
    if _watch is not None:
        _watch.settle()


def own_ranks_in_one_task(kwargs: dict[str, Any], package: str = "pytorch_lightning") -> None:
    """A Slurm job of one task for a run of several devices: Lightning would
    see Slurm, wait for Slurm to start the ranks as tasks and refuse the
    mismatch (``--ntasks-per-node=1``, ``devices=2``). xorch gives a run one
    task with all its GPUs, so the ranks are started from rank 0 as on a local
    slot: ``LightningEnvironment`` instead of ``SLURMEnvironment``. A config
    with its own ``plugins`` decides for itself. ``package``: as above (the
    environment must be of the same package's fabric)."""
    if os.environ.get("SLURM_NTASKS") != "1" or "plugins" in kwargs:
        return
    fabric = "lightning.fabric" if package.startswith("lightning.") else "lightning_fabric"
    LightningEnvironment = importlib.import_module(
        f"{fabric}.plugins.environments"
    ).LightningEnvironment

    devices = kwargs.get("devices", "auto")
    if isinstance(devices, str) and not devices.strip().lstrip("-").isdigit():
        devices = [d for d in devices.split(",") if d.strip()] if "," in devices else 1
    elif isinstance(devices, str):
        devices = int(devices)
    several = len(devices) > 1 if isinstance(devices, (list, tuple)) else devices > 1
    if several or devices == -1:  # -1: every GPU the task has
        kwargs["plugins"] = [LightningEnvironment()]
