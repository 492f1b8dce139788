#!/usr/bin/env python
"""xorch against its peers on one tiny Lightning task over N seeds, side by side.

    python scripts/bench_peers.py [--seeds 12] [--repeats 2] [--json out.json]
    python scripts/bench_peers.py --parent-usage 60   # the parent's CPU and memory

Methods, run one after another in alternating order (forwards, then backwards,
...) so that a machine growing busier or quieter favours none of them:

- ``plain loop``: ``for s in ...; do python train.py --seed $s; done`` in bash;
- ``submitit local``: submitit's LocalExecutor, one job at a time;
- ``hydra multirun``: Hydra's basic launcher, ``--multirun seed=0,1,...``: every
  run in one process, one after another;
- ``xorch spawn``: ``launcher: spawn``, a fresh Python per run;
- ``xorch default``: no launcher key (the fork server on Linux).

Every method trains the same model on the same data with the same seeds. The
table shows the median over repeats of the total wall time, per run, the ratio
to the plain loop, the leak counter (how many models the user's module had
built when the last run started: 1 means each run was a fresh process), the
median gap from one run's end of training to the next run's start of training
(fit_start/fit_end times written by the model itself), for xorch also the gap
in runner_state.json (ended_at to the next started_at), and whether every seed
gave the plain loop's val/loss. hydra-core and submitit are in the ``bench``
extra: ``pip install -e '.[bench]'``.

``--parent-usage S`` runs one xorch study that trains for about S seconds and
reports the parent's CPU seconds and its peak resident memory (psutil, every
0.2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
METHODS = ("plain loop", "submitit local", "hydra multirun", "xorch spawn", "xorch default")

MODEL = {"features": 8, "hidden": 8}
DATA = {"features": 8, "train_size": 64, "val_size": 32}
TRAINER = {
    "max_epochs": 1,
    "accelerator": "cpu",
    "devices": 1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}

# The user's module: a module-level counter shows whether runs share a process.
TASK_MODULE = f'''
"""The benchmark's task, as a user would write it."""
import json, os, time
import pytorch_lightning as pl
from worker.tasks.quick import QuickClassifier, QuickDataModule

BUILT = 0  # models built in this process: 1 in a fresh process per run

class CountingClassifier(QuickClassifier):
    def __init__(self, **kwargs):
        global BUILT
        BUILT += 1
        super().__init__(**kwargs)
        self.built = BUILT

    def _note(self, event):
        path = os.environ.get("BENCH_EVENTS")
        if path:
            with open(path, "a") as out:
                out.write(json.dumps({{"event": event, "time": time.time(),
                                      "built": self.built}}) + "\\n")

    def on_fit_start(self):
        self._note("fit_start")

    def on_fit_end(self):
        self._note("fit_end")

def train(seed):
    pl.seed_everything(seed, workers=True, verbose=False)
    model = CountingClassifier(**{MODEL!r})
    data = QuickDataModule(**{DATA!r})
    trainer = pl.Trainer(**{TRAINER!r})
    trainer.fit(model, data)
    return {{"seed": seed, "val/loss": float(trainer.callback_metrics["val/loss"])}}

def save(result, folder):
    with open(os.path.join(folder, f"seed{{result['seed']}}.json"), "w") as out:
        json.dump(result, out)
