"""A stdlib-only stand-in for ``worker.train_one``: a real child process that
starts in milliseconds, for tests of the parent's behaviour.

Run it as the launchers run the real worker, ``python -m tests.fake_worker
RUN_SPEC_JSON`` (``LocalLauncher(entry="tests.fake_worker")``). It writes the
same files as the real worker (heartbeat.json, metrics.json, error.json, via the
contract's records and atomic writer) and follows the parent's death the same
way. What it does comes from the training config's model::

    model:
      class_path: tests.fake_worker.Script
      init_args:
        steps: 5            # tenths of a second of "training", one heartbeat each
        acts:               # per seed, then per attempt ("*" for any)
          "0": {"1": {do: raise, message: boom}}
          "*": {"*": {do: complete}}

An act is ``{do: ..., at_step: k}`` with ``do`` one of ``complete``, ``raise``
(error.json, exit 1), ``cuda_oom``, ``slow`` (beats, never ends), ``segfault``,
``hang`` (no more beats, sleep), ``sigkill`` (itself), ``exit`` (``code``),
``ignore_sigterm`` (then hang), ``grandchild`` (leave a
sleeping child, then complete; ``grandchild_hang``: then hang),
``allocate`` (``mb`` of memory, then hang),
``memory_error`` (raise MemoryError), ``config_error`` (a build error, as
``worker.build.BuildError`` reports one: error.json, exit 2) or ``deep_json``
(write ``depth`` nested ``[`` (default 200,000) into the run's ``file``:
``metrics``, ``heartbeat``, ``error`` or ``rank_exit``; then exit ``code``,
default 0, after ``hold_s`` seconds). Progress is saved per step in
``fake_progress.json`` (the "checkpoint"); a later attempt resumes from it and
says so in ``resumed_from``; an act that hangs first writes ``fake_waiting``.
Metrics: ``val/loss = seed + 0.5`` (plus ``init_args.offset``, plus
``init_args.spread`` times a fixed fraction per seed, plus ``init_args.fold_gain``
times the fold at ``data.init_args.fold``; ``init_args.losses``, a mapping
``"FOLD/SEED"`` -> value, replaces it for the pairs it names),
``val/acc = seed / 100`` (plus ``init_args.acc_offset``),
``steps_done`` (steps trained by this attempt). It reports ``steps`` as its
``epochs_trained`` and its progress file as its ``best_checkpoint_path``.
With ``init_args.probe``, ``probe.json`` says what the child saw; with
``init_args.probe_log: FILE``, each attempt appends a start and an end line
(run folder, seed, pid, CUDA_VISIBLE_DEVICES, time) to FILE, which several
studies may share (tests/test_gpu_leases.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.contract.atomic import atomic_write_json
from orchestrator.contract.child import BUILD_ERROR_TYPE, ChildExit
from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import (
    PARENT_PID_ENV,
    ErrorReport,
    Heartbeat,
    HeartbeatPhase,
    RunResult,
    RunSpec,
)

__all__ = ["PROGRESS_FILE", "WAITING_FILE", "Script", "act_for", "main"]

PROGRESS_FILE = "fake_progress.json"
WAITING_FILE = "fake_waiting"  # written when the act starts to hang
STEP_S = 0.1


class _CudaOom(RuntimeError):
    """Named as torch's error is, so error.json reads as the real one's."""


_CudaOom.__name__ = _CudaOom.__qualname__ = "OutOfMemoryError"


class Script:
    """The name a fake study's ``model.class_path`` gives; never instantiated."""


def act_for(config: dict[str, Any], seed: int, attempt: int) -> dict[str, Any]:
    """The act for this seed and attempt (``complete`` when none is given)."""
    model = config.get("model") or {}
    acts = (model.get("init_args") or {}).get("acts") or {}
    per_seed = acts.get(str(seed), acts.get("*", {}))
    return dict(per_seed.get(str(attempt), per_seed.get("*", {"do": "complete"})))


def _follow_parent() -> None:
    expected = int(os.environ.get(PARENT_PID_ENV, "0") or 0)
    if not expected:
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != expected:
        os._exit(1)


def _beat(paths: RunPaths, step: int, resumed: str | None) -> None:
    phase = HeartbeatPhase.TRAIN if step else HeartbeatPhase.SETUP
    Heartbeat(
        pid=os.getpid(), time=time.time(), phase=phase, global_step=step, resumed_from=resumed
    ).write_if_possible(paths.heartbeat)


def _misbehave(act: dict[str, Any]) -> None:
    """The act's failure, at its step; returns only for acts that go on."""
    do = act.get("do", "complete")
    if do == "raise":
        raise RuntimeError(str(act.get("message", "fake failure")))
    if do == "memory_error":
        raise MemoryError("fake host allocation failed")
    if do == "config_error":
        raise _BuildError(str(act.get("message", "model.init_args.fake: a fake config error")))
    if do == "cuda_oom":
        raise _CudaOom("CUDA out of memory. Tried to allocate 20.00 GiB (fake)")
    if do in ("sigkill", "segfault"):
        os.kill(os.getpid(), signal.SIGKILL if do == "sigkill" else signal.SIGSEGV)
    if do == "deep_json":
        _write_deep_json(act)
    if do == "exit":
        sys.stdout.flush()
        os._exit(int(act.get("code", 3)))
    if do in ("grandchild", "grandchild_hang"):
        cmd = [sys.executable, "-c", "import time; time.sleep(120)"]
        proc = subprocess.Popen(cmd)
        print(f"grandchild pid {proc.pid}", flush=True)
        if do == "grandchild":
            return
        time.sleep(3600)
    if do == "ignore_sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if do in ("hang", "ignore_sigterm", "allocate"):  # for a test to wait for
        (Path(str(act["_heartbeat"])).parent / WAITING_FILE).touch()
    if do == "allocate":
        _hold = bytearray(int(act.get("mb", 100)) * 2**20)
        _hold[::4096] = b"x" * len(_hold[::4096])
        time.sleep(3600)
    if do == "slow":  # beats forever, never ends
        while True:
            time.sleep(STEP_S)
            Heartbeat(pid=os.getpid(), time=time.time(), phase=HeartbeatPhase.TRAIN).write(
                Path(str(act["_heartbeat"]))
            )
    if do in ("hang", "ignore_sigterm"):
        print("fake worker: hanging", flush=True)
        time.sleep(3600)


