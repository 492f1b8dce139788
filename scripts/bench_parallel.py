#!/usr/bin/env python
"""Wall time of a 4-run study with max_parallel 2 against 1, on this machine's CPU.

    python scripts/bench_parallel.py [--runs 4] [--epochs N] [--repeats 1]

Each run is a single-threaded training (OMP_NUM_THREADS=1 for both settings) of
the built-in quick task, sized to take about 10 s with its process start-up.
Prints both walls (median over repeats) and their ratio; the goal on a 2-core
box is 0.6 or lower.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def config(output_dir: Path, runs: int, epochs: int, parallel: int) -> dict:
    return {
        "experiments_runner": {
            "seeds": list(range(runs)),
            "output_base_dir": str(output_dir),
            "gpus": "none",
            "max_parallel": parallel,
        },
        "model": {
            "class_path": "worker.tasks.quick.QuickClassifier",
            "init_args": {"features": 32, "hidden": 256},
        },
        "data": {
            "class_path": "worker.tasks.quick.QuickDataModule",
            "init_args": {"features": 32, "train_size": 4096, "val_size": 512, "batch_size": 64},
        },
        "pl_trainer": {
            "max_epochs": epochs,
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
        },
    }


def wall(workdir: Path, runs: int, epochs: int, parallel: int, tag: str) -> float:
    path = workdir / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(config(workdir / tag, runs, epochs, parallel)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "launch", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"study failed:\n{result.stdout}\n{result.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    serial, parallel = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            serial.append(wall(Path(tmp), args.runs, args.epochs, 1, f"serial{i}"))
            parallel.append(wall(Path(tmp), args.runs, args.epochs, 2, f"parallel{i}"))
    s, p = statistics.median(serial), statistics.median(parallel)
    print(
        f"machine: {os.cpu_count()} cores; {args.runs} runs, single-threaded, "
        f"{args.repeats} repeat(s), medians"
    )
    print(f"max_parallel 1: {s:7.1f} s   ({s / args.runs:.1f} s per run)")
    print(f"max_parallel 2: {p:7.1f} s")
    print(f"ratio (2 / 1):  {p / s:7.2f}   (goal: 0.60 or lower)")


if __name__ == "__main__":
    main()