'''

PLAIN_SCRIPT = """
import argparse, benchtask
parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int)
parser.add_argument("--out")
args = parser.parse_args()
benchtask.save(benchtask.train(args.seed), args.out)
"""

HYDRA_SCRIPT = """
import hydra, benchtask

@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg):
    benchtask.save(benchtask.train(int(cfg.seed)), cfg.out)

if __name__ == "__main__":
    main()
"""

SUBMITIT_SCRIPT = """
import sys, submitit, benchtask
folder, out, seeds = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
executor = submitit.LocalExecutor(folder=folder)
executor.update_parameters(timeout_min=30)
for seed in seeds:  # one job at a time, as a loop over seeds would
    benchtask.save(executor.submit(benchtask.train, seed).result(), out)
"""


def prepare(workdir: Path) -> None:
    (workdir / "benchtask.py").write_text(TASK_MODULE)
    (workdir / "train.py").write_text(PLAIN_SCRIPT)
    (workdir / "hydra_app.py").write_text(HYDRA_SCRIPT)
    (workdir / "submitit_loop.py").write_text(SUBMITIT_SCRIPT)


def xorch_config(workdir: Path, out: Path, seeds: list[int], launcher: str | None) -> Path:
    runner: dict = {"seeds": seeds, "output_base_dir": str(out), "gpus": "none"}
    if launcher is not None:
        runner["launcher"] = launcher
    config = {
        "mode": "run-experiments",
        "experiments_runner": runner,
        "model": {"class_path": "benchtask.CountingClassifier", "init_args": MODEL},
        "data": {"class_path": "worker.tasks.quick.QuickDataModule", "init_args": DATA},
        "pl_trainer": TRAINER,
    }
    path = workdir / f"xorch_{launcher or 'default'}_{out.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def command_for(method: str, workdir: Path, out: Path, seeds: list[int]) -> list[str]:
    listed = ",".join(map(str, seeds))
    if method == "plain loop":
        loop = (
            f"for s in {' '.join(map(str, seeds))}; do "
            f"{shlex.quote(PYTHON)} train.py --seed $s --out {shlex.quote(str(out))}; done"
        )
        return ["bash", "-c", loop]
    if method == "submitit local":
        return [PYTHON, "submitit_loop.py", str(out / "jobs"), str(out), listed]
    if method == "hydra multirun":
        return [
            PYTHON,
            "hydra_app.py",
            "--multirun",
            f"+seed={listed}",
            f"+out={out}",
            f"hydra.sweep.dir={out / 'sweep'}",
            "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled",
        ]
    launcher = "spawn" if method == "xorch spawn" else None
    config = xorch_config(workdir, out / "study", seeds, launcher)
    return [PYTHON, "-m", "orchestrator", "launch", str(config)]


def median_gap(starts: list[float], ends: list[float]) -> float | None:
    gaps = [b - a for a, b in zip(ends, starts[1:], strict=False)]
    return statistics.median(gaps) if gaps else None


def run_method(method: str, workdir: Path, seeds: list[int], repeat: int) -> dict:
    out = workdir / f"{method.replace(' ', '_')}_{repeat}"
    out.mkdir()
    events = out / "events.jsonl"
    env = {
        **os.environ,
        "BENCH_EVENTS": str(events),
        "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)]),
    }
    started = time.perf_counter()
    done = subprocess.run(
        command_for(method, workdir, out, seeds),
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{method} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    marks = [json.loads(line) for line in events.read_text().splitlines()]
    starts = [m["time"] for m in marks if m["event"] == "fit_start"]
    ends = [m["time"] for m in marks if m["event"] == "fit_end"]
    row: dict = {
        "method": method,
        "repeat": repeat,
        "wall_s": wall,
        "leak_counter": max(m["built"] for m in marks),
        "fit_gap_s": median_gap(starts, ends),
    }
    if method.startswith("xorch"):
        state = json.loads((out / "study" / "runner_state.json").read_text())
        attempts = [r["attempts"][-1] for r in state["runs"]]
        at = [datetime.fromisoformat(a["started_at"]).timestamp() for a in attempts]
        to = [datetime.fromisoformat(a["ended_at"]).timestamp() for a in attempts]
        row["state_gap_s"] = median_gap(at, to)
        row["val_loss"] = {str(r["seed"]): r["metrics"]["val/loss"] for r in state["runs"]}
    else:
        row["val_loss"] = {
            str(s): json.loads((out / f"seed{s}.json").read_text())["val/loss"] for s in seeds
        }
    return row


def summarise(rows: list[dict], seeds: list[int]) -> list[dict]:
    table = []
    plain = [r for r in rows if r["method"] == "plain loop"]
    plain_wall = statistics.median(r["wall_s"] for r in plain)
    reference = plain[0]["val_loss"]
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        wall = statistics.median(r["wall_s"] for r in mine)

        def med(key: str, runs: list[dict] = mine) -> float | None:
            values = [r[key] for r in runs if r.get(key) is not None]
            return statistics.median(values) if values else None

        same = all(
            abs(r["val_loss"][str(s)] - reference[str(s)]) < 1e-6 for r in mine for s in seeds
        )
        table.append(
            {
                "method": method,
                "wall_s": wall,
                "per_run_s": wall / len(seeds),
                "ratio_to_plain": wall / plain_wall,
                "leak_counter": max(r["leak_counter"] for r in mine),
                "fit_gap_s": med("fit_gap_s"),
                "state_gap_s": med("state_gap_s"),
                "same_val_loss": same,
                "walls_s": [r["wall_s"] for r in mine],
            }
        )
    return table


def print_table(table: list[dict], seeds: int, repeats: int) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    print(f"\n{seeds} seeds, median of {repeats} repeat(s), alternating order\n")
    header = (
        "method",
        "total wall",
        "per run",
        "x plain loop",
        "leak counter",
        "gap (fit end->next fit start)",
        "gap (state)",
        "same val/loss",
    )
    lines = [header] + [
        (
            t["method"],
            f"{t['wall_s']:.1f} s",
            f"{t['per_run_s']:.2f} s",
            f"{t['ratio_to_plain']:.2f}x",
            str(t["leak_counter"]),
            ms(t["fit_gap_s"]),
            ms(t["state_gap_s"]),
            "yes" if t["same_val_loss"] else "NO",
        )
        for t in table
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def parent_usage(workdir: Path, seconds: float) -> dict:
    """One xorch study (default launcher) training for about ``seconds``: the
    parent's CPU seconds and peak RSS, sampled from outside."""
    out = workdir / "usage"
    config = xorch_config(workdir, out, [0], None)
    data = yaml.safe_load(config.read_text())
    # Three runs, each training for a third of the time (Lightning's max_time).
    data["pl_trainer"]["max_epochs"] = -1
    data["pl_trainer"]["max_time"] = {"seconds": seconds / 3}
    data["experiments_runner"]["seeds"] = [0, 1, 2]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)])}
    started = time.perf_counter()
    parent = subprocess.Popen(
        [PYTHON, "-m", "orchestrator", "launch", str(config)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    process = psutil.Process(parent.pid)
    cpu, peak_rss = 0.0, 0
    while parent.poll() is None:
        try:
            times = process.cpu_times()
            cpu = times.user + times.system
            peak_rss = max(peak_rss, process.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "parent_cpu_s": cpu, "parent_peak_rss_mb": peak_rss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated subset (plain loop is always included)",
    )
    parser.add_argument("--parent-usage", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xorch bench peers ") as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        if args.parent_usage is not None:
            usage = parent_usage(workdir, args.parent_usage)
            print(json.dumps(usage, indent=2))
            if args.json:
                args.json.write_text(json.dumps(usage, indent=2))
            return
        chosen = [m for m in METHODS if m in args.methods.split(",") or m == "plain loop"]
        seeds = list(range(args.seeds))
        rows = []
        for repeat in range(args.repeats):
            order = chosen if repeat % 2 == 0 else list(reversed(chosen))
            for method in order:
                row = run_method(method, workdir, seeds, repeat)
                print(f"repeat {repeat + 1}: {method}: {row['wall_s']:.1f} s", flush=True)
                rows.append(row)
        table = summarise(rows, seeds)
        print_table(table, args.seeds, args.repeats)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "seeds": args.seeds,
                        "repeats": args.repeats,
                        "cpu_count": os.cpu_count(),
                        "table": table,
                        "runs": rows,
                    },
                    indent=2,
                )
            )


if __name__ == "__main__":
    main()
