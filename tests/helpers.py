"""What several test modules share: tiny study configs, the CLI run the way a
user runs it (in a real subprocess), state and folder snapshots, waiting for a
study to reach a state, and the fault-injecting user module. Fixtures live in
conftest.py; test modules import helpers from here, never from each other."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from tests import cli_zygote

ROOT = Path(__file__).resolve().parent.parent

TINY_TRAINING: dict[str, Any] = {
    "model": {
        "class_path": "worker.tasks.quick.QuickClassifier",
        "init_args": {"features": 8, "hidden": 16, "classes": 3, "lr": 0.05},
    },
    "data": {
        "class_path": "worker.tasks.quick.QuickDataModule",
        "init_args": {
            "features": 8,
            "classes": 3,
            "train_size": 64,
            "val_size": 32,
            "batch_size": 16,
        },
    },
    "pl_trainer": {
        "max_epochs": 2,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
    },
}


def tiny_config(output_dir: Path, seeds: tuple[int, ...] | None = (0, 1, 2), **runner: Any) -> dict:
    block: dict[str, Any] = {"output_base_dir": str(output_dir), "summary_metrics": ["val/loss"]}
    if seeds is not None:
        block["seeds"] = list(seeds)
    block.update(runner)
    return {
        "mode": "run-experiments",
        "experiments_runner": block,
        **json.loads(json.dumps(TINY_TRAINING)),
    }


def xorch(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m orchestrator ARGS`` as a real process run to its end, as a user
    would run xorch (forked from a warm process: see tests/cli_zygote.py)."""
    return cli_zygote.run("orchestrator", args, cwd or ROOT, {**os.environ, **(env or {})}, timeout)