def _write_deep_json(act: dict[str, Any]) -> None:
    """A record no parser can nest into, in place of the act's ``file``; then exit."""
    paths = RunPaths(Path(str(act["_heartbeat"])).parent)
    target = getattr(paths, str(act.get("file", "metrics")))
    target.write_text("[" * int(act.get("depth", 200_000)))
    time.sleep(float(act.get("hold_s", 0)))
    sys.stdout.flush()
    os._exit(int(act.get("code", 0)))


def train(spec: RunSpec) -> RunResult:
    paths = RunPaths(Path(spec.run_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    init = (spec.config.get("model") or {}).get("init_args") or {}
    steps = int(init.get("steps", 3))
    act = act_for(spec.config, spec.seed, spec.attempt)
    progress = paths.root / PROGRESS_FILE
    start, resumed = 0, None
    if spec.resume_from_checkpoint and progress.exists():
        start = int(json.loads(progress.read_text())["step"])
        resumed = str(progress)
    _beat(paths, start, resumed)
    _probe(paths, init, spec.seed, started=time.time())
    act["_heartbeat"] = str(paths.heartbeat)
    at_step = int(act.get("at_step", 0))
    for step in range(start, steps):
        if step == at_step:
            _misbehave(act)
        time.sleep(STEP_S)
        atomic_write_json(progress, {"step": step + 1})
        _beat(paths, step + 1, resumed)
    if at_step >= steps:
        _misbehave(act)
    # ``offset`` (a variant's difference) and ``spread`` (seed-to-seed noise that
    # is not the seed itself) let a variant study see paired differences.
    offset = float(init.get("offset", 0.0))
    spread = float(init.get("spread", 0.0)) * ((spec.seed * 7919) % 13) / 13
    fold = ((spec.config.get("data") or {}).get("init_args") or {}).get("fold")
    loss = spec.seed + 0.5 + offset + spread + float(init.get("fold_gain", 0.0)) * (fold or 0)
    loss = float((init.get("losses") or {}).get(f"{fold}/{spec.seed}", loss))
    acc = spec.seed / 100 + float(init.get("acc_offset", 0.0))  # a variant's second metric
    metrics = {"val/loss": loss, "val/acc": acc, "steps_done": steps - start}
    # An act's ``metrics`` ({"val/loss": "inf"}) replace these: a diverged seed.
    metrics.update({k: float(v) for k, v in (act.get("metrics") or {}).items()})
    _probe(paths, init, spec.seed, ended=time.time())
    return RunResult(
        metrics=metrics,
        resumed_from=resumed,
        epochs_trained=steps,
        best_checkpoint_path=str(progress),
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.fake_worker RUN_SPEC_JSON", file=sys.stderr)
        return 2
    spec = RunSpec.load(Path(argv[0]))
    _follow_parent()
    paths = RunPaths(Path(spec.run_dir))
    for stale in (paths.error, paths.rank_exit):
        stale.unlink(missing_ok=True)
    try:
        result = train(spec)
    except Exception as exc:
        ErrorReport(
            type=f"{type(exc).__module__}.{type(exc).__qualname__}",
            message=str(exc),
            cuda_oom=isinstance(exc, _CudaOom),
            host_oom=isinstance(exc, MemoryError),
        ).write(paths.error)
        print(f"Traceback: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ChildExit.CONFIG_ERROR if isinstance(exc, _BuildError) else 1
    result.write(paths.metrics)
    return 0


def _probe(paths: RunPaths, init: dict[str, Any], seed: int, **times: float) -> None:
    """With ``init_args.probe``, what this child saw, in ``probe.json`` (as
    tests/fixtures/faulty.py's probe): its seed, pid, CUDA_VISIBLE_DEVICES and
    OMP_NUM_THREADS, and when it started and ended; with ``init_args.probe_log``,
    a line per event appended there (one short O_APPEND write: never interleaved)."""
    if init.get("probe_log"):
        for event, at in times.items():
            line = {"run_dir": str(paths.root), "seed": seed, "pid": os.getpid(), "event": event}
            line.update(gpu=os.environ.get("CUDA_VISIBLE_DEVICES"), time=at)
            with open(str(init["probe_log"]), "a", encoding="utf-8") as log:
                log.write(json.dumps(line) + "\n")
    if not init.get("probe"):
        return
    path = paths.root / "probe.json"
    seen = json.loads(path.read_text()) if path.exists() else {}
    seen.update(
        times,
        seed=seed,
        pid=os.getpid(),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )
    atomic_write_json(path, seen)


class _BuildError(Exception):
    """Named as worker.build's is, so error.json reads as a real config error."""


_BuildError.__module__, _BuildError.__qualname__ = BUILD_ERROR_TYPE.rsplit(".", 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
