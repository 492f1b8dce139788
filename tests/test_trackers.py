"""A study's runs in the trackers its config's loggers write to, with the real
packages, offline: W&B's offline run files read back (tests/wandb_records.py),
MLflow's SQLite store queried with ``mlflow.search_runs``, TensorBoard's event
files read with its own EventAccumulator. Each test is one study with every
tracker's logger at once, on the fork server (torch imported once a study).
The identities themselves are tested case by case in tests/test_tracking.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.contract.paths import RunPaths
from tests.helpers import (
    TORCH_WATCH,
    faulty_config,
    read_state,
    wait_for,
    wait_gone,
    xorch,
    xorch_popen,
)
from tests.wandb_records import OfflineRun, read_offline_run

pytestmark = pytest.mark.lightning

LOGGERS = [
    {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "."}},
    {"class_path": "pytorch_lightning.loggers.WandbLogger", "init_args": {"project": "xorch-test"}},
    {"class_path": "pytorch_lightning.loggers.MLFlowLogger", "init_args": {}},
    {"class_path": "pytorch_lightning.loggers.TensorBoardLogger", "init_args": {"save_dir": "tb"}},
]


@pytest.fixture(autouse=True)
def _offline_trackers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """W&B offline and quiet, its own folders in the test's; MLflow's default store."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    # W&B's survey of the machine (git, system metrics, hardware) costs seconds a run
    for name in ("WANDB_DISABLE_GIT", "WANDB_DISABLE_CODE", "WANDB_X_DISABLE_STATS",
                 "WANDB_X_DISABLE_MACHINE_INFO"):  # fmt: skip
        monkeypatch.setenv(name, "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _study(workdir: Path, faults: dict[int, str], seeds: tuple[int, ...], **runner) -> dict:
    config = faulty_config(workdir, faults, seeds, **runner)
    config["model"]["init_args"]["at_epoch"] = 1  # epoch 0 is logged before the fault
    config["pl_trainer"]["logger"] = json.loads(json.dumps(LOGGERS))
    return config


def _wandb_runs(run_dir: Path) -> list[OfflineRun]:
    """The W&B runs an attempt of this run left (one per attempt), oldest first."""
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    return [read_offline_run(f) for f in files]


def _mlflow_runs(out: Path):  # -> pandas.DataFrame
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    return mlflow.search_runs(search_all_experiments=True)


def _metric_history(out: Path, run_id: str, key: str) -> list[float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    return [m.value for m in client.get_metric_history(run_id, key)]


def _tensorboard(folder: Path):  # -> EventAccumulator, loaded
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def _hparams(events) -> dict:
    """The hparams TensorBoard's HParams tab shows for a run."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    found = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        found[name] = getattr(value, kind)
    return found


def test_a_3_seed_study_with_a_failed_run_in_every_tracker(workdir: Path, write_config) -> None:
    out = workdir / "out"
    # seed 3 raises in epoch 1: a failed run (not retried; a run's later attempts
    # are test_a_study_of_variants_killed_and_resumed's)
    path = write_config(_study(workdir, {3: "raise"}, seeds=(1, 2, 3), max_retries=0))
    # TORCH_WATCH: the parent, which logs the study's figures to MLflow, never imports torch
    result = subprocess.run(
        [sys.executable, "-c", TORCH_WATCH, "launch", str(path)],
        cwd=workdir, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout + result.stderr  # a run failed
    assert "PARENT-IMPORTED False False" in result.stderr
    state = read_state(out)
    runs = {r["seed"]: r for r in state["runs"]}
    assert [runs[s]["status"] for s in (1, 2, 3)] == ["completed", "completed", "failed"]
    finals = {s: runs[s]["metrics"]["val/loss"] for s in (1, 2)}

    # W&B: one run per study run, named and grouped, every value logged to the last
    wandb = {s: _wandb_runs(out / runs[s]["dir"]) for s in (1, 2, 3)}
    assert [len(wandb[s]) for s in (1, 2, 3)] == [1, 1, 1]
    assert len({w[0].run_id for w in wandb.values()}) == 3
    for seed, (logged,) in wandb.items():
        assert (logged.group, logged.name, logged.job_type) == ("out", runs[seed]["dir"], "")
        assert (logged.config["seed"], logged.config["attempt"]) == (seed, 1)
        losses = [row["val/loss"] for row in logged.history if "val/loss" in row]
        assert len(losses) == (2 if seed != 3 else 1)  # seed 3 failed in epoch 1
        assert logged.exit_code == (0 if seed != 3 else 1)  # failed, as W&B shows it
        if seed != 3:
            assert losses[-1] == pytest.approx(finals[seed])

    # MLflow: the study's parent run, one nested run per seed, the failed one FAILED
    table = _mlflow_runs(out)
    parent = table[table["tags.mlflow.parentRunId"].isna()]
    children = table[table["tags.mlflow.parentRunId"].notna()]
    assert list(parent["tags.mlflow.runName"]) == ["out"]
    assert set(children["tags.mlflow.parentRunId"]) == set(parent["run_id"])
    by_seed = children.set_index(children["tags.seed"].astype(int))
    assert sorted(by_seed.index) == [1, 2, 3]
    assert list(by_seed.loc[[1, 2, 3], "status"]) == ["FINISHED", "FINISHED", "FAILED"]
    assert list(by_seed.loc[[1, 2, 3], "tags.mlflow.runName"]) == [
        runs[s]["dir"] for s in (1, 2, 3)
    ]
    for seed in (1, 2):
        assert by_seed.loc[seed, "metrics.val/loss"] == pytest.approx(finals[seed])
    assert len(_metric_history(out, by_seed.loc[3, "run_id"], "val/loss")) == 1  # epoch 0
    parent_run = parent.iloc[0]
    assert parent_run["status"] == "FINISHED"
    assert parent_run["metrics.val/loss.n"] == 2
    mean = sum(finals.values()) / 2
    assert parent_run["metrics.val/loss.mean"] == pytest.approx(mean)
    assert {"metrics.val/loss.std", "metrics.val/loss.ci_low", "metrics.val/loss.ci_high"} <= set(
        table.columns
    )

    # TensorBoard: the study folder is the logdir, each run's events in its own folder
    logdirs = sorted({p.parent.name for p in out.rglob("events.out.tfevents.*")})
    assert logdirs == [runs[s]["dir"] for s in (1, 2, 3)]
    for seed in (1, 2):
        events = _tensorboard(out / runs[seed]["dir"])
        assert events.Scalars("val/loss")[-1].value == pytest.approx(finals[seed])
        hparams = _hparams(events)
        assert (hparams["seed"], hparams["attempt"]) == (seed, 1)
        assert "final/val/loss" in events.Tags()["scalars"]
    # and xorch's own curves still read the CSVLogger's log
    for seed in (1, 2):
        assert RunPaths(out / runs[seed]["dir"]).csv_metric_logs()


def test_a_study_of_variants_killed_and_resumed(workdir: Path, write_config) -> None:
    """Killed while a run trains, then resumed: still one W&B run and one MLflow
    run per study run, the resumed run's attempts in the same ones."""
    out = workdir / "out"
    config = _study(workdir, {1: "wait_once"}, seeds=(1,))
    config["pl_trainer"]["logger"] = [e for e in config["pl_trainer"]["logger"]
                                      if "TensorBoard" not in e["class_path"]]  # fmt: skip
    # seed 1 waits in base's run only: slow's never reaches the epoch of its fault
    slow = {"model.init_args.lr": 0.01, "model.init_args.at_epoch": 9}
    config["experiments_runner"]["variants"] = {"base": {}, "slow": slow}
    path = write_config(config)
    parent = xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(lambda: (out / "base" / "run_00_seed1" / "waiting").exists(), timeout=300,
                 what="base's run to wait in epoch 1")  # fmt: skip
        child = read_state(out)["runs"][0]["attempts"][-1]["pid"]
        parent.send_signal(signal.SIGKILL)
        parent.communicate(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    wait_gone(child, what="the run to follow its killed parent")
    resumed = xorch("launch", str(path), "--resume", cwd=workdir, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    runs = {r["variant"]: r for r in read_state(out)["runs"]}
    assert [len(runs[v]["attempts"]) for v in ("base", "slow")] == [2, 1]

    # W&B: each attempt of a run continues the same run; the variant is its job type
    for variant, run in runs.items():
        files = _wandb_runs(out / run["dir"])
        assert len(files) == len(run["attempts"])  # one offline file per attempt
        # The SIGKILLed attempt's file is W&B's header alone: a killed process and
        # its W&B service write nothing more (a stop by xorch, SIGTERM, closes it).
        logged = [w for w in files if w.run_id]
        assert len(logged) == 1
        assert {(w.run_id, w.group, w.job_type, w.name) for w in logged} == {
            (logged[0].run_id, "out", variant, run["dir"])
        }
        assert logged[-1].config["variant"] == variant
        assert logged[-1].exit_code == 0
    assert _wandb_runs(out / runs["slow"]["dir"])[0].config["model.init_args.lr"] == "0.01"
    ids = {_wandb_runs(out / run["dir"])[0].run_id for run in runs.values()}
    assert len(ids) == 2

    # MLflow: a parent run per variant, one nested run per study run, resumed in place
    table = _mlflow_runs(out)
    parents = table[table["tags.mlflow.parentRunId"].isna()].set_index("tags.mlflow.runName")
    children = table[table["tags.mlflow.parentRunId"].notna()].set_index("tags.variant")
    assert sorted(parents.index) == ["base", "slow"]
    assert sorted(children.index) == ["base", "slow"]  # no second run for the resumed one
    for variant, run in runs.items():
        child_run = children.loc[variant]
        assert child_run["tags.mlflow.parentRunId"] == parents.loc[variant, "run_id"]
        assert (child_run["status"], child_run["tags.seed"]) == ("FINISHED", "1")
        assert child_run["metrics.val/loss"] == pytest.approx(run["metrics"]["val/loss"])
        assert parents.loc[variant, "metrics.val/loss.mean"] == pytest.approx(
            run["metrics"]["val/loss"]
        )
        assert parents.loc[variant, "status"] == "FINISHED"
    # the killed attempt's epoch 0 and the resumed attempt's epoch 1, in one run
    assert len(_metric_history(out, children.loc["base", "run_id"], "val/loss")) == 2
