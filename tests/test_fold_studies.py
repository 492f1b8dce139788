"""Folds times seeds (issue 21), real studies: fake workers in a 2-fold x
3-seed study, a variants study paired on (fold, seed) checked against scipy's
``ttest_rel``, SIGKILL of the parent then ``--resume``; a command-mode program
given ``{fold}`` and ``XORCH_FOLD``; and the module's one Lightning study (the
fold reaches a real data module, the worker records its epochs and best
checkpoint, and validate refuses a data module without the argument)."""

from __future__ import annotations

import csv
import json
import os
import signal
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import read_state, tiny_config, wait_for, xorch

KEY = "data.init_args.fold"


def _write(tmp_path: Path, config: dict[str, Any], name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- real studies


def test_a_two_fold_three_seed_study(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = fake_study_config(out, seeds=(7, 8, 9), folds={"n": 2, "key": KEY})
    config["model"]["init_args"]["fold_gain"] = 10.0  # fold 1's loss is 10 higher
    result = fake_xorch("launch", str(_write(tmp_path, config)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert [(r["fold"], r["seed"], r["dir"]) for r in state["runs"]] == [
        (0, 7, "run_00_fold0_seed7"), (1, 7, "run_01_fold1_seed7"),
        (0, 8, "run_02_fold0_seed8"), (1, 8, "run_03_fold1_seed8"),
        (0, 9, "run_04_fold0_seed9"), (1, 9, "run_05_fold1_seed9"),
    ]  # fmt: skip
    for record in state["runs"]:  # the child's config had its fold at the key
        spec = json.loads((out / record["dir"] / "run_spec.json").read_text())
        assert spec["config"]["data"]["init_args"]["fold"] == record["fold"] == spec["fold"]
        assert record["epochs_trained"] == 2
        assert record["best_checkpoint_path"] == f"{record['dir']}/fake_progress.json"
    rows = _rows(out)
    assert list(rows[0])[:4] == ["run", "fold", "seed", "duration_s"]
    assert list(rows[0])[-4:] == [
        "epochs_trained", "best_checkpoint_path", "representative", "best_run",
    ]  # fmt: skip
    losses = np.array([[7.5, 8.5, 9.5], [17.5, 18.5, 19.5]])
    assert [float(r["val/loss"]) for r in rows[:6]] == [7.5, 17.5, 8.5, 18.5, 9.5, 19.5]
    stats = {(r["run"], r["fold"]): float(r["val/loss"]) for r in rows[6:]}
    assert stats[("mean", "-")] == pytest.approx(losses.mean())
    assert stats[("std", "-")] == pytest.approx(losses.std(ddof=1), abs=1e-6)
    for fold in (0, 1):
        assert stats[("mean", str(fold))] == pytest.approx(losses[fold].mean())
        assert stats[("std", str(fold))] == pytest.approx(losses[fold].std(ddof=1))
    assert state["best_run"]["fold"] == 0 and state["best_run"]["epochs_trained"] == 2
    summary = fake_xorch("summary", str(out), "--format", "csv", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    loss_row = next(
        r for r in csv.DictReader(summary.stdout.splitlines()) if r["metric"] == "val/loss"
    )
    assert float(loss_row["between_folds"]) == pytest.approx(losses.mean(axis=1).std(ddof=1))
    assert float(loss_row["between_seeds"]) == pytest.approx(losses.mean(axis=0).std(ddof=1))
    status = fake_xorch("status", str(out), cwd=tmp_path).stdout.splitlines()
    assert status[1].split()[:3] == ["run", "fold", "seed"]
    assert status[3].split()[:3] == ["1", "1", "7"]
    assert any(
        "best run 0 (fold 0, seed 7, val/loss 7.5, lower is better)" in line for line in status
    )


def test_variants_with_folds_are_paired_on_fold_and_seed(tmp_path: Path) -> None:
    from scipy import stats

    out = tmp_path / "out"
    seeds = (3, 4, 5)
    base = {"0/3": 1.00, "1/3": 2.10, "0/4": 1.40, "1/4": 2.00, "0/5": 0.90, "1/5": 2.60}
    wide = {"0/3": 0.80, "1/3": 2.05, "0/4": 1.30, "1/4": 1.70, "0/5": 0.85, "1/5": 2.20}
    config = fake_study_config(
        out,
        seeds=seeds,
        folds={"n": 2, "key": KEY},
        variants={
            "base": {"model.init_args.losses": base},
            "wide": {"model.init_args.losses": wide},
        },
    )
    result = fake_xorch("launch", str(_write(tmp_path, config)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert sorted((r["variant"], r["fold"], r["seed"]) for r in state["runs"]) == sorted(
        (v, f, s) for v in ("base", "wide") for f in (0, 1) for s in seeds
    )
    assert {r["dir"] for r in state["runs"] if r["variant"] == "wide"} == {
        f"wide/run_{2 * i + f:02d}_fold{f}_seed{s}" for i, s in enumerate(seeds) for f in (0, 1)
    }
    order = list(base)
    expected = stats.ttest_rel([wide[k] for k in order], [base[k] for k in order])
    with (out / "comparison.csv").open(newline="") as handle:
        rows = csv.DictReader(handle)
        row = next(r for r in rows if r["metric"] == "val/loss" and r["group"] == "wide")
    assert (row["test"], row["n_pairs"], row["seeds"]) == (
        "paired t",
        "6",
        "paired on every seed (6)",
    )
    assert float(row["p"]) == pytest.approx(expected.pvalue, rel=1e-6)
    # Paired on fold too: pairing on the seed alone would have had 3 pairs.
    block = [r for r in _rows(out) if r["variant"] == "wide" and r["run"] in ("mean", "std")]
    assert [(r["run"], r["fold"]) for r in block] == [
        ("mean", "-"), ("std", "-"), ("mean", "0"), ("std", "0"), ("mean", "1"), ("std", "1"),
    ]  # fmt: skip


def test_a_killed_folds_study_resumes_exactly_the_missing_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = fake_study_config(out, seeds=(1, 2, 3), steps=4, folds={"n": 2, "key": KEY})
    path = _write(tmp_path, config)
    proc = fake_xorch_popen("launch", str(path), cwd=tmp_path)
    try:
        wait_for(
            lambda: (
                out.joinpath("runner_state.json").exists()
                and sum(r["status"] == "completed" for r in read_state(out)["runs"]) >= 2
            ),
            60,
            "two runs completed",
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    before = {r["index"]: r for r in read_state(out)["runs"]}
    done_before = {i for i, r in before.items() if r["status"] == "completed"}
    assert 2 <= len(done_before) < 6
    result = fake_xorch("launch", str(path), "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    after = read_state(out)["runs"]
    assert len(after) == 6
    assert sorted((r["fold"], r["seed"]) for r in after) == [
        (f, s) for f in (0, 1) for s in (1, 2, 3)
    ]
    assert all(r["status"] == "completed" for r in after)
    for index in done_before:  # a completed run is never run again
        assert after[index]["attempts"] == before[index]["attempts"]
    rows = _rows(out)
    assert sorted(r["run"] for r in rows[:6]) == [str(i) for i in range(6)]
    assert [r["run"] for r in rows[6:]] == ["mean", "std"] * 3


COMMAND_SCRIPT = """
import argparse, csv, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int)
parser.add_argument("--fold", type=int)
parser.add_argument("--out")
args = parser.parse_args()
assert os.environ["XORCH_FOLD"] == str(args.fold), os.environ.get("XORCH_FOLD")
log = os.path.join(args.out, "lightning_logs", "version_0")
os.makedirs(log, exist_ok=True)
with open(os.path.join(log, "metrics.csv"), "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["epoch", "step", "val/loss"])
    for epoch in range(3):
        writer.writerow([epoch, epoch, args.fold * 10 + args.seed + epoch])
print(json.dumps({"val/loss": args.fold * 10 + args.seed}))
"""


def test_a_command_study_gets_its_fold_as_placeholder_and_variable(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(COMMAND_SCRIPT), encoding="utf-8")
    out = tmp_path / "out"
    config = {
        "mode": "run-experiments",
        "experiments_runner": {
            "output_base_dir": str(out),
            "seeds": [1, 2],
            "folds": {"n": 3},
            "summary_metrics": ["val/loss"],
            "gpus": "none",
        },
        "command": ["python", "train.py", "--seed", "{seed}", "--fold", "{fold}", "--out",
                    "{run_dir}"],
    }  # fmt: skip
    result = xorch("launch", str(_write(tmp_path, config)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert [(r["fold"], r["seed"]) for r in state["runs"]] == [
        (f, s) for s in (1, 2) for f in (0, 1, 2)
    ]
    for record in state["runs"]:
        assert record["metrics"]["val/loss"] == record["fold"] * 10 + record["seed"]
        assert record["epochs_trained"] == 3  # from the CSV log: epochs 0..2
        assert "best_checkpoint_path" not in record  # it wrote no checkpoint
    rows = _rows(out)
    assert [r["epochs_trained"] for r in rows[:6]] == ["3"] * 6
    assert [r["best_checkpoint_path"] for r in rows[:6]] == [""] * 6


@pytest.mark.lightning
def test_a_lightning_folds_study_sets_the_data_modules_fold_and_records_its_checkpoints(
    tmp_path: Path,
) -> None:
    """The one Lightning child of this module: the fold reaches a real
    LightningDataModule's init argument, and the worker reports the epochs
    trained and the best checkpoint of a ModelCheckpoint with a monitor."""
    out = tmp_path / "out"
    config = tiny_config(out, seeds=(3,), gpus="none", folds={"n": 2, "key": KEY})
    config["data"]["init_args"]["folds"] = 2
    config["callbacks"] = [
        {
            "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
            "init_args": {"monitor": "val/loss", "mode": "min", "filename": "best"},
        }
    ]
    result = xorch("launch", str(_write(tmp_path, config)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert [(r["fold"], r["dir"]) for r in state["runs"]] == [
        (0, "run_00_fold0_seed3"),
        (1, "run_01_fold1_seed3"),
    ]
    for record in state["runs"]:
        spec = json.loads((out / record["dir"] / "run_spec.json").read_text())
        assert spec["config"]["data"]["init_args"]["fold"] == record["fold"]
        assert record["epochs_trained"] == 2
        best = record["best_checkpoint_path"]
        assert best.startswith(record["dir"] + "/") and best.endswith("best.ckpt")
        assert (out / best).is_file()
    # Another fold validates on other blobs: the same seed's losses differ.
    losses = [r["metrics"]["val/loss"] for r in state["runs"]]
    assert losses[0] != losses[1]
    assert state["best_run"]["best_checkpoint_path"].endswith("best.ckpt")
    rows = _rows(out)
    assert [r["best_checkpoint_path"] for r in rows[:2]] == [
        r["best_checkpoint_path"] for r in state["runs"]
    ]
    assert [r["epochs_trained"] for r in rows[:2]] == ["2", "2"]
    # A key the data module does not take: validate's build check refuses it.
    config["experiments_runner"]["folds"]["key"] = "data.init_args.split"
    config["experiments_runner"]["output_base_dir"] = str(tmp_path / "other")
    checked = xorch("validate", str(_write(tmp_path, config, "split.yaml")), cwd=tmp_path)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert checked.stderr.strip().splitlines()[-1] == (
        "xorch: error: data.init_args.split: QuickDataModule takes no argument 'split'"
    )
