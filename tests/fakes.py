"""Fakes shared by the tests: a fake clock (``World``) and its ``FakeWakeup``,
a ``FakeLauncher`` whose ``FakeChild`` ends by a ``Plan``, and ``make_setup``,
a ``Scheduler`` over them. Nothing real happens and no time passes unless the
loop waits for it, so a test of the parent's loop runs in milliseconds::

    setup = make_setup(tmp_path, 3, {(0, 1): Plan(after=2.0, code=1)}, max_retries=1)
    result = setup.run()

For a real child process without torch, see ``tests.fake_worker``."""

from __future__ import annotations

import heapq
import io
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.config import StudySpec, load_study
from orchestrator.console import Reporter
from orchestrator.contract.paths import RunPaths, StudyPaths, run_dir_name
from orchestrator.contract.records import RunResult
from orchestrator.gpus import GpuMemoryGate, Slot
from orchestrator.interrupts import StopFlag
from orchestrator.launchers.base import ChildProcess, Launcher, Wakeup
from orchestrator.scheduler import Scheduler, SchedulerOutcome
from orchestrator.state import AttemptClass, RunRecord, StudyState
from tests import cli_zygote
from tests.helpers import tiny_config

__all__ = [
    "FakeChild",
    "FakeLauncher",
    "FakeWakeup",
    "Plan",
    "Setup",
    "World",
    "fake_study_config",
    "fake_xorch",
    "fake_xorch_popen",
    "finished_fake_study",
    "make_setup",
    "write_csv_logs",
]


class World:
    """A fake clock and the things due to happen on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def next_event(self) -> float | None:
        return self._events[0][0] if self._events else None

    def advance(self, to: float) -> None:
        self.now = max(self.now, to)
        while self._events and self._events[0][0] <= self.now:
            heapq.heappop(self._events)[2]()


class FakeWakeup(Wakeup):
    """Waiting moves the fake clock to the next event or the timeout."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.flag = False
        self.waits = 0

    def set(self) -> None:
        self.flag = True

    def wait(self, timeout: float | None) -> bool:
        self.waits += 1
        assert self.waits < 10_000, "the loop spins"
        if not self.flag:
            upcoming = self.world.next_event()
            target = None if timeout is None else self.world.now + timeout
            if upcoming is not None and (target is None or upcoming <= target):
                self.world.advance(upcoming)
            else:
                assert target is not None, "the loop would sleep forever"
                self.world.advance(target)
        woken, self.flag = self.flag, False
        return woken

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Plan:
    """How one fake attempt goes: it ends ``after`` seconds with ``code``;
    ``ended_as`` is what its launcher knows better; on SIGTERM it exits
    ``term_after`` seconds later with ``term_code`` (None: only SIGKILL ends it)."""

    after: float = 10.0
    code: int = 0
    ended_as: tuple[AttemptClass, str] | None = None
    term_after: float | None = 0.5
    term_code: int = 1  # Lightning turns SIGTERM into an exception: exit 1


class FakeChild(ChildProcess):
    def __init__(self, world: World, run: RunPaths, plan: Plan) -> None:
        self.world, self.run, self.plan = world, run, plan
        self.code: int | None = None
        self.wakeup: Wakeup | None = None
        self.terminated = self.killed = False
        world.at(world.now + plan.after, lambda: self._exit(plan.code, natural=True))

    @property
    def pid(self) -> int | None:
        return None  # never a real process group to signal

    def _exit(self, code: int, natural: bool = False) -> None:
        if self.code is not None:
            return
        if natural and code == 0:
            RunResult({"val/loss": 1.0}).write(self.run.metrics)
        self.code = code
        self._natural = natural
        if self.wakeup is not None:
            self.wakeup.set()

    def poll(self) -> int | None:
        return self.code

    def notify_exit(self, wakeup: Wakeup) -> bool:
        self.wakeup = wakeup
        return True

    def ended_as(self) -> tuple[AttemptClass, str] | None:
        return self.plan.ended_as if self._natural else None

    def request_stop(self) -> None:
        self.terminated = True
        if self.plan.term_after is not None:
            term_code = self.plan.term_code
            self.world.at(self.world.now + self.plan.term_after, lambda: self._exit(term_code))

    def stop(self, grace_period: float) -> int:
        assert grace_period == 0.0, "the loop must not block on a grace period"
        self.killed = True
        self._exit(-signal.SIGKILL)
        return -signal.SIGKILL


class FakeLauncher(Launcher):
    """Starts fake children by plan: ``plans[(run index, attempt number)]``."""

    def __init__(self, world: World, plans: Mapping[tuple[int, int], Plan]) -> None:
        self.world, self.plans = world, plans
        self.started: list[tuple[float, int, str]] = []  # (clock, run index, env's threads)
        self.children: list[FakeChild] = []
        self._attempts: dict[int, int] = {}

    def start(self, run: RunPaths, env: Mapping[str, str]) -> ChildProcess:
        index = int(run.root.name.split("_")[1])
        self._attempts[index] = self._attempts.get(index, 0) + 1
        self.started.append((self.world.now, index, env.get("OMP_NUM_THREADS", "")))
        child = FakeChild(self.world, run, self.plans.get((index, self._attempts[index]), Plan()))
        self.children.append(child)
        return child


