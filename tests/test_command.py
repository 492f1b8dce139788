"""Command runs: a study that names a program (``command:``) instead of a model.

The programs here are plain Python scripts without torch (quick to start on a
loaded box), except one Lightning script that knows nothing of xorch."""

from __future__ import annotations

import json
import signal
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import (
    faults_kill_and_resume,
    read_state,
    snapshot,
    wait_for,
    wait_gone,
    xorch,
    xorch_popen,
)

# Reports each epoch through worker.report; writes last.ckpt where xorch says,
# and takes it back from {resume_from}.
REPORTING_SCRIPT = """
import argparse, json, os, random, sys, time
from worker.report import report

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--resume", default="")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()
with open(os.path.join(args.out, "seen.json"), "w") as handle:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "resume": args.resume,
               "env": {k: v for k, v in os.environ.items() if k.startswith(("XORCH_", "WANDB_"))}},
              handle)
start = int(open(args.resume).read()) + 1 if args.resume else 0
rng = random.Random(args.seed)
for epoch in range(start, args.epochs):
    time.sleep(args.sleep)
    loss = 1.0 / (epoch + 1) + rng.random() * 0.1
    report(epoch=epoch, step=epoch, **{"train/loss": loss, "val/loss": loss * 1.5})
    with open(os.path.join(args.out, "last.ckpt"), "w") as handle:
        handle.write(str(epoch))
print("done", args.seed)
"""

COMMAND = [
    "python",
    "train.py",
    "--seed",
    "{seed}",
    "--out",
    "{run_dir}",
    "--resume",
    "{resume_from}",
]


def command_config(
    folder: Path, script: str, command: list[str] | None = None, name: str = "train.py", **runner
) -> Path:
    (folder / name).write_text(textwrap.dedent(script), encoding="utf-8")
    block = {
        "output_base_dir": str(folder / "out"),
        "seeds": [1, 2, 3],
        "summary_metrics": ["val/loss"],
        **runner,
    }
    config = {"mode": "run-experiments", "experiments_runner": block, "command": command or COMMAND}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def outcomes(out: Path, index: int) -> list[str]:
    return [a["outcome"] for a in read_state(out)["runs"][index]["attempts"]]


def test_three_seeds_of_a_reporting_script_complete_with_summary_and_plots(workdir):
    path = command_config(workdir, REPORTING_SCRIPT)
    # Launched from a process with a live W&B service (a notebook's wandb.init):
    # the runs must not join it (each run's W&B starts its own service).
    wandb_service = {"WANDB_SERVICE": "unix-4242-/tmp/wandb-service.sock"}
    result = xorch("launch", str(path), cwd=workdir, env=wandb_service)
    assert result.returncode == 0, result.stdout + result.stderr
    out = workdir / "out"
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * 3
    summary = pd.read_csv(out / "summary.csv", dtype={"run": str})
    assert list(summary["run"]) == ["0", "1", "2", "mean", "std"]
    # The metrics are the last reported values (epoch 2: 1/3 + noise).
    assert all(1 / 3 * 1.5 <= v <= (1 / 3 + 0.1) * 1.5 for v in summary["val/loss"][:3])
    seen = json.loads((out / "run_01_seed2" / "seen.json").read_text())
    assert seen["argv"][:4] == ["--seed", "2", "--out", str(out / "run_01_seed2")]
    assert seen["cwd"] == str(workdir)  # the config's folder
    assert seen["resume"] == ""  # a first attempt has nothing to resume from
    assert seen["env"]["XORCH_SEED"] == "2" and seen["env"]["XORCH_RUN_INDEX"] == "1"
    assert seen["env"]["XORCH_ATTEMPT"] == "1"
    assert "WANDB_SERVICE" not in seen["env"]
    plotted = xorch("plot", str(out), cwd=workdir)
    assert plotted.returncode == 0, plotted.stdout + plotted.stderr
    assert (out / "plots" / "curves.png").stat().st_size > 0


