"""The representative and the best run (issue 21): the pure pick as a table
(ties, non-finite values, one run, none), then what a user sees: runner_state.json,
summary.csv's ``*`` columns and the status/summary line, from real fake-worker
studies (a plain one and one of variants), recomputed after a rerun."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from orchestrator.representative import Pick, metric_goal, pick_runs, standouts
from orchestrator.state import RunRecord, RunStatus, StudyState
from orchestrator.state_store import state_from_payload
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import read_state

INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    ("values", "goal", "expected"),
    [
        ([], "min", Pick(None, None)),  # no completed run
        ([(4, 2.0)], "min", Pick(4, 4)),  # one run is both
        ([(0, 1.0), (1, 2.0), (2, 4.0)], "min", Pick(1, 0)),  # mean 2.33: run 1
        ([(0, 1.0), (1, 2.0), (2, 4.0)], "max", Pick(1, 2)),
        ([(0, 1.0), (1, 3.0)], "min", Pick(0, 0)),  # both 1 from the mean: the lower index
        ([(0, 5.0), (1, 5.0), (2, 5.0)], "max", Pick(0, 0)),  # all equal
        ([(0, 1.0), (1, NAN), (2, 3.0), (3, 2.0)], "min", Pick(3, 0)),  # nan left out
        ([(0, INF), (1, 1.0), (2, 2.0)], "max", Pick(1, 2)),  # inf is not the best
        ([(0, -INF), (1, 1.0), (2, 2.0)], "min", Pick(1, 1)),  # nor -inf
        ([(0, NAN), (1, INF)], "min", Pick(None, None)),  # nothing finite
        ([(0, 1.7e308), (1, 1.7e308)], "min", Pick(0, 0)),  # a mean that would overflow
    ],
)
def test_pick_runs(values, goal, expected) -> None:
    assert pick_runs(values, goal) == expected


@pytest.mark.parametrize(
    ("metric", "goals", "goal"),
    [
        ("val/loss", {}, "min"),
        ("val/error_rate", {}, "min"),
        ("val/acc", {}, "max"),
        ("val/loss", {"val/loss": "max"}, "max"),  # the study's goal: wins
        ("val/acc", {"val/acc": "min"}, "min"),
    ],
)
def test_metric_goal(metric, goals, goal) -> None:
    assert metric_goal(metric, goals) == goal


def test_standouts_are_per_variant_and_use_the_representative_metric() -> None:
    values = {("a", 1): 0.3, ("b", 1): 0.75, ("a", 2): 0.1, ("b", 2): 0.25, ("a", 3): 0.2}
    runs = tuple(
        RunRecord(
            i,
            seed,
            f"{v}/run_{seed}",
            RunStatus.COMPLETED,
            variant=v,
            metrics={"val/loss": loss, "val/acc": 1 - loss},
        )
        for i, ((v, seed), loss) in enumerate(values.items())
    )
    runs += (RunRecord(5, 3, "b/run_3", variant="b"),)  # pending: not chosen
    state = StudyState("f", {}, (1, 2, 3), runs, variant_configs={"a": {}, "b": {}},
                       representative_metric="val/acc")  # fmt: skip
    chosen = {s.variant: (s.goal, s.representative, s.best) for s in standouts(state)}
    assert chosen["a"][0] == "max"
    assert (chosen["a"][1].index, chosen["a"][2].index) == (4, 2)  # acc .8 nearest .8; .9 best
    assert (chosen["b"][1].index, chosen["b"][2].index) == (1, 3)  # a tie: the lower index


def test_an_old_state_file_without_the_keys_loads() -> None:
    run = {"index": 0, "seed": 1, "dir": "run_00_seed1", "status": "pending", "attempts": []}
    payload = {"schema_version": 1, "config_fingerprint": "f", "training_config": {},
               "created_at": "t", "seeds": [1], "runs": [run]}  # fmt: skip
    state = state_from_payload(payload)
    assert state.representative_metric is None and standouts(state)[0].best is None


# -- real processes -----------------------------------------------------------------


def _launch(tmp_path: Path, **runner: object) -> tuple[Path, Path]:
    out = tmp_path / "out"
    config = fake_study_config(out, seeds=(7, 8, 9, 10), **runner)
    config["model"]["init_args"]["spread"] = 3  # losses not evenly spaced
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = fake_xorch("launch", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return path, out


def _marked(out: Path) -> tuple[list[str], list[str]]:
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    return (
        [r["run"] for r in rows if r["representative"] == "*"],
        [r["run"] for r in rows if r["best_run"] == "*"],
    )


def test_a_study_names_its_representative_and_best_run_everywhere(tmp_path: Path) -> None:
    _, out = _launch(tmp_path, summary_metrics=["val/loss", "val/acc"])
    state = read_state(out)
    losses = {r["index"]: r["metrics"]["val/loss"] for r in state["runs"]}
    mean = sum(losses.values()) / len(losses)
    nearest = min(losses, key=lambda i: abs(losses[i] - mean))
    best = min(losses, key=losses.__getitem__)
    assert state["representative"]["index"] == nearest
    assert state["best_run"] == {"index": best, "seed": state["runs"][best]["seed"],
                                 "metric": "val/loss", "value": losses[best], "goal": "min",
                                 "checkpoint": None, "epochs_trained": 2,
                                 "best_checkpoint_path": f"{state['runs'][best]['dir']}/"
                                 "fake_progress.json"}  # fmt: skip
    assert _marked(out) == ([str(nearest)], [str(best)])
    line = f"best run {best} (seed {state['runs'][best]['seed']}, val/loss"
    assert line in fake_xorch("status", str(out), cwd=tmp_path).stdout
    assert line in fake_xorch("summary", str(out), cwd=tmp_path).stdout
    # Recomputed after a rerun: the best run's rerun is not completed, so another is best.
    assert fake_xorch("rerun", str(out), str(best), cwd=tmp_path).returncode == 0
    assert read_state(out)["best_run"]["index"] != best
    assert str(best) not in _marked(out)[1]


def test_the_goal_setting_and_representative_metric_choose(tmp_path: Path) -> None:
    _, out = _launch(tmp_path, representative_metric="val/acc", goal={"val/acc": "min"})
    state = read_state(out)
    accs = {r["index"]: r["metrics"]["val/acc"] for r in state["runs"]}
    assert state["best_run"]["index"] == min(accs, key=accs.__getitem__)
    assert (state["best_run"]["metric"], state["best_run"]["goal"]) == ("val/acc", "min")
    assert state["representative_metric"] == "val/acc"


def test_a_study_of_variants_has_one_of_each_per_variant(tmp_path: Path) -> None:
    variants = {"base": {}, "worse": {"model.init_args.offset": 5}}
    _, out = _launch(tmp_path, variants=variants)
    state = read_state(out)
    assert set(state["best_run"]) == {"base", "worse"}
    for name, best in state["best_run"].items():
        assert state["runs"][best["index"]]["variant"] == name
    representative, best = _marked(out)
    assert len(representative) == len(best) == 2
    status = fake_xorch("status", str(out), cwd=tmp_path).stdout
    assert "\nbase: representative run" in status and "\nworse: representative run" in status


def test_the_checkpoint_is_last_ckpt_when_the_run_has_one(tmp_path: Path) -> None:
    from orchestrator.contract.paths import StudyPaths
    from orchestrator.state_store import load_state, save_state

    _, out = _launch(tmp_path)
    paths = StudyPaths(out)
    state = load_state(paths)
    assert state is not None
    best = json.loads(paths.state.read_text())["best_run"]
    assert best["checkpoint"] is None  # the fake worker leaves no last.ckpt
    folder = state.runs[best["index"]].dir
    (out / folder / "last.ckpt").write_bytes(b"not read")
    save_state(paths, state)
    assert json.loads(paths.state.read_text())["best_run"]["checkpoint"] == f"{folder}/last.ckpt"
