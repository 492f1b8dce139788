"""``search:``: an Optuna search whose trials are xorch runs, then the seed study
of the best config. Real processes throughout, torch-free: the trials are a
command-mode toy that reads its values from run_spec.json and writes a
deterministic noisy loss to metrics.json."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import load_study
from orchestrator.contract.search_paths import SearchPaths
from orchestrator.errors import ConfigError, ExitCode
from orchestrator.search.space import distributions, grid, trial_training
from orchestrator.search.spec import Direction, Param, ParamKind, SamplerName
from orchestrator.search.trials import TrialTold, trial_verdict
from orchestrator.state import Attempt, AttemptClass, RunRecord, RunStatus
from tests.helpers import read_state, running_attempt, wait_for, xorch, xorch_popen

# The toy objective: a smooth function of the values plus noise of the seed (and
# the config, as a real training's luck depends on both); "boom" raises.
TOY = """
import json, math, os, random, sys, time, zlib
run_dir = sys.argv[1]
with open(os.path.join(run_dir, "run_spec.json")) as handle:
    spec = json.load(handle)
toy = spec["config"]["toy"]
if toy["act"] == "boom":
    raise SystemExit("boom: this activation does not exist")
time.sleep(toy.get("sleep", 0.0))
base = (math.log10(toy["lr"]) + 2.0) ** 2 * 0.05 + 0.02 * abs(toy["depth"] - 3)
base += toy["width"]["penalty"]
luck = zlib.crc32(json.dumps(toy, sort_keys=True).encode()) + spec["seed"] * 7919
value = base + random.Random(luck).gauss(0.0, toy.get("noise", 0.05))
with open(os.path.join(run_dir, "metrics.json"), "w") as handle:
    json.dump({"val/loss": value}, handle)