def xorch_popen(*args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd or ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@functools.cache
def slurm_up() -> bool:
    """Whether the local one-node Slurm (scripts/slurm_local.sh) answers."""
    if shutil.which("sinfo") is None:
        return False
    try:
        result = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and any(s in result.stdout for s in ("idle", "mix", "alloc"))


def read_state(output_dir: Path) -> dict:
    return json.loads((output_dir / "runner_state.json").read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: to prove nothing was touched."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# Runs xorch in-process and reports at exit whether the parent imported torch.
TORCH_WATCH = (
    "import sys, atexit\n"
    "atexit.register(lambda: print('PARENT-IMPORTED', 'torch' in sys.modules,"
    " 'pytorch_lightning' in sys.modules, file=sys.stderr))\n"
    "from orchestrator.cli import main\n"
    "sys.argv = ['xorch', *sys.argv[1:]]\n"
    "main()\n"
)


def wait_for(condition, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running_attempt(out: Path, index: int) -> dict | None:
    try:
        record = read_state(out)["runs"][index]
    except (OSError, ValueError, IndexError, KeyError):
        return None
    return record["attempts"][-1] if record["status"] == "running" else None


FAULTY = ROOT / "tests" / "fixtures" / "faulty.py"


def faulty_config(workdir: Path, faults: dict[int, str], seeds, **runner) -> dict:
    shutil.copy(FAULTY, workdir / "faulty.py")  # the user's own module, beside the config
    config = tiny_config(workdir / "out", seeds=tuple(seeds), **runner)
    config["model"]["class_path"] = "faulty.FaultyClassifier"
    config["model"]["init_args"]["faults"] = {str(k): v for k, v in faults.items()}
    return config


def by_seed(out: Path) -> dict[int, dict]:
    return {r["seed"]: r for r in read_state(out)["runs"]}


def wait_gone(pid: int, what: str, timeout: float = 15.0) -> None:
    """Wait until ``pid`` is gone (or a zombie nobody reaped): a child that
    followed its dead parent."""
    wait_for(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
        timeout=timeout,
        what=what,
    )


def ended_attempts(duration_s: float, outcome: str = "completed") -> tuple[Any, ...]:
    """One attempt that ended as ``outcome`` after ``duration_s`` seconds: a hand-made
    record's duration and failure class are read off its attempts, as a real one's are."""
    from orchestrator.state import Attempt, AttemptClass

    return (
        Attempt(number=1, started_at="2026-01-01T00:00:00+00:00", log="train.log",
                attempt_class=AttemptClass(outcome), ended_at="2026-01-01T00:00:01+00:00",
                duration_s=duration_s),
    )  # fmt: skip


def saved_variant_study(
    root: Path,
    values: dict[str, list[float | None]],
    seeds: tuple[int, ...],
    goal: dict[str, str] | None = None,
    with_logs: bool = True,
) -> Any:
    """A study of variants on disk without training: ``values[variant][i]`` is the final
    val/loss on ``seeds[i]`` (val/acc is 1 - val/loss); None leaves that run pending.
    With ``with_logs``, each completed run gets a 3-epoch CSVLogger log ending at its value.
    Returns the saved StudyState."""
    from orchestrator.contract.paths import StudyPaths
    from orchestrator.state import RunRecord, RunStatus, StudyState
    from orchestrator.state_store import save_state

    runs = []
    for position, seed in enumerate(seeds):
        for variant, losses in values.items():
            loss = losses[position]
            folder = f"{variant}/run_{position:02d}_seed{seed}"
            if loss is None:
                runs.append(RunRecord(index=len(runs), seed=seed, dir=folder, variant=variant))
                continue
            metrics = {"val/loss": loss, "val/acc": 1.0 - loss}
            runs.append(RunRecord(index=len(runs), seed=seed, dir=folder, variant=variant,
                                  status=RunStatus.COMPLETED, attempts=ended_attempts(1.0),
                                  metrics=metrics))  # fmt: skip
            if with_logs:
                log = root / folder / "lightning_logs" / "version_0" / "metrics.csv"
                log.parent.mkdir(parents=True)
                rows = [f"{e},{e},{loss + 0.3 * (2 - e)},{1 - loss - 0.3 * (2 - e)}"
                        for e in range(3)]  # fmt: skip
                log.write_text("epoch,step,val/loss,val/acc\n" + "\n".join(rows) + "\n")
    state = StudyState(
        config_fingerprint="f", training_config={"model": {"lr": 0.05}}, seeds=seeds,
        runs=tuple(runs), summary_metrics=("val/loss", "val/acc"),
        variant_configs={v: {"model": {"lr": 0.05 if i == 0 else 0.05 / (10 * i)}}
                         for i, v in enumerate(values)},
        compare_to=next(iter(values)), goal=goal or {"val/loss": "min", "val/acc": "max"},
    )  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    save_state(StudyPaths(root), state)
    return state


def faults_kill_and_resume(
    config: Path,
    out: Path,
    *args: str,
    metric: str = "val/loss",
    pictures: tuple[str, ...] = ("curves.png", "spread.png"),
    raised: str = "RuntimeError: boom on purpose (seed 1)",
    cwd: Path | None = None,
) -> dict:
    """Launch a 3-seed study (extra CLI ``args``) whose seed 1 raises and seed 2
    hangs in their first attempts, SIGKILL xorch while seed 3 waits, resume it,
    and check what a user sees: each failure class recorded and retried (run 0's
    reason holds ``raised``), the orphaned run gone, the killed run finished,
    summary.csv and the plots. xorch runs in ``cwd`` (the config's folder by
    default). Returns the final runner_state.json."""
    import pandas as pd  # only the tests that check a summary need it

    cwd = cwd or config.parent
    parent = xorch_popen("launch", str(config), *args, cwd=cwd)
    try:
        wait_for(
            lambda: (out / "run_02_seed3" / "waiting").exists(),
            timeout=300,
            what="seed 3 to wait, after seed 1 raised and seed 2 hung",
        )
        child_pid = read_state(out)["runs"][2]["attempts"][-1]["pid"]
        parent.send_signal(signal.SIGKILL)
        parent.communicate(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    wait_gone(child_pid, what="the orphaned run to follow its parent")
    resumed = xorch("launch", str(config), *args, "--resume", cwd=cwd, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * 3
    attempts = [[a["outcome"] for a in r["attempts"]] for r in state["runs"]]
    assert attempts == [
        ["failed", "completed"],
        ["hang", "completed"],
        ["interrupted", "completed"],
    ]
    first_attempts = [r["attempts"][0] for r in state["runs"]]
    assert raised in first_attempts[0]["reason"]
    assert "no heartbeat" in first_attempts[1]["reason"]
    summary = pd.read_csv(out / "summary.csv", dtype={"run": str})
    assert list(summary["run"]) == ["0", "1", "2", "mean", "std"]
    assert summary[metric].iloc[:3].notna().all()
    plotted = xorch("plot", str(out), cwd=cwd)
    assert plotted.returncode == 0, plotted.stdout + plotted.stderr
    for picture in pictures:
        assert (out / "plots" / picture).stat().st_size > 0
    return state
