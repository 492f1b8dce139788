#!/usr/bin/env python
"""Start-up and bookkeeping figures of xorch, printed as a table.

    python scripts/bench.py [--runs 20] [--skip-studies]

- launch overhead: from the parent starting an attempt to the run's first
  training batch (the heartbeat's first_batch_time), per run, spawn against
  forkserver, on the same trivial run (medians; the fork server's first run,
  which pays for starting the server, is shown apart);
- the wall time of a 20-run study of a trivial model under each launcher;
- bookkeeping per run (state write at start and end, summary rewrite) at 100
  and 10,000 runs (medians of 10);
- the parent's peak resident memory during the spawn study (psutil, every 50 ms);
- ``xorch status`` on a 10,000-run study folder, as a user runs it (median of 3).
Goals: forkserver overhead <= 0.3 s and <= 1/10 of spawn's; bookkeeping < 20 ms
at 100 runs and < 100 ms at 10,000; parent RSS < 100 MB; status < 1 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.contract.paths import StudyPaths  # noqa: E402
from orchestrator.contract.records import Heartbeat  # noqa: E402
from orchestrator.state import Attempt, AttemptClass, RunRecord, StudyState  # noqa: E402
from orchestrator.state_store import load_state, save_state  # noqa: E402
from orchestrator.summary import write_summary  # noqa: E402


def trivial_study(output_dir: Path, runs: int, launcher: str) -> dict:
    return {
        "experiments_runner": {
            "seeds": list(range(runs)),
            "output_base_dir": str(output_dir),
            "launcher": launcher,
            "gpus": "none",
        },
        "model": {
            "class_path": "worker.tasks.quick.QuickClassifier",
            "init_args": {"features": 8, "hidden": 8},
        },
        "data": {
            "class_path": "worker.tasks.quick.QuickDataModule",
            "init_args": {"features": 8, "train_size": 64, "val_size": 32},
        },
        "pl_trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "devices": 1,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
    }


def run_study(workdir: Path, runs: int, launcher: str) -> tuple[float, list[float], int]:
    """Wall time, per-run overheads, and the parent's peak RSS."""
    out = workdir / launcher
    config = workdir / f"{launcher}.yaml"
    config.write_text(yaml.safe_dump(trivial_study(out, runs, launcher)))
    start = time.perf_counter()
    parent = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "launch", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = [0]

    def sample() -> None:
        try:
            process = psutil.Process(parent.pid)
            while parent.poll() is None:
                peak[0] = max(peak[0], process.memory_info().rss)
                time.sleep(0.05)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = parent.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if parent.returncode != 0:
        raise SystemExit(f"{launcher} study failed: {err.decode()[-2000:]}")
    state = load_state(StudyPaths(out))
    assert state is not None
    overheads = []
    for record in state.runs:
        beat = Heartbeat.read(StudyPaths(out).run(record.dir).heartbeat)
        attempt = record.attempts[-1]
        if beat is None or beat.first_batch_time is None:
            continue
        started = datetime.fromisoformat(attempt.started_at).timestamp()
        overheads.append(beat.first_batch_time - started)
    return wall, overheads, peak[0]


def bookkeeping_ms(runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        paths = StudyPaths(Path(tmp))
        state = _big_state(runs, completed=runs - 20)
        save_state(paths, state)
        write_summary(paths, state)
        times = []
        for index in range(runs - 20, runs - 10):
            begin = time.perf_counter()
            attempt = Attempt(number=1, started_at="t", log="x", pid=1)
            state = state.start_attempt(index, attempt)
            save_state(paths, state)
            done = dataclasses.replace(
                attempt, attempt_class=AttemptClass.COMPLETED, duration_s=1.0
            )
            state = state.finish_attempt(index, done, {"val/loss": 0.5, "val/acc": 0.7})
            save_state(paths, state)
            write_summary(paths, state)
            times.append(time.perf_counter() - begin)
        return 1000 * statistics.median(times)


def _big_state(runs: int, completed: int) -> StudyState:
    state = StudyState(
        config_fingerprint="0" * 64,
        training_config={"model": {"class_path": "worker.tasks.quick.QuickClassifier"}},
        seeds=tuple(range(runs)),
        runs=tuple(RunRecord(index=i, seed=i, dir=f"run_{i:04d}_seed{i}") for i in range(runs)),
    )
    for index in range(completed):
        attempt = Attempt(number=1, started_at="2026-01-01T00:00:00+00:00", log="x", pid=1)
        state = state.start_attempt(index, attempt)
        done = dataclasses.replace(attempt, attempt_class=AttemptClass.COMPLETED, duration_s=1.0)
        state = state.finish_attempt(
            index, done, {"val/loss": 0.5, "val/acc": 0.7, "train/loss": 0.4}
        )
    return state


def status_seconds(runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        paths = StudyPaths(Path(tmp))
        save_state(paths, _big_state(runs, completed=runs))
        times = []
        for _ in range(3):
            begin = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "orchestrator", "status", tmp],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            times.append(time.perf_counter() - begin)
        return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--skip-studies", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    if not args.skip_studies:
        with tempfile.TemporaryDirectory() as tmp:
            spawn_wall, spawn_over, spawn_rss = run_study(Path(tmp), args.runs, "spawn")
            fork_wall, fork_over, fork_rss = run_study(Path(tmp), args.runs, "forkserver")
        s, f = statistics.median(spawn_over), statistics.median(fork_over[1:])
        rows += [
            ("launch overhead, spawn (median)", f"{s:.3f} s", ""),
            ("launch overhead, forkserver (median)", f"{f:.3f} s", f"{f / s:.3f} of spawn"),
            ("forkserver first run (starts the server)", f"{fork_over[0]:.3f} s", ""),
            (f"{args.runs}-run study wall, spawn", f"{spawn_wall:.1f} s", ""),
            (
                f"{args.runs}-run study wall, forkserver",
                f"{fork_wall:.1f} s",
                f"{fork_wall / spawn_wall:.3f} of spawn",
            ),
            ("parent peak RSS (spawn study)", f"{spawn_rss / 2**20:.0f} MB", "goal < 100 MB"),
            ("parent peak RSS (forkserver study)", f"{fork_rss / 2**20:.0f} MB", ""),
        ]
    rows += [
        ("bookkeeping per run, 100 runs", f"{bookkeeping_ms(100):.1f} ms", "goal < 20 ms"),
        ("bookkeeping per run, 10,000 runs", f"{bookkeeping_ms(10_000):.1f} ms", "goal < 100 ms"),
        ("xorch status, 10,000-run folder", f"{status_seconds(10_000):.2f} s", "goal < 1 s"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'value':>10}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")


if __name__ == "__main__":
    main()