@dataclass
class Setup:
    world: World
    launcher: FakeLauncher
    scheduler: Scheduler
    state: StudyState
    output: io.StringIO
    wakeup: FakeWakeup

    def run(self) -> SchedulerOutcome:
        return self.scheduler.run(self.state)

    def starts(self) -> list[int]:
        return [index for _, index, _ in self.launcher.started]


def make_setup(
    tmp_path: Path,
    runs: int,
    plans: Mapping[tuple[int, int], Plan] | None = None,
    slots: list[Slot] | None = None,
    gpu_gate: GpuMemoryGate | None = None,
    **runner: object,
) -> Setup:
    out = tmp_path / "out"
    config = tiny_config(out, seeds=tuple(range(runs)), gpus="none", **runner)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    spec: StudySpec = load_study(path)
    paths = StudyPaths(spec.output_dir)
    paths.root.mkdir(parents=True)
    state = StudyState(
        config_fingerprint=spec.fingerprint,
        training_config=dict(spec.training),
        seeds=tuple(range(runs)),
        runs=tuple(RunRecord(index=i, seed=i, dir=run_dir_name(i, i, runs)) for i in range(runs)),
        summary_metrics=spec.runner.summary_metrics,
    )
    world = World()
    launcher = FakeLauncher(world, plans or {})
    output = io.StringIO()
    wakeup = FakeWakeup(world)
    scheduler = Scheduler(
        spec,
        paths,
        launcher,
        Reporter(stream=output),
        StopFlag(),
        slots=slots or [],
        clock=world.clock,
        wakeup=wakeup,
        gpu_gate=gpu_gate,
    )
    return Setup(world, launcher, scheduler, state, output, wakeup)


def fake_study_config(
    output_dir: Path,
    seeds: tuple[int, ...] | None = (0, 1, 2),
    steps: int = 2,
    acts: Mapping[str, Mapping[str, Mapping[str, object]]] | None = None,
    **runner: object,
) -> dict[str, object]:
    """``tiny_config`` whose model is ``tests.fake_worker.Script``: run it with
    ``LocalLauncher(entry="tests.fake_worker")`` (see tests/fake_worker.py for
    ``acts``: per seed, per attempt, what the child does; ``seeds=None`` for
    ``n_runs`` or adaptive studies)."""
    config = tiny_config(output_dir, seeds=seeds, gpus="none", **runner)
    init_args = {"steps": steps, "acts": {k: dict(v) for k, v in (acts or {}).items()}}
    config["model"] = {"class_path": "tests.fake_worker.Script", "init_args": init_args}
    return config


def fake_xorch(
    *args: str, cwd: Path, timeout: float = 120, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``xorch ARGS`` as a real process whose children are fake workers (forked
    from a warm process: see tests/cli_zygote.py)."""
    env = {**os.environ, "PYTHONPATH": _pythonpath(), **(env or {})}
    return cli_zygote.run("tests.fake_xorch", args, cwd, env, timeout)


def fake_xorch_popen(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """``fake_xorch`` started, not waited for (to signal or kill it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fake_xorch", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": _pythonpath(), **(env or {})},
    )


def _pythonpath() -> str:
    """This checkout first, so parent and children import its ``tests``."""
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH", "")])])


def finished_fake_study(
    folder: Path, seeds: tuple[int, ...] = (42, 101, 28)
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """A finished study of fake workers in ``folder`` (config path, output folder,
    the launch), for tests that only read a study or resume it."""
    workdir = folder / "a study's folder"
    workdir.mkdir()
    out = workdir / "outputs" / "my_study"
    config = fake_study_config(out, seeds=seeds, summary_metrics=["val/loss", "val/acc"])
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = fake_xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    return path, out, result


def write_csv_logs(out: Path) -> None:
    """Each run's lightning_logs/version_0/metrics.csv, as Lightning's CSVLogger
    writes it (the fake worker writes none): 3 epochs ending at the run's values."""
    import json

    for record in json.loads((out / "runner_state.json").read_text())["runs"]:
        loss, acc = record["metrics"]["val/loss"], record["metrics"]["val/acc"]
        log = out / record["dir"] / "lightning_logs" / "version_0" / "metrics.csv"
        log.parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{e},{e},{loss + 0.3 * (2 - e)},{acc - 0.1 * (2 - e)}" for e in range(3)]
        log.write_text("epoch,step,val/loss,val/acc\n" + "\n".join(rows) + "\n")
