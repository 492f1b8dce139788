"""What a command run costs over the program itself.

    python scripts/bench_command.py [--runs 200 2000] [--repeat 3]

For each N: N runs of a trivial script (it writes metrics.json) as a plain
loop of the same interpreter, then as one ``xorch launch`` of N seeds; prints
the median wall time of each over --repeat tries and their ratio (the issue's
target: at most 1.3x). Not a test: nothing asserts wall time.
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

SCRIPT = """import json, os
with open(os.path.join(os.environ.get("XORCH_RUN_DIR", "."), "metrics.json"), "w") as f:
    json.dump({"score": 1.0}, f)
"""


def plain_loop(folder: Path, runs: int) -> float:
    start = time.perf_counter()
    for index in range(runs):
        run_dir = folder / "plain" / str(index)
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "XORCH_RUN_DIR": str(run_dir)}
        subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, check=True)
    return time.perf_counter() - start


def through_xorch(folder: Path, runs: int, attempt: int) -> float:
    out = folder / f"out{attempt}"
    config = {
        "experiments_runner": {
            "output_base_dir": str(out),
            "seeds": list(range(1, runs + 1)),
            "summary_metrics": ["score"],
        },
        "command": ["python", "train.py"],
    }
    path = folder / f"study{attempt}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "orchestrator", "launch", str(path)],
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'runs':>6} {'plain s':>9} {'xorch s':>9} {'ratio':>6} {'ms/run over':>12}")
    for runs in args.runs:
        plain, xorch = [], []
        for attempt in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                (folder / "train.py").write_text(SCRIPT, encoding="utf-8")
                plain.append(plain_loop(folder, runs))
                xorch.append(through_xorch(folder, runs, attempt))
        p, x = statistics.median(plain), statistics.median(xorch)
        print(f"{runs:>6} {p:>9.2f} {x:>9.2f} {x / p:>6.2f} {1000 * (x - p) / runs:>12.1f}")


if __name__ == "__main__":
    main()