def test_parent_sigkill_then_resume_finishes_from_the_programs_checkpoint(workdir):
    command = [*COMMAND, "--epochs", "40", "--sleep", "0.25"]
    path = command_config(workdir, REPORTING_SCRIPT, command, seeds=[5])
    out = workdir / "out"
    run = out / "run_00_seed5"
    parent = xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(lambda: (run / "last.ckpt").exists(), what="the program's first checkpoint")
        child_pid = read_state(out)["runs"][0]["attempts"][-1]["pid"]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    # The program itself (exec'd over the wrapper) follows its parent.
    wait_gone(child_pid, what="the orphaned program to stop")
    result = xorch("launch", str(path), "--resume", cwd=workdir, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outcomes(out, 0) == ["interrupted", "completed"]
    assert read_state(out)["runs"][0]["attempts"][-1]["resumed_from"] == "run_00_seed5/last.ckpt"
    seen = json.loads((run / "seen.json").read_text())
    assert seen["resume"] == str(run / "last.ckpt") and seen["env"]["XORCH_ATTEMPT"] == "2"
    resumed = pd.read_csv(run / "lightning_logs" / "version_1" / "metrics.csv")
    assert resumed["epoch"].iloc[0] > 0 and resumed["epoch"].iloc[-1] == 39


def test_a_script_that_raises_fails_with_its_error_and_is_retried(workdir):
    script = "import sys\nraise RuntimeError('broken at seed ' + sys.argv[2])\n"
    path = command_config(workdir, script, seeds=[7], max_retries=1)
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode != 0
    out = workdir / "out"
    assert outcomes(out, 0) == ["failed", "failed"]
    attempt = read_state(out)["runs"][0]["attempts"][-1]
    assert attempt["exit_code"] == 1
    assert attempt["reason"] == "exit status 1: RuntimeError: broken at seed 7"


def test_a_script_that_stops_reporting_is_stopped_as_a_hang(workdir):
    script = (
        "import time\nfrom worker.report import report\n"
        "report(epoch=0, **{'train/loss': 1.0})\ntime.sleep(600)\n"
    )
    path = command_config(workdir, script, seeds=[3], hang_timeout=4, grace_period=2, max_retries=0)
    started = time.monotonic()
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode != 0
    assert time.monotonic() - started < 120  # not the script's 600 s
    (attempt,) = read_state(workdir / "out")["runs"][0]["attempts"]
    assert attempt["outcome"] == "hang" and "no heartbeat" in attempt["reason"]


# How a program with no xorch code misbehaves on purpose, in its first attempt
# only (a file in its run folder counts the attempts): seed 1 raises, seed 2
# goes silent (a hang, seen by its quiet run folder), seed 3 waits for the test
# to kill xorch. ``first_attempt_faults(seed, out)`` runs where the fault belongs.
FAULTS = """
def first_attempt_faults(seed, out):
    import os, time
    tries = os.path.join(out, "tries")
    with open(tries, "a") as handle:
        handle.write("x")
    if os.path.getsize(tries) > 1:
        return
    if seed == 1:
        raise RuntimeError(f"boom on purpose (seed {seed})")
    if seed == 2:
        time.sleep(600)
    if seed == 3:
        open(os.path.join(out, "waiting"), "w").close()
        time.sleep(600)
"""

# One run at a time, so the runs meet their faults in seed order.
FAULT_RUNNER = {"max_retries": 1, "grace_period": 2, "max_parallel": 1, "gpus": "none"}


def test_a_script_that_only_writes_metrics_json(workdir):
    script = FAULTS + textwrap.dedent("""
    import json, os, sys
    seed, out = int(os.environ["XORCH_SEED"]), os.environ["XORCH_RUN_DIR"]
    first_attempt_faults(seed, out)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"score": seed * 10.0, "name": "not a number"}, f)
    """)
    # A silent program shows life only by its run folder: a short hang_timeout
    # is enough for a plain Python script.
    path = command_config(
        workdir,
        script,
        ["python", "train.py"],
        summary_metrics=["score"],
        hang_timeout=5,
        **FAULT_RUNNER,
    )
    out = workdir / "out"
    state = faults_kill_and_resume(path, out, metric="score", pictures=("spread.png",))
    assert state["runs"][0]["attempts"][0]["reason"] == (
        "exit status 1: RuntimeError: boom on purpose (seed 1)"
    )
    assert [r["metrics"] for r in state["runs"]] == [
        {"score": 10.0},
        {"score": 20.0},
        {"score": 30.0},
    ]
    assert not (out / "plots" / "curves.png").exists()  # nothing was reported per epoch


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("python train.py", "command must be a non-empty list of strings"),
        (["python", 3], "command must be a non-empty list of strings"),
        ([], "command must be a non-empty list of strings"),
        (["no-such-program-xorch"], "command[0] 'no-such-program-xorch': no such program"),
        (["python", "missing.py"], "command[1] 'missing.py': no such script"),
        (["python", "train.py", "{sed}"], "unknown placeholder {sed}"),
    ],
)
def test_bad_commands_exit_2_with_one_line_and_write_nothing(workdir, command, message):
    path = command_config(workdir, "print('never runs')\n", seeds=[1])
    config = yaml.safe_load(path.read_text())
    config["command"] = command
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    before = snapshot(workdir)
    for verb in ("validate", "launch"):
        result = xorch(verb, str(path), cwd=workdir)
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr
    assert snapshot(workdir) == before