"""

SPACE: dict[str, Any] = {
    "toy.lr": {"type": "float", "low": 1.0e-4, "high": 1.0, "log": True},
    "toy.depth": {"type": "int", "low": 1, "high": 5},
    "toy.width": {
        "type": "blocks",
        "choices": {"narrow": {"penalty": 0.03}, "wide": {"penalty": 0.0}},
    },
}


def search_config(
    folder: Path, search: dict[str, Any], seeds=(1, 2, 3), runner: dict | None = None, **toy: Any
) -> Path:
    (folder / "toy.py").write_text(textwrap.dedent(TOY), encoding="utf-8")
    config = {
        "experiments_runner": {
            "output_base_dir": str(folder / "out"),
            "seeds": list(seeds),
            "summary_metrics": ["val/loss"],
            "max_retries": 0,
            **(runner or {}),
        },
        "command": ["python", "toy.py", "{run_dir}"],
        "toy": {"lr": 0.01, "depth": 3, "act": "relu", "width": {"penalty": 0.0}, **toy},
        "search": search,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def trials_table(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def stored_trials(out: Path) -> list[Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'search.db'}")
    return sorted(study.get_trials(), key=lambda t: t.number)


def assert_trials_agree_with_runs(out: Path) -> None:
    """Each told trial's value is its run's metric, and each trial has one run."""
    for t in stored_trials(out):
        state = read_state(SearchPaths(out).trial(t.number))
        assert len(state["runs"]) == 1
        run = state["runs"][0]
        if t.state.name == "COMPLETE":
            assert run["status"] == "completed" and run["metrics"]["val/loss"] == t.value
        else:
            assert t.state.name == "FAIL" and run["status"] != "completed"


# --------------------------------------------------------------------------- refusals

_OK: dict[str, Any] = {"n_trials": 2, "space": {"toy.lr": {"type": "float", "low": 0.1, "high": 1}}}


def _one(key: str, **entry: Any) -> dict[str, Any]:
    """A search of one parameter ``key`` described by ``entry``."""
    return {"n_trials": 2, "space": {key: entry}}


REFUSALS = [
    ({"space": {}}, "search.space must map dotted keys"),
    ({"n_trials": 2, "space": []}, "search.space must map dotted keys"),
    ({**_OK, "n_trails": 3}, "search: unknown key 'n_trails'; did you mean 'n_trials'?"),
    ({"space": _OK["space"]}, "search needs n_trials (a number of trials) or timeout"),
    ({**_OK, "n_trials": 0}, "search.n_trials must be an integer >= 1"),
    ({**_OK, "timeout": -5}, "search.timeout"),
    ({**_OK, "sampler": "gp"}, "search.sampler gp: Optuna's GP sampler imports torch"),
    ({**_OK, "sampler": "bayes"}, "search.sampler 'bayes' is not one of tpe, cmaes, random, grid"),
    ({**_OK, "sampler": "grid"}, "search.space.toy.lr: the grid sampler needs a finite set"),
    ({**_OK, "storage": "search.db"}, "search.storage 'search.db' is not a database URL"),
    ({**_OK, "seed": -1}, "search.seed: -1 is outside"),
    ({**_OK, "baseline": "yes"}, "search.baseline"),
    (_one("toy.lr", low=0.1, high=1), "search.space.toy.lr needs type"),
    (_one("toy.lr", type="float", low=1, high=0.1), "low (1) must be below high (0.1)"),
    (_one("toy.lr", type="float", low=0, high=1, log=True), "log needs low > 0"),
    (_one("toy.lr", type="float", low="a", high=1), "toy.lr.low must be a finite number"),
    (_one("toy.depth", type="int", low=1.5, high=4), "toy.depth.low must be an integer"),
    (
        _one("toy.depth", type="int", low=1, high=4, step=0),
        "toy.depth.step must be an integer >= 1",
    ),
    (_one("toy.depth", type="int", low=1, high=4, stp=2), "toy.depth: unknown key 'stp'"),
    (
        _one("toy.depth", type="int", low=1, high=6, step=2),
        "is not a multiple of step (2); set high to 5",
    ),
    (_one("toy.act", type="categorical", choices=[]), "toy.act.choices must be a list"),
    (_one("toy.act", type="categorical", choices=["a", "a"]), "lists a value twice"),
    (_one("toy.act", type="categorical", choices=[{"a": 1}]), "use type: blocks"),
    (_one("toy.width", type="blocks", choices=[1, 2]), "toy.width.choices must map a name"),
    (_one("toy.depth.x", type="int", low=1, high=4), "toy.depth.x: toy.depth is a int"),
    (_one("experiments_runner.seeds", type="int", low=1, high=4), "only keys of the training"),
    (_one("toy..lr", type="float", low=0.1, high=1), "a parameter's name is a dotted key"),
    ("tpe", "search must be a mapping with a space, not a string"),
]


@pytest.mark.parametrize(("block", "message"), REFUSALS)
def test_a_wrong_search_block_is_refused_with_one_line_naming_the_key(workdir, block, message):
    path = search_config(workdir, block)
    with pytest.raises(ConfigError) as caught:
        load_study(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_search_beside_variants_or_in_mode_train_is_refused(workdir):
    path = search_config(workdir, _OK)
    config = yaml.safe_load(path.read_text())
    config["experiments_runner"]["variants"] = {"wide": {"toy.depth": 5}}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"search and experiments_runner\.variants cannot go"):
        load_study(path)
    del config["experiments_runner"]["variants"]
    del config["command"]  # a model, as mode train trains one
    config["model"] = {"class_path": "worker.tasks.quick.QuickClassifier"}
    path.write_text(yaml.safe_dump({**config, "mode": "train", "seed": 1}))
    with pytest.raises(ConfigError, match="search runs many trials; use mode run-experiments"):
        load_study(path)


def test_validate_refuses_at_once_with_exit_2_and_touches_nothing(workdir):
    path = search_config(workdir, {**_OK, "sampler": "gp"})
    result = xorch("validate", str(path), "--fast", cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xorch: error: search.sampler gp")
    assert not (workdir / "out").exists()


def test_the_parsed_search_names_its_direction_seed_and_defaults(workdir):
    spec = load_study(search_config(workdir, {**_OK, "metric": "val/acc"}, seeds=(9, 4)))
    assert spec.search is not None
    assert spec.search.direction is Direction.MAXIMIZE  # an accuracy: higher is better
    assert spec.search.seed == 9 and spec.search.sampler is SamplerName.TPE
    assert "search" not in spec.training  # what a run trains has no search block
    assert not spec.warnings  # the toy block the space names is not "unknown"


# --------------------------------------------------------------------------- pure parts


def _run(status: RunStatus, metrics: dict[str, float]) -> RunRecord:
    outcome = {RunStatus.COMPLETED: AttemptClass.COMPLETED, RunStatus.FAILED: AttemptClass.FAILED}
    cls = outcome.get(status, AttemptClass.INTERRUPTED)
    attempt = Attempt(1, "2026-12-06T00:00:00", "train.log", attempt_class=cls, reason="no")
    return RunRecord(0, 1, "run_00_seed1", status, metrics, (attempt,))


_DONE, _FAILED, _CUT = RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.INTERRUPTED
VERDICTS = [
    # exit code, run, told, value, stops the search
    (ExitCode.OK, _run(_DONE, {"val/loss": 0.5}), TrialTold.COMPLETE, 0.5, False),
    (ExitCode.RUNS_FAILED, _run(_FAILED, {}), TrialTold.FAIL, None, False),
    (ExitCode.OK, _run(_DONE, {"val/acc": 0.5}), TrialTold.FAIL, None, False),  # not logged
    (ExitCode.OK, _run(_DONE, {"val/loss": float("nan")}), TrialTold.FAIL, None, False),
    (ExitCode.USAGE, None, TrialTold.FAIL, None, True),  # a config error: failed, and no more
    (ExitCode.SIGTERM, _run(_CUT, {}), TrialTold.NOTHING, None, True),  # left for --resume
]


@pytest.mark.parametrize(("code", "run", "told", "value", "stops"), VERDICTS)
def test_what_a_trial_is_told_follows_its_run(code, run, told, value, stops):
    verdict = trial_verdict(code, run, "val/loss")
    assert (verdict.told, verdict.value, verdict.stop_search) == (told, value, stops)
    assert verdict.told is not TrialTold.FAIL or verdict.reason


def test_the_space_in_optunas_words_and_a_trials_config():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space = (
        Param("model.lr", ParamKind.FLOAT, low=1e-4, high=1.0, log=True),
        Param("model.depth", ParamKind.INT, low=1, high=5, step=2),
        Param("act", ParamKind.CATEGORICAL, choices=("relu", None)),
        Param("data", ParamKind.BLOCKS, choices=("a", "b"), blocks={"a": {"n": 1}, "b": {"n": 2}}),
    )
    assert distributions(space) == {
        "model.lr": FloatDistribution(1e-4, 1.0, log=True),
        "model.depth": IntDistribution(1, 5, step=2),
        "act": CategoricalDistribution(("relu", None)),
        "data": CategoricalDistribution(("a", "b")),
    }
    assert grid(space[1:]) == {"model.depth": [1, 3, 5], "act": ["relu", None], "data": ["a", "b"]}
    training = {"model": {"lr": 0.1, "keep": True}, "data": {"n": 0, "other": 1}}
    sampled = {"model.lr": 0.01, "model.depth": 3, "act": None, "data": "b"}
    assert trial_training(training, space, sampled) == {
        "model": {"lr": 0.01, "keep": True, "depth": 3},
        "data": {"n": 2},  # a block replaces the whole block
        "act": None,
    }
    assert training["model"]["lr"] == 0.1  # the base config is left as it was


# --------------------------------------------------------------------------- real searches


def test_a_grid_search_then_the_seed_study_of_the_best_against_the_baseline(workdir):
    space = {
        "toy.act": {"type": "categorical", "choices": ["relu", "boom"]},
        "toy.depth": {"type": "int", "low": 1, "high": 5, "step": 2},
    }
    search = {"sampler": "grid", "sampler_seed": 0, "seed": 2, "baseline": True, "space": space}
    path = search_config(workdir, search, seeds=(1, 2, 3))
    result = xorch("launch", str(path), cwd=workdir)
    out = workdir / "out"
    assert result.returncode == 0, result.stdout + result.stderr
    rows = trials_table(out)
    assert len(rows) == 6  # the grid's size: n_trials left out
    assert {(r["toy.act"], r["toy.depth"]) for r in rows} == {
        (a, str(d)) for a in ("relu", "boom") for d in (1, 3, 5)
    }
    failed = [r for r in rows if r["state"] == "fail"]
    assert {r["toy.act"] for r in failed} == {"boom"} and len(failed) == 3
    assert all("boom: this activation does not exist" in r["reason"] for r in failed)
    assert_trials_agree_with_runs(out)
    best = min((r for r in rows if r["state"] == "complete"), key=lambda r: float(r["val/loss"]))
    written = yaml.safe_load((out / "best_config.yaml").read_text())
    assert written["toy"]["depth"] == int(best["toy.depth"]) and written["toy"]["act"] == "relu"
    assert f"best trial {best['trial']} " in (out / "best_config.yaml").read_text()
    importances = (out / "importances.csv").read_text().splitlines()
    # Among the completed trials only depth varies (act is always relu there).
    assert importances[0] == "parameter,importance"
    assert [line.split(",")[0] for line in importances[1:]] == ["toy.depth", "toy.act"]
    assert (out / "search_history.png").read_bytes()[:4] == b"\x89PNG"
    # The seed study: baseline and best on the same seeds, paired.
    seeds = read_state(out / "seeds")
    assert sorted((r["variant"], r["seed"]) for r in seeds["runs"]) == sorted(
        (v, s) for v in ("baseline", "best") for s in (1, 2, 3)
    )
    assert seeds["compare_to"] == "baseline"
    assert seeds["variant_configs"]["best"]["toy"]["depth"] == int(best["toy.depth"])
    assert "best vs baseline, val/loss: diff" in result.stdout
    assert (out / "seeds" / "comparison.csv").exists()


def test_a_killed_search_resumes_without_losing_or_repeating_a_trial(workdir):
    search = {"n_trials": 4, "sampler": "random", "sampler_seed": 5, "space": SPACE}
    path = search_config(workdir, search, seeds=(4,), sleep=1.0)
    out = workdir / "out"
    parent = xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(
            lambda: running_attempt(SearchPaths(out).trial(2), 0) is not None,
            what="the third trial's run to start",
        )
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    cut = [t for t in stored_trials(out) if t.state.name == "RUNNING"]
    assert [t.number for t in cut] == [2]
    asked = {t.number: t.params for t in stored_trials(out)}
    result = xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    trials = stored_trials(out)
    assert [t.number for t in trials] == list(range(4))  # n_trials, none twice, none lost
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert trials[2].params == asked[2]  # resumed with its own values, never re-asked
    outcomes = [a["outcome"] for a in read_state(SearchPaths(out).trial(2))["runs"][0]["attempts"]]
    assert outcomes == ["interrupted", "completed"]
    assert "trial 2 was cut short: its run is resumed" in result.stdout
    assert_trials_agree_with_runs(out)
    assert [int(r["trial"]) for r in trials_table(out)] == list(range(4))
    assert len(read_state(out / "seeds")["runs"]) == 1  # the best config on seed 4
    before = {t.number: t.value for t in trials}
    again = xorch("launch", str(path), "--resume", cwd=workdir)  # all done: only read back
    assert again.returncode == 0, again.stdout + again.stderr
    assert "starting attempt" not in again.stdout
    assert {t.number: t.value for t in stored_trials(out)} == before
    refused = xorch("launch", str(path), cwd=workdir)
    assert refused.returncode == 2 and "already holds a search" in refused.stderr


def test_the_parent_side_of_a_search_loads_no_torch(tmp_path):
    """Every sampler offered, the importances and the plot, in a fresh interpreter."""
    code = textwrap.dedent(
        f"""
        import sys, optuna
        from orchestrator.search import driver  # the whole parent side of a search
        from orchestrator.search.space import distributions
        from orchestrator.search.outputs import importance_rows
        from orchestrator.search.spec import SamplerName, SearchSpec, Direction, Param, ParamKind
        from orchestrator.search.trials import open_search
        space = (Param("x", ParamKind.INT, low=0, high=3),)
        for i, name in enumerate(SamplerName):
            search = SearchSpec(space, "loss", Direction.MINIMIZE, 3, None, name, 0, None,
                                None, 1, False)
            study = open_search(search, "sqlite:///{tmp_path}/s.db", f"s{{i}}")
            for _ in range(3):
                trial = study.ask(distributions(space))
                study.tell(trial, trial.params["x"] ** 2)
            importance_rows(study)
        assert "torch" not in sys.modules, "torch was imported"
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_sigterm_mid_search_leaves_the_trial_untold_for_resume(workdir):
    search = {"n_trials": 2, "sampler": "random", "sampler_seed": 2, "space": SPACE}
    path = search_config(workdir, search, seeds=(4,), runner={"grace_period": 5}, sleep=1.0)
    out = workdir / "out"
    parent = xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(
            lambda: running_attempt(SearchPaths(out).trial(0), 0) is not None,
            what="the first trial's run to start",
        )
        parent.send_signal(signal.SIGTERM)
        stdout, stderr = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 143, stdout + stderr
    assert "Traceback" not in stderr
    assert [t.state.name for t in stored_trials(out)] == ["RUNNING"]  # not told, not failed
    # The cut-short trial is finished with its own values: a space without one is refused.
    narrower = workdir / "narrower.yaml"
    config = yaml.safe_load(path.read_text())
    del config["search"]["space"]["toy.width"]
    narrower.write_text(yaml.safe_dump(config))
    refused = xorch("launch", str(narrower), "--resume", cwd=workdir)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "xorch: error: trial 0 was asked with the parameters toy.depth, toy.lr, toy.width, but "
        "search.space now names toy.depth, toy.lr: restore the space to resume, or start the "
        "new search in another output_base_dir"
    )
    result = xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [t.state.name for t in stored_trials(out)] == ["COMPLETE", "COMPLETE"]
    assert_trials_agree_with_runs(out)


def test_validate_describes_the_search_and_what_follows(workdir):
    search = {"n_trials": 5, "sampler": "cmaes", "baseline": True, "space": SPACE}
    result = xorch("validate", str(search_config(workdir, search)), "--fast", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "search: 5 trials, sampler cmaes, minimize val/loss, each trial one run on seed 1" in (
        result.stdout
    )
    assert "  toy.lr: float 0.0001 .. 1 (log)" in result.stdout
    assert "  toy.width: blocks narrow, wide" in result.stdout
    assert "then the seed study of best and baseline on seeds 1, 2, 3" in result.stdout
    assert not (workdir / "out").exists()


def test_the_readmes_search_example_validates():
    root = Path(__file__).resolve().parent.parent
    example = Path("conf") / "examples" / "search" / "search.yaml"
    result = xorch("validate", str(example), "--fast", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "search: 20 trials, sampler tpe (seed 0), minimize val/loss" in result.stdout
    assert "then the seed study of best and baseline on seeds 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" in (
        result.stdout
    )
