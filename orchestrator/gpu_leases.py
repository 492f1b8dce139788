"""Machine-wide GPU leases: two xorch processes on one machine never put more
runs on a GPU than their ``runs_per_gpu`` allows.

Each GPU has places (``lease_choice``); a run holds one place on each of its GPUs
for the whole attempt, as an exclusive ``flock`` on the place's file in the
lease folder (``LeasePaths``), taken by the parent and released when the
attempt's verdict is recorded. The kernel drops an flock when its holder dies,
so a parent killed with SIGKILL leaves no lease behind: the next taker finds the
place free (its children die with it, by the parent-death signal). Choosing a
place reads who holds the others, so it happens under ``leases.lock``, held for
milliseconds. Beside each place, a JSON record says who holds it (pid, create
time, host, study, run, then the run's child) for ``xorch status``, which
believes a record only on proof of life (``liveness.still_running``), as the
study lock's owner file; and a place whose flock is free but whose record names
a child still alive (its parent was just killed) stays taken until it is gone.
The lock files are opened close-on-exec: no child holds a lease by inheritance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.contract.atomic import atomic_write_json
from orchestrator.contract.lease_paths import GPU_LEASES_ENV, LeasePaths
from orchestrator.contract.records import read_json_object
from orchestrator.errors import ConfigError
from orchestrator.lease_choice import PlaceHolder, choose_places, first_in_line
from orchestrator.liveness import identify, still_running

__all__ = ["GpuLeases", "Lease", "LeaseOwner", "LeaseView", "open_leases", "read_leases"]

MUTEX_WAIT_S = 5.0  # leases.lock is held for milliseconds; longer means a stuck holder
# A waiter renews its record each time it asks again (every LEASE_RECHECK_S); one
# not renewed for this long has stopped asking (or died) and is no longer in line.
WAIT_FRESH_S = 3.0


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a place: the xorch parent (pid + create time + host, the proof
    that it lives), its study folder, the run, and its ``runs_per_gpu``."""

    pid: int
    create_time: float | None
    host: str
    study: str
    run: int
    runs_per_gpu: int
    since: float
    # The run's child once started: a place whose parent died stays taken while it
    # lives (the parent-death signal ends it within milliseconds, but not before).
    child_pid: int | None = None
    child_create_time: float | None = None

    def alive(self) -> bool:
        """The holder lives: its parent, or the run's child (each by pid + create time)."""
        if still_running(self.pid, self.create_time, self.host):
            return True
        return self.child_pid is not None and still_running(
            self.child_pid, self.child_create_time, self.host
        )

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)

    @classmethod
    def read(cls, path: Path) -> LeaseOwner | None:
        raw = read_json_object(path)
        if raw is None:
            return None
        try:
            created, child, child_created = (
                raw.get(key) for key in ("create_time", "child_pid", "child_create_time")
            )
            return cls(
                pid=int(raw["pid"]),
                create_time=float(created) if created is not None else None,
                host=str(raw["host"]),
                study=str(raw["study"]),
                run=int(raw["run"]),
                runs_per_gpu=int(raw["runs_per_gpu"]),
                since=float(raw["since"]),
                child_pid=int(child) if child is not None else None,
                child_create_time=float(child_created) if child_created is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class Lease:
    """The places one attempt holds: their open, flock'ed files."""

    held: list[tuple[int, Path]]  # (fd, the owner record)
    owner: LeaseOwner | None = None

    def note_child(self, pid: int, create_time: float | None) -> None:
        """The run's child, in the owner records (``LeaseOwner.child_pid``)."""
        if self.owner is None:
            return
        self.owner = dataclasses.replace(self.owner, child_pid=pid, child_create_time=create_time)
        for _, path in self.held:
            with contextlib.suppress(OSError):
                atomic_write_json(path, self.owner.to_json(), durable=False)

    def release(self) -> None:
        for fd, owner in self.held:
            with contextlib.suppress(OSError):
                owner.unlink()  # first: a record left by a crash here is disproved by its pid
            with contextlib.suppress(OSError):
                os.close(fd)  # drops the flock
        self.held = []


@dataclass(frozen=True)
class LeaseView:
    """A held place as ``xorch status`` shows it."""

    gpu: str
    place: int
    owner: LeaseOwner


class GpuLeases:
    """Takes places for one study's runs in the machine's lease folder."""

    def __init__(self, paths: LeasePaths, study: Path, runs_per_gpu: int) -> None:
        self.paths, self.study, self.runs_per_gpu = paths, study, runs_per_gpu
        _, self._create_time = identify(os.getpid())
        self._waiting: dict[str, float] = {}  # GPU -> since when this process waits for it

    def take(self, gpus: Sequence[str], run: int) -> Lease | None:
        """A place on each of ``gpus`` for run ``run``, or None while any is full
        (or while another process holds leases.lock for longer than it should)."""
        with self._mutex() as got:
            if not got:
                return None
            now = time.time()
            chosen = None
            if all(first_in_line(self._waiting.get(g), self._others_waiting(g, now)) for g in gpus):
                held = {gpu: self._holders(gpu) for gpu in gpus}
                chosen = choose_places(held, gpus, self.runs_per_gpu)
            if chosen is None:
                self._wait(gpus, now)
                return None
            record = self._owner(run)
            lease = Lease([], record)
            for gpu, place in chosen.items():
                fd = _open(self.paths.place_lock(gpu, place))
                if not _try_flock(fd):  # held by a taker that skipped the mutex: not ours
                    os.close(fd)
                    lease.release()
                    return None
                owner = self.paths.place_owner(gpu, place)
                lease.held.append((fd, owner))
                # Only a note for status and for the next taker's limit (unread: the
                # strictest): a full /tmp must not stop the study.
                with contextlib.suppress(OSError):
                    atomic_write_json(owner, record.to_json(), durable=False)
            self.stop_waiting(gpus)
            return lease

    def stop_waiting(self, gpus: Sequence[str] | None = None) -> None:
        """Out of line for ``gpus`` (all by default): a lease was taken, or the study ends."""
        for gpu in list(self._waiting) if gpus is None else gpus:
            if self._waiting.pop(gpu, None) is not None:
                with contextlib.suppress(OSError):
                    self.paths.wait_record(gpu, os.getpid()).unlink()

    def _wait(self, gpus: Sequence[str], now: float) -> None:
        """In line for each of ``gpus``: since the first refusal, renewed now."""
        for gpu in gpus:
            since = self._waiting.setdefault(gpu, now)
            record = {"pid": os.getpid(), "since": since, "renewed": now}
            with contextlib.suppress(OSError):  # only fairness is lost without it
                atomic_write_json(self.paths.wait_record(gpu, os.getpid()), record, durable=False)

    def _others_waiting(self, gpu: str, now: float) -> list[float]:
        """Since when the other processes still in line for ``gpu`` wait."""
        found = []
        for path in self.paths.wait_records(gpu):
            raw = read_json_object(path) or {}
            try:
                pid, since, renewed = int(raw["pid"]), float(raw["since"]), float(raw["renewed"])
            except (KeyError, TypeError, ValueError):
                continue
            if pid == os.getpid():
                continue
            if now - renewed > WAIT_FRESH_S:  # stopped asking, or died
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            found.append(since)
        return found

    def _owner(self, run: int) -> LeaseOwner:
        return LeaseOwner(
            os.getpid(),
            self._create_time,
            socket.gethostname(),
            str(self.study),
            run,
            self.runs_per_gpu,
            round(time.time(), 3),
        )

    def _holders(self, gpu: str) -> list[PlaceHolder]:
        """The held places of ``gpu``: those whose flock another process has."""
        holders = []
        for place in self.paths.places_of(gpu):
            fd = _open(self.paths.place_lock(gpu, place))
            try:
                free = _try_flock(fd)  # (closing the file drops our test lock)
            finally:
                os.close(fd)
            owner = LeaseOwner.read(self.paths.place_owner(gpu, place))
            if free and not (owner is not None and owner.alive()):
                continue  # no holder, or a dead parent whose child is gone too
            # A holder whose record cannot be read: any doubt counts as the strictest limit.
            holders.append(PlaceHolder(place, owner.runs_per_gpu if owner else 1))
        return holders

    @contextlib.contextmanager
    def _mutex(self) -> Iterator[bool]:
        fd = _open(self.paths.mutex)
        try:
            deadline = time.monotonic() + MUTEX_WAIT_S
            while not _try_flock(fd):
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.005)
            yield True
        finally:
            os.close(fd)