def test_command_with_a_model_block_is_refused(workdir):
    path = command_config(workdir, "print('never runs')\n", seeds=[1])
    config = yaml.safe_load(path.read_text())
    config["model"] = {"class_path": "worker.tasks.quick.QuickClassifier"}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2 and "command and model are both set" in result.stderr
    assert not (workdir / "out").exists()


def test_replay_of_a_command_run_gives_the_same_metrics(workdir):
    path = command_config(workdir, REPORTING_SCRIPT, seeds=[9])
    assert xorch("launch", str(path), cwd=workdir).returncode == 0
    replayed = xorch("replay", str(workdir / "out"), "0", cwd=workdir)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    original = read_state(workdir / "out")["runs"][0]["metrics"]
    log = workdir / "out" / "run_00_seed9_replay" / "lightning_logs" / "version_0" / "metrics.csv"
    assert pd.read_csv(log)["val/loss"].iloc[-1] == pytest.approx(original["val/loss"])


def test_a_silent_script_without_reporting_is_a_hang_by_its_quiet_run_folder(workdir):
    # Output for a while keeps it alive (train.log grows), then silence.
    script = (
        "import time\nfor i in range(6):\n    print('working', i, flush=True)\n"
        "    time.sleep(1)\ntime.sleep(600)\n"
    )
    path = command_config(
        workdir,
        script,
        ["python", "train.py"],
        seeds=[3],
        hang_timeout=4,
        grace_period=2,
        max_retries=0,
    )
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode != 0
    (attempt,) = read_state(workdir / "out")["runs"][0]["attempts"]
    assert attempt["outcome"] == "hang"
    assert attempt["duration_s"] > 6  # the printing kept it alive past hang_timeout


def test_validate_of_a_command_study_builds_no_lightning_run(workdir):
    path = command_config(workdir, REPORTING_SCRIPT)
    result = xorch("validate", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "launcher: spawn (command)" in result.stdout
    assert "built in a child process" not in result.stdout
    assert not (workdir / "out").exists()


def test_resume_after_changing_the_command_is_refused_and_names_it(workdir):
    script = (
        "import json, os\n"
        "path = os.path.join(os.environ['XORCH_RUN_DIR'], 'metrics.json')\n"
        "json.dump({'score': 1.0}, open(path, 'w'))\n"
    )
    path = command_config(workdir, script, ["python", "train.py"], seeds=[1])
    assert xorch("launch", str(path), cwd=workdir).returncode == 0
    status = xorch("status", str(workdir / "out"), cwd=workdir)
    assert status.returncode == 0 and "completed" in status.stdout, status.stdout
    config = yaml.safe_load(path.read_text())
    config["command"] = ["python", "train.py", "{seed}"]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 2 and "command" in result.stderr, result.stderr
