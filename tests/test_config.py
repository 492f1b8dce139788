"""The config rules of the seed block: the seeds/n_runs table, every bad input,
overrides. Bad input: one line on stderr, exit 2, nothing on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.config import apply_overrides, changed_keys, load_study
from orchestrator.errors import ConfigError
from orchestrator.runner_spec import RunnerSettings
from orchestrator.seeds import study_seeds
from tests.helpers import snapshot, tiny_config, xorch


def runner_of(write_config, workdir: Path, **block) -> RunnerSettings:
    config = tiny_config(workdir / "out", seeds=None)
    config["experiments_runner"].update(block)
    return load_study(write_config(config)).runner


def test_seeds_give_one_run_each(write_config, workdir):
    runner = runner_of(write_config, workdir, seeds=[42, 101, 28])
    assert runner.run_count == 3
    assert study_seeds(runner) == (42, 101, 28)


def test_n_runs_alone_draws_distinct_31_bit_seeds(write_config, workdir):
    runner = runner_of(write_config, workdir, n_runs=5)
    seeds = study_seeds(runner)
    assert len(seeds) == 5 and len(set(seeds)) == 5
    assert all(0 <= s <= 2**31 - 1 for s in seeds)
    assert study_seeds(runner) != seeds  # drawn fresh, not a fixed list


def test_consistent_seeds_and_n_runs_are_accepted(write_config, workdir):
    runner = runner_of(write_config, workdir, seeds=[42, 101, 28], n_runs=3)
    assert runner.run_count == 3


def test_defaults_are_the_documented_ones(write_config, workdir):
    config = tiny_config(workdir / "x", seeds=(1,))
    del config["experiments_runner"]["output_base_dir"]
    del config["experiments_runner"]["summary_metrics"]
    runner = load_study(write_config(config)).runner
    assert runner.output_base_dir == "outputs/experiments_runner"
    assert runner.save_summary is True
    assert runner.summary_metrics == ("val/loss",)
    assert runner.resume is False


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"seeds": [42, 101, 28], "n_runs": 1}, "n_runs is 1 but seeds lists 3"),
        ({}, "needs seeds"),
        ({"seeds": []}, "non-empty list"),
        ({"seeds": [1, True]}, "seeds[1]: True is not an integer"),
        ({"seeds": [1.5]}, "seeds[0]: 1.5 is not an integer"),
        ({"seeds": ["7"]}, "seeds[0]: '7' is not an integer"),
        ({"seeds": [-1]}, "outside 0..2147483647"),
        ({"seeds": [2**31]}, "outside 0..2147483647"),
        ({"seeds": [3, 4, 3]}, "has 3 more than once"),
        ({"seeds": 5}, "non-empty list"),
        ({"n_runs": 0}, "n_runs must be an integer >= 1"),
        ({"n_runs": "five"}, "n_runs must be an integer >= 1"),
        ({"n_run": 5}, "unknown key 'n_run'; did you mean 'n_runs'?"),
        ({"seeds": [1], "save_sumary": False}, "did you mean 'save_summary'?"),
        ({"seeds": [1], "save_summary": "yes"}, "save_summary must be true or false"),
        ({"seeds": [1], "summary_metrics": [1]}, "summary_metrics must be a list"),
        ({"seeds": [1], "on_failure": "abort"}, "on_failure must be continue or stop"),
        ({"seeds": [1], "run_timeout": -3}, "run_timeout must be a number of seconds"),
        ({"seeds": [1], "executor": "k8s"}, "executor must be local or slurm"),
        ({"seeds": [1], "slurm": {"partiton": "gpu"}}, "did you mean 'partition'?"),
        ({"seeds": [1], "slurm": {"time_min": 0}}, "slurm.time_min must be an integer >= 1"),
        ({"seeds": [1], "launcher": "fork"}, "launcher must be spawn or forkserver"),
        ({"seeds": [1], "gpus": "all"}, "gpus must be auto, none or a list"),
        ({"seeds": [1], "runs_per_gpu": 0}, "runs_per_gpu must be an integer >= 1"),
    ],
)
def test_bad_runner_blocks_are_refused(write_config, workdir, block, expected):
    config = tiny_config(workdir / "out", seeds=None)
    config["experiments_runner"] = {"output_base_dir": str(workdir / "out"), **block}
    with pytest.raises(ConfigError) as info:
        load_study(write_config(config))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(pl_traner={}), "did you mean 'pl_trainer'?"),
        (lambda c: c.update(trainer={"max_epochs": 1}), "both pl_trainer and trainer"),
        (lambda c: c.pop("model"), "model needs class_path"),
        (lambda c: c["model"].update(class_path="NoDots"), "must be dotted"),
        (lambda c: c.update(mode="sweep"), "mode: 'sweep' is not one of"),
        (lambda c: c.update(deterministic_cudnn="on"), "deterministic_cudnn must be true or false"),
        (lambda c: c.update(callbacks={"class_path": "a.B"}), "callbacks must be a list"),
    ],
)
def test_bad_training_blocks_are_refused(write_config, workdir, change, expected):
    config = tiny_config(workdir / "out")
    change(config)
    with pytest.raises(ConfigError) as info:
        load_study(write_config(config))
    assert expected in str(info.value)


def test_foreign_top_level_blocks_pass_through_to_the_worker(write_config, workdir):
    config = tiny_config(workdir / "out")
    config["hyperparameters"] = {"batch_size": 8}
    spec = load_study(write_config(config))
    assert spec.training["hyperparameters"] == {"batch_size": 8}
    assert "experiments_runner" not in spec.training


def test_trainer_is_an_alias_of_pl_trainer(write_config, workdir):
    config = tiny_config(workdir / "out")
    config["trainer"] = config.pop("pl_trainer")
    spec = load_study(write_config(config))
    assert spec.training["pl_trainer"]["max_epochs"] == 2
    assert "trainer" not in spec.training


def test_overrides_are_dotted_and_parsed_as_yaml(write_config, workdir):
    path = write_config(tiny_config(workdir / "out"))
    spec = load_study(
        path,
        [
            "pl_trainer.max_epochs=3",
            "experiments_runner.seeds=[1,2]",
            "model.init_args.lr=1e-3",
            "new_block.flag=true",
        ],
    )
    assert spec.training["pl_trainer"]["max_epochs"] == 3
    assert spec.runner.seeds == (1, 2)
    assert spec.training["model"]["init_args"]["lr"] == 1e-3
    assert spec.training["new_block"] == {"flag": True}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("pl_trainer.max_epochs", "is not KEY=VALUE"),
        ("a..b=1", "is not KEY=VALUE"),
        ("model.class_path.x=1", "model.class_path is a string, not a mapping"),
        ("experiments_runner.seeds=[1,", "is not a YAML value"),
    ],
)
def test_bad_overrides_are_refused(override, expected):
    with pytest.raises(ConfigError) as info:
        apply_overrides({"model": {"class_path": "a.B"}}, [override])
    assert expected in str(info.value)


def test_changed_keys_names_the_dotted_keys():
    old = {"model": {"init_args": {"lr": 1, "hidden": 8}}, "pl_trainer": {"max_epochs": 2}}
    new = {
        "model": {"init_args": {"lr": 2, "hidden": 8}},
        "pl_trainer": {"max_epochs": 2},
        "seed": 1,
    }
    assert changed_keys(old, new) == ["model.init_args.lr", "seed"]


def test_train_mode_needs_a_seed(write_config, workdir):
    config = {**tiny_config(workdir / "out"), "mode": "train"}
    del config["experiments_runner"]
    with pytest.raises(ConfigError, match="seed: None is not an integer"):
        load_study(write_config(config))
    config["seed"] = 1084739421
    assert load_study(write_config(config)).train_seed == 1084739421


@pytest.mark.parametrize(("seed", "warned"), [(12345, True), (0, True), (None, False)])
def test_a_top_level_seed_is_said_unused_only_when_it_is_one(write_config, workdir, seed, warned):
    # lightning-hydra-template's train.yaml has `seed: null`: nothing is ignored there.
    spec = load_study(write_config({**tiny_config(workdir / "out"), "seed": seed}))
    said = [w for w in spec.warnings if w.startswith("top-level seed:")]
    assert said == ([f"top-level seed: {seed} is not used; xorch seeds each run with its own "
                     "seed from experiments_runner"] if warned else [])  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "experiments_runner:\n  n_run: 5\n" + yaml.safe_dump({"model": {"class_path": "a.B"}}),
            "did you mean 'n_runs'?",
        ),
        ("experiments_runner: [oops\n", "line"),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_cli_config_errors_are_one_line_exit_2_and_touch_nothing(workdir, text, expected):
    config = workdir / "bad.yaml"
    config.write_text(text)
    before = snapshot(workdir)
    result = xorch("launch", str(config), cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xorch: error:"), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert snapshot(workdir) == before
    assert not (workdir / "outputs").exists()


def test_missing_config_file_is_a_clear_error(workdir):
    result = xorch("launch", str(workdir / "nope.yaml"), cwd=workdir)
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_hydras_config_path_and_name_flags_name_the_config(write_config, workdir):
    """The seed project's way: --config-path DIR --config-name NAME [OVERRIDES]."""
    write_config(tiny_config(workdir / "out"), "exp.yaml")
    for args in (["--config-path", str(workdir), "--config-name", "exp"],
                 ["--config-name", "exp.yaml", "--config-path", str(workdir)]):  # fmt: skip
        result = xorch("validate", "--fast", *args, "experiments_runner.seeds=[5,6]", cwd=workdir)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "run 0: seed 5" in result.stdout and "2 runs" in result.stdout
    alone = xorch("validate", "--fast", "--config-path", str(workdir), cwd=workdir)
    assert alone.returncode == 2 and "--config-path needs --config-name" in alone.stderr
    neither = xorch("validate", "--fast", cwd=workdir)
    assert neither.returncode == 2
    assert neither.stderr.strip() == (
        "xorch: error: name the study's YAML file: CONFIG, or --config-path DIR --config-name NAME"
    )
