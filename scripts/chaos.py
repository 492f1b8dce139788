#!/usr/bin/env python
"""Kill xorch at random moments and prove that resume loses nothing.

    python scripts/chaos.py --kills 50
    python scripts/chaos.py --kills 50 --project user --num-workers 2

A deterministic CPU study is first run once without interruption (the
reference). Then the same study is launched again and again with --resume, and
each launch is SIGKILLed: after a random delay (mostly during training), or by
itself at the k-th replace of runner_state.json or of summary.csv (mid-write).
After every kill: the state file must parse and no child may be left running.
When a chaos study completes, its summary.csv (duration_s aside) must equal the
reference's byte for byte and every run's metrics in runner_state.json must equal
the reference's to the last bit, with every run completed exactly once; then a new
chaos study starts, until the number of kills is reached. Prints a table and a
JSON line; exits 1 if any check failed.

``--project builtin`` trains xorch's own quick task (whose sampler depends on
the seed and epoch only); ``--project user`` trains tests/fixtures/user_project.py,
written as users write theirs: ``DataLoader(shuffle=True)``, dropout, Adam and
StepLR, copied beside the config as a user's module would be.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
USER_PROJECT = ROOT / "tests" / "fixtures" / "user_project.py"
sys.path.insert(0, str(ROOT))

from orchestrator.contract.paths import StudyPaths  # noqa: E402
from orchestrator.state import StudyState  # noqa: E402
from orchestrator.state_store import load_state  # noqa: E402

# Run xorch in this interpreter, SIGKILLing itself at the k-th os.replace onto a
# file with the given name (the last step of an atomic write).
SELF_KILL = """
import os, signal, sys
target, nth = sys.argv[1], int(sys.argv[2])
seen = [0]
def hook(event, args):
    # os.replace is audited under the name "os.rename".
    if event == "os.rename" and str(args[1]).endswith(target):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
