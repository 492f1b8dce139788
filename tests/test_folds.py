"""Folds times seeds (issue 21): ``experiments_runner.folds: {n, key}``.

Refusals are a table over ``load_study`` (nothing on disk), and one through the
CLI; the spread split in two is checked against statsmodels' two-way ANOVA; the
rest are real studies of fake workers (a 2-fold x 3-seed study, a variants
study paired on (fold, seed) checked against scipy's ``ttest_rel``, SIGKILL of
the parent then ``--resume``) and a command-mode program given ``{fold}`` and
``XORCH_FOLD``."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from orchestrator.config import load_study
from orchestrator.contract.records import RunResult
from orchestrator.errors import ConfigError, StateError
from orchestrator.fold_spread import fold_spread
from orchestrator.planning import plan_study
from orchestrator.rerun import RerunError, RunChoice, rerun_targets
from orchestrator.seed_table import FoldSeed
from orchestrator.state import FoldSpec, RunRecord, StudyState
from orchestrator.state_store import state_from_payload, state_to_json
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


# --------------------------------------------------------------------------- refusals


def _with(config: dict[str, Any], **runner: Any) -> dict[str, Any]:
    config = json.loads(json.dumps(config))
    config["experiments_runner"].update(runner)
    return config


@pytest.mark.parametrize(
    ("folds", "extra", "message"),
    [
        (5, {}, "experiments_runner.folds must be a mapping like {n: 5, key: data.init_args.fold}"),
        ({"key": KEY}, {}, "experiments_runner.folds needs n"),
        ({"n": 1, "key": KEY}, {}, "experiments_runner.folds.n must be an integer >= 2, not 1"),
        ({"n": 2.5, "key": KEY}, {}, "experiments_runner.folds.n must be an integer >= 2"),
        ({"n": 2, "kye": KEY}, {}, "unknown key 'kye'; did you mean 'key'?"),
        ({"n": 2}, {}, "experiments_runner.folds needs key"),
        ({"n": 2, "key": "data..fold"}, {}, "experiments_runner.folds.key is"),
        (
            {"n": 2, "key": "data.split.fold"},
            {},
            "experiments_runner.folds.key data.split.fold: the config has no data.split",
        ),
        (
            {"n": 2, "key": "pl_trainer.fold"},
            {},
            "experiments_runner.folds.key pl_trainer.fold: the config has no pl_trainer.fold",
        ),
        (
            {"n": 2, "key": "model.init_args.steps.fold"},
            {},
            "model.init_args.steps is a int in the config, not a mapping",
        ),
        (
            {"n": 2, "key": KEY},
            {
                "seeds": None,
                "n_runs": {
                    "min": 2,
                    "max": 4,
                    "until": {"metric": "val/loss", "ci_halfwidth": 0.1},
                },
            },
            "experiments_runner.folds with adaptive seeds",
        ),
        (
            {"n": 2, "key": KEY},
            {"variants": {"a": {}, "b": {"data": {"_target_": "m.D", "split": {}}}}},
            "experiments_runner.variants.b: experiments_runner.folds.key data.init_args.fold: "
            "the config has no data.init_args",
        ),
        ({"n": 1001, "key": KEY}, {}, "the limit is 1,000"),
    ],
)
def test_a_fold_setting_that_cannot_work_is_refused_in_one_line(
    tmp_path: Path, folds: Any, extra: dict[str, Any], message: str
) -> None:
    config = _with(fake_study_config(tmp_path / "out"), folds=folds, **extra)
    if config["experiments_runner"].get("seeds") is None:
        config["experiments_runner"].pop("seeds", None)
    with pytest.raises(ConfigError) as caught:
        load_study(_write(tmp_path, config))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"class_path": "m.Data", "init_args": {"fold": 0}}, "data.init_args.fold"),  # given
        ({"class_path": "m.Data", "init_args": {"batch": 4}}, "data.init_args.fold"),  # an arg
        ({"class_path": "m.Data"}, "data.init_args.fold"),  # init_args made
        ({"_target_": "m.Data", "batch": 4}, "data.fold"),  # a Hydra entry's argument
        ({"class_path": "m.Data", "init_args": {"split": {"k": 0}}}, "data.init_args.split.k"),
    ],
)
def test_a_fold_key_the_config_provides_is_accepted_and_set_per_run(
    tmp_path: Path, data: dict[str, Any], key: str
) -> None:
    config = fake_study_config(tmp_path / "out", folds={"n": 3, "key": key})
    config["data"] = data
    spec = load_study(_write(tmp_path, config))
    assert spec.runner.folds == FoldSpec(3, key)
    node: Any = spec.run_config(None, 2)
    for part in key.split("."):
        node = node[part]
    assert node == 2
    assert spec.training["data"] == data  # the study's own config is left as it was


def test_command_studies_take_the_fold_as_a_placeholder_only(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('{}')\n")
    block = {"output_base_dir": str(tmp_path / "out"), "seeds": [1]}
    base = {"mode": "run-experiments", "command": ["python", "train.py", "--fold", "{fold}"]}
    with pytest.raises(ConfigError, match=r"\{fold\} is given only in a study with folds"):
        load_study(_write(tmp_path, {**base, "experiments_runner": block}))
    keyed = {**block, "folds": {"n": 2, "key": "x.fold"}}
    with pytest.raises(ConfigError, match="a command study gets the fold as"):
        load_study(_write(tmp_path, {**base, "experiments_runner": keyed}))
    spec = load_study(
        _write(tmp_path, {**base, "experiments_runner": {**block, "folds": {"n": 2}}})
    )
    assert spec.runner.folds == FoldSpec(2, None)


def test_validate_refuses_a_missing_fold_key_on_one_line_with_exit_2(tmp_path: Path) -> None:
    config = fake_study_config(tmp_path / "out", folds={"n": 2, "key": "data.split.fold"})
    result = xorch("validate", str(_write(tmp_path, config)), "--fast", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "xorch: error: experiments_runner.folds.key data.split.fold: the config has no "
        "data.split; name the key your data module reads its fold from (e.g. "
        "data.init_args.fold)"
    ]
    assert not (tmp_path / "out").exists()
    config["experiments_runner"]["folds"]["key"] = KEY
    planned = xorch("validate", str(_write(tmp_path, config)), "--fast", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "2 folds x 3 seeds: every seed runs every fold" in planned.stdout
    assert "  run 3: seed 1 fold 1 -> run_03_fold1_seed1" in planned.stdout
    assert "6 runs" in planned.stdout


# --------------------------------------------------------------------------- pure parts


def test_resume_with_other_folds_is_refused(tmp_path: Path) -> None:
    config = fake_study_config(tmp_path / "out", seeds=(1, 2), folds={"n": 2, "key": KEY})
    spec = load_study(_write(tmp_path, config))
    state = plan_study(spec, None, None, resume=False).state
    assert [(r.fold, r.seed, r.dir) for r in state.runs] == [
        (0, 1, "run_00_fold0_seed1"),
        (1, 1, "run_01_fold1_seed1"),
        (0, 2, "run_02_fold0_seed2"),
        (1, 2, "run_03_fold1_seed2"),
    ]
    assert plan_study(spec, state, None, resume=True).state == state  # nothing to add
    other = load_study(_write(tmp_path, _with(config, folds={"n": 3, "key": KEY})))
    refusal = re.escape("folds is {n: 3, key: data.init_args.fold} but the study")
    with pytest.raises(StateError, match=refusal):
        plan_study(other, state, None, resume=True)
    plain = load_study(_write(tmp_path, _with(config, folds=None)))
    with pytest.raises(StateError, match="folds is none but the study was started with"):
        plan_study(plain, state, None, resume=True)


def test_a_state_with_folds_survives_the_file_and_a_wrong_fold_is_refused() -> None:
    runs = tuple(
        RunRecord(i, seed, f"run_{i:02d}_fold{fold}_seed{seed}", fold=fold)
        for i, (seed, fold) in enumerate([(5, 0), (5, 1)])
    )
    state = StudyState("f", {}, (5,), runs, folds=FoldSpec(2, KEY))
    payload = json.loads(state_to_json(state))
    assert payload["folds"] == {"n": 2, "key": KEY}
    assert [r["fold"] for r in payload["runs"]] == [0, 1]
    assert state_from_payload(payload) == state
    payload["runs"][1]["fold"] = 2
    with pytest.raises(ValueError, match=r"run 1: fold 2 is not one of 0\.\.1"):
        state_from_payload(payload)
    payload["runs"][1]["fold"] = 0
    with pytest.raises(ValueError, match=r"a \(fold, seed\) has two runs"):
        state_from_payload(payload)


def test_metrics_json_without_the_new_fields_still_loads() -> None:
    old = RunResult.from_json({"metrics": {"val/loss": 1.0}, "resumed_from": None})
    assert old is not None and (old.epochs_trained, old.best_checkpoint_path) == (None, None)
    odd = RunResult.from_json({"metrics": {}, "epochs_trained": "3", "best_checkpoint_path": 7})
    assert odd is not None and (odd.epochs_trained, odd.best_checkpoint_path) == (None, None)
    new = RunResult(metrics={"m": 1.0}, epochs_trained=4, best_checkpoint_path="/r/best.ckpt")
    assert RunResult.from_json(new.to_json()) == new


def test_the_fold_spread_is_the_two_way_anovas_main_effects() -> None:
    pd = pytest.importorskip("pandas")
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    values = {
        (0, 1): 0.61, (0, 2): 0.70, (0, 3): 0.64, (0, 4): 0.59,
        (1, 1): 0.52, (1, 2): 0.66, (1, 3): 0.55, (1, 4): 0.50,
        (2, 1): 0.71, (2, 2): 0.83, (2, 3): 0.72, (2, 4): 0.69,
    }  # fmt: skip
    frame = pd.DataFrame(
        [{"fold": f, "seed": s, "y": v} for (f, s), v in values.items()], dtype=float
    )
    table = anova_lm(ols("y ~ C(fold) + C(seed)", data=frame).fit())
    spread = fold_spread(values)
    assert (spread.folds, spread.seeds) == (3, 4)
    assert spread.between_seeds**2 * 3 == pytest.approx(table.loc["C(seed)", "mean_sq"])
    assert spread.between_folds**2 * 4 == pytest.approx(table.loc["C(fold)", "mean_sq"])
    # A diverged run is left out; one fold alone has no between-fold spread.
    assert fold_spread({**values, (0, 5): math.inf}) == spread
    assert math.isnan(fold_spread({(0, 1): 1.0, (0, 2): 2.0}).between_folds)


def test_fold_seed_keys_pair_only_the_same_fold_and_seed() -> None:
    keys = {FoldSeed(0, 42), FoldSeed(1, 42), FoldSeed(1, 2**31 - 1)}
    assert len(keys) == 3 and FoldSeed(1, 42) in keys and 42 not in keys
    assert [(k.fold, k.seed) for k in sorted(keys)] == [(0, 42), (1, 42), (1, 2**31 - 1)]
    assert f"seed {FoldSeed(2, 7)}" == "seed 7 (fold 2)"


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


def test_a_variant_run_of_a_folds_study_is_named_for_rerun_as_its_folder_shows_it(
    tmp_path: Path,
) -> None:
    config = fake_study_config(
        tmp_path / "out",
        seeds=(4, 9),
        folds={"n": 3, "key": KEY},
        variants={"base": {}, "wide": {"model.init_args.offset": 1}},
    )
    state = plan_study(load_study(_write(tmp_path, config)), None, None, resume=False).state
    for name in [("wide", 4), ("base", 0), ("wide", 5)]:
        (index,) = rerun_targets(state, RunChoice(names=(name,)), "rerun").not_completed
        record = state.runs[index[0]]
        assert record.dir == f"{name[0]}/run_{name[1]:02d}_fold{name[1] % 3}_seed{record.seed}"
    with pytest.raises(RerunError, match="its runs are 0 to 5"):
        rerun_targets(state, RunChoice(names=(("wide", 6),)), "rerun")
