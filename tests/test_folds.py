"""Folds times seeds (issue 21), the decisions: ``experiments_runner.folds:
{n, key}`` refused or accepted (a table over ``load_study``, nothing on disk, and
one refusal through the CLI), the plan and its resume, the state file, the
``FoldSeed`` key that pairs variants, old metrics.json files, and the spread
split in two checked against statsmodels' two-way ANOVA. Real studies are in
tests/test_fold_studies.py."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

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
from tests.fakes import fake_study_config
from tests.helpers import xorch

KEY = "data.init_args.fold"


def _write(tmp_path: Path, config: dict[str, Any], name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


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