from orchestrator.cli import main
sys.argv = ["xorch", *sys.argv[3:]]
main()
"""


def study_config(
    output_dir: Path, runs: int, epochs: int, project: str = "builtin", num_workers: int = 0
) -> dict:
    if project == "user":
        model = {
            "class_path": "user_project.UserClassifier",
            "init_args": {"features": 16, "hidden": 64, "classes": 3},
        }
        data = {
            "class_path": "user_project.UserDataModule",
            "init_args": {
                "features": 16,
                "train_size": 2048,
                "val_size": 256,
                "batch_size": 32,
                "num_workers": num_workers,
            },
        }
    else:
        model = {
            "class_path": "worker.tasks.quick.QuickClassifier",
            "init_args": {"features": 16, "hidden": 64, "classes": 3, "lr": 0.05},
        }
        data = {
            "class_path": "worker.tasks.quick.QuickDataModule",
            "init_args": {"train_size": 2048, "val_size": 256, "batch_size": 32},
        }
    return {
        "mode": "run-experiments",
        "experiments_runner": {
            "seeds": list(range(1, runs + 1)),
            "output_base_dir": str(output_dir),
            "summary_metrics": ["val/loss"],
            "max_retries": 0,
            "grace_period": 2,
        },
        "model": model,
        "data": data,
        "pl_trainer": {
            "max_epochs": epochs,
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
    }


def summary_without_durations(path: Path) -> list[list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    column = rows[0].index("duration_s")
    return [row[:column] + row[column + 1 :] for row in rows]


def recorded_pids(state: StudyState | None) -> list[int]:
    if state is None:
        return []
    return [a.pid for r in state.runs for a in r.attempts if a.pid]


def live(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            pass
    return alive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=12.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--project",
        choices=["builtin", "user"],
        default="builtin",
        help="xorch's quick task, or the user-style project of the tests",
    )
    parser.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers of the user-style project"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="xorch chaos "))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.project == "user":  # the user's module, beside the configs that name it
        shutil.copy(USER_PROJECT, workdir / "user_project.py")

    def config_for(output_dir: Path) -> dict:
        return study_config(output_dir, args.runs, args.epochs, args.project, args.num_workers)

    started = time.monotonic()

    reference_dir = workdir / "reference"
    ref_config = workdir / "reference.yaml"
    ref_config.write_text(yaml.safe_dump(config_for(reference_dir)))
    ref = subprocess.run(
        [sys.executable, "-m", "orchestrator", "launch", str(ref_config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if ref.returncode != 0:
        print(ref.stdout, ref.stderr)
        return 1
    reference = summary_without_durations(reference_dir / "summary.csv")
    reference_state = load_state(StudyPaths(reference_dir))
    assert reference_state is not None
    # summary.csv rounds; the state holds each metric to the last bit.
    reference_metrics = {r.seed: r.metrics for r in reference_state.runs}

    tally = {
        "kills": 0,
        "timer": 0,
        "state_write": 0,
        "summary_write": 0,
        "studies": 0,
        "studies_checked": 0,
        "runs_lost": 0,
        "runs_duplicated": 0,
        "orphans": 0,
        "state_unreadable": 0,
        "summary_mismatch": 0,
        "metrics_mismatch": 0,
        "runs_resumed_from_checkpoint": 0,
    }
    while tally["kills"] < args.kills:
        tally["studies"] += 1
        chaos_dir = workdir / f"chaos-{tally['studies']:03d}"
        config = workdir / f"chaos-{tally['studies']:03d}.yaml"
        config.write_text(yaml.safe_dump(config_for(chaos_dir)))
        first = True
        while True:
            launch_args = ["launch", str(config)] + ([] if first else ["--resume"])
            first = False
            kind = "none"
            if tally["kills"] < 3:  # every kind at least once, even in a short run
                kind = ["state_write", "timer", "summary_write"][tally["kills"]]
            elif tally["kills"] < args.kills:
                kind = rng.choice(["timer", "timer", "timer", "state_write", "summary_write"])
            if kind in ("state_write", "summary_write"):
                target = "runner_state.json" if kind == "state_write" else "summary.csv"
                nth = rng.randint(1, 2 * args.runs)
                command = [sys.executable, "-c", SELF_KILL, target, str(nth), *launch_args]
            else:
                command = [sys.executable, "-m", "orchestrator", *launch_args]
            parent = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            if kind == "timer":
                try:
                    parent.wait(timeout=rng.uniform(0.3, args.max_delay))
                except subprocess.TimeoutExpired:
                    parent.send_signal(signal.SIGKILL)
            _, stderr = parent.communicate()
            code = parent.returncode
            if code == -signal.SIGKILL:
                tally["kills"] += 1
                tally[kind] += 1
                print(f"kill {tally['kills']} ({kind}) in {chaos_dir.name}", flush=True)
                try:
                    state = load_state(StudyPaths(chaos_dir))
                except Exception as exc:  # any failure to read is what we count
                    print(f"state unreadable after kill {tally['kills']}: {exc}")
                    tally["state_unreadable"] += 1
                    state = None
                deadline = time.monotonic() + 10
                while live(recorded_pids(state)) and time.monotonic() < deadline:
                    time.sleep(0.1)
                orphans = live(recorded_pids(state))
                tally["orphans"] += len(orphans)
                for pid in orphans:
                    psutil.Process(pid).kill()
                continue
            if code != 0:
                print(f"launch exited {code}: {stderr.strip()[-500:]}")
                tally["summary_mismatch"] += 1
                break
            final = load_state(StudyPaths(chaos_dir))
            assert final is not None
            completed = [
                sum(
                    a.attempt_class is not None and a.attempt_class.value == "completed"
                    for a in r.attempts
                )
                for r in final.runs
            ]
            tally["runs_lost"] += sum(1 for c in completed if c == 0)
            tally["runs_duplicated"] += sum(1 for c in completed if c > 1)
            tally["runs_resumed_from_checkpoint"] += sum(
                1 for r in final.runs if r.attempts and r.attempts[-1].resumed_from
            )
            if any(dict(r.metrics) != dict(reference_metrics[r.seed]) for r in final.runs):
                tally["metrics_mismatch"] += 1
                print(f"metrics of {chaos_dir.name} differ from the reference's")
            if summary_without_durations(chaos_dir / "summary.csv") != reference:
                tally["summary_mismatch"] += 1
                print(f"summary of {chaos_dir.name} differs from the reference")
            tally["studies_checked"] += 1
            print(f"{chaos_dir.name} completed and checked", flush=True)
            break
        if tally["kills"] < args.kills:
            shutil.rmtree(chaos_dir, ignore_errors=True)

    tally["wall_s"] = round(time.monotonic() - started, 1)
    failed = any(
        tally[k]
        for k in (
            "runs_lost",
            "runs_duplicated",
            "orphans",
            "state_unreadable",
            "summary_mismatch",
            "metrics_mismatch",
        )
    )
    for key, value in tally.items():
        print(f"{key:>18}: {value}")
    print(json.dumps({**tally, "ok": not failed}))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