def open_leases(study: Path, runs_per_gpu: int, env: Mapping[str, str]) -> GpuLeases:
    """The study's access to the machine's lease folder, made if missing (only
    its owner may enter the default one); a folder that cannot be used is bad
    input, found before anything of the study is written."""
    paths = LeasePaths.default(env)
    try:
        paths.root.mkdir(mode=0o700 if GPU_LEASES_ENV not in env else 0o777, exist_ok=True)
        os.close(_open(paths.mutex))
    except OSError as exc:
        raise ConfigError(
            f"the GPU lease folder {paths.root} cannot be used ({exc.strerror or exc}); "
            f"set {GPU_LEASES_ENV} to a folder you can write, shared by the xorch "
            "processes that share these GPUs"
        ) from None
    return GpuLeases(paths, study, runs_per_gpu)


def read_leases(
    paths: LeasePaths, alive: Callable[[LeaseOwner], bool] | None = None
) -> list[LeaseView]:
    """The held places of the folder whose holder is proven alive, GPU by GPU."""
    alive = alive or LeaseOwner.alive
    views = []
    for gpu, place in paths.places() if paths.root.is_dir() else []:
        owner = LeaseOwner.read(paths.place_owner(gpu, place))
        if owner is not None and alive(owner):
            views.append(LeaseView(gpu, place, owner))
    return views


def _open(path: Path) -> int:
    # O_CLOEXEC (Python's default, PEP 446): a child never inherits a lease. In a
    # folder users share, another user's lock file may be read-only to us: flock
    # needs no write access, so it is opened for reading then.
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
