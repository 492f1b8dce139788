"""Planning a launch's state: ``plan_study`` over states held in memory.

Only the config file is written (a spec is loaded from one); the planning
itself neither reads nor writes a state, so every case is a table row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import StudySpec, load_study
from orchestrator.errors import StateError, StudyExistsError
from orchestrator.planning import plan_study
from orchestrator.state import Attempt, AttemptClass, StudyState
from tests.helpers import tiny_config

VARIANTS = {"baseline": {}, "wide": {"model.init_args.hidden": 32}}


def spec_of(workdir: Path, write_config, **runner: Any) -> StudySpec:
    config = tiny_config(workdir / "out", **{"seeds": (0, 1), **runner})
    if "lr" in runner:
        config["experiments_runner"].pop("lr")
        config["model"]["init_args"]["lr"] = runner["lr"]
    return load_study(write_config(json.loads(json.dumps(config))))


def ran(state: StudyState, count: int) -> StudyState:
    """``state`` with its first ``count`` runs completed."""
    for index in range(count):
        attempt = Attempt(number=1, started_at="2026-01-01T00:00:00+00:00", log="log")
        state = state.start_attempt(index, attempt)
        done = Attempt(
            number=1,
            started_at=attempt.started_at,
            log="log",
            attempt_class=AttemptClass.COMPLETED,
        )
        state = state.finish_attempt(index, done, {"val/loss": 0.5})
    return state


@pytest.mark.parametrize(
    ("runner", "seeds", "dirs"),
    [
        ({}, (0, 1), ["run_00_seed0", "run_01_seed1"]),
        (
            {"variants": VARIANTS},
            (0, 1),
            [
                "baseline/run_00_seed0",
                "wide/run_00_seed0",
                "baseline/run_01_seed1",
                "wide/run_01_seed1",
            ],
        ),
    ],
)
def test_a_new_study_plans_every_variant_on_every_seed(workdir, write_config, runner, seeds, dirs):
    plan = plan_study(spec_of(workdir, write_config, **runner), None, None, resume=False)
    assert plan.save and not plan.recovered
    assert plan.state.seeds == seeds
    assert [r.dir for r in plan.state.runs] == dirs
    assert [r.index for r in plan.state.runs] == list(range(len(dirs)))
    assert not (workdir / "out").exists()  # planning touches no disk


@pytest.mark.parametrize("runner", [{}, {"variants": VARIANTS}])
def test_an_unchanged_resume_keeps_the_state_and_saves_nothing(workdir, write_config, runner):
    spec = spec_of(workdir, write_config, **runner)
    first = ran(plan_study(spec, None, None, resume=False).state, 1)
    plan = plan_study(spec, first, None, resume=True)
    assert plan.state == first and not plan.save and not plan.recovered


@pytest.mark.parametrize("runner", [{}, {"variants": VARIANTS}])
def test_a_missing_state_is_planned_from_the_backup_and_saved(workdir, write_config, runner):
    spec = spec_of(workdir, write_config, **runner)
    backup = ran(plan_study(spec, None, None, resume=False).state, 1)
    plan = plan_study(spec, None, backup, resume=True)
    assert plan.state == backup and plan.save and plan.recovered
    assert plan_study(spec, None, backup, resume=False).state != backup  # no resume: new


@pytest.mark.parametrize(
    ("first", "again", "error", "words"),
    [
        ({}, {}, StudyExistsError, "already holds a study (1 of 2 runs completed)"),
        ({}, {"lr": 0.5}, StateError, "the training config changed"),
        ({}, {"seeds": (0, 2)}, StateError, "differ from the study's [0, 1]"),
        ({}, {"seeds": None, "n_runs": 3}, StateError, "resume with n_runs: 2"),
        ({}, {"variants": VARIANTS}, StateError, "was started without variants"),
        ({"variants": VARIANTS}, {}, StateError, "this study has variants"),
        (
            {"variants": VARIANTS},
            {"variants": {"baseline": {}}},
            StateError,
            "variant wide is in the study but not in the config",
        ),
        (
            {"variants": VARIANTS},
            {"variants": {**VARIANTS, "wide": {"model.init_args.hidden": 64}}},
            StateError,
            "variant wide: its training config changed",
        ),
        (
            {"variants": VARIANTS},
            {"variants": VARIANTS, "seeds": (1, 0)},
            StateError,
            "do not start with the study's [0, 1]",
        ),
        (
            {
                "seeds": None,
                "n_runs": {
                    "min": 3,
                    "max": 4,
                    "until": {"metric": "val/loss", "ci_halfwidth": 0.01},
                },
            },
            {
                "seeds": None,
                "n_runs": {
                    "min": 2,
                    "max": 2,
                    "until": {"metric": "val/loss", "ci_halfwidth": 0.01},
                },
            },
            StateError,
            "n_runs.max is 2 but the study has already run 3 seeds",
        ),
        (
            {},
            {
                "seeds": None,
                "n_runs": {
                    "min": 2,
                    "max": 4,
                    "until": {"metric": "val/loss", "ci_halfwidth": 0.01},
                },
            },
            StateError,
            "was started with 2 fixed seeds",
        ),
    ],
)
def test_a_resume_that_would_mix_configs_or_seeds_is_refused(
    workdir, write_config, first, again, error, words
):
    started = ran(
        plan_study(spec_of(workdir, write_config, **first), None, None, resume=False).state, 1
    )
    resume = error is not StudyExistsError
    with pytest.raises(error) as caught:
        plan_study(spec_of(workdir, write_config, **again), started, None, resume=resume)
    assert words in str(caught.value)


def test_added_seeds_and_variants_are_appended_and_nothing_that_ran_is_planned_again(
    workdir, write_config
):
    first = plan_study(
        spec_of(workdir, write_config, variants=VARIANTS), None, None, resume=False
    ).state
    started = ran(first, 2)
    more = {**VARIANTS, "deep": {"model.init_args.hidden": 8}}
    spec = spec_of(workdir, write_config, variants=more, seeds=(0, 1, 5))
    plan = plan_study(spec, started, None, resume=True)
    assert plan.save
    assert plan.state.runs[:4] == started.runs  # kept as they were, results included
    assert [r.dir for r in plan.state.runs[4:]] == [
        "deep/run_00_seed0",
        "deep/run_01_seed1",
        "baseline/run_02_seed5",
        "wide/run_02_seed5",
        "deep/run_02_seed5",
    ]
    assert plan.state.seeds == (0, 1, 5)
    assert list(plan.state.variant_configs) == ["baseline", "wide", "deep"]


def test_a_larger_adaptive_min_plans_its_seeds_at_once(workdir, write_config):
    def adaptive(low: int, high: int) -> dict:
        return {
            "seeds": None,
            "n_runs": {
                "min": low,
                "max": high,
                "until": {"metric": "val/loss", "ci_halfwidth": 0.01},
            },
        }

    first = plan_study(spec_of(workdir, write_config, **adaptive(2, 4)), None, None, resume=False)
    assert first.state.adaptive is not None
    sequence = first.state.adaptive.sequence
    assert first.state.seeds == sequence[:2] and len(sequence) == 4
    again = plan_study(
        spec_of(workdir, write_config, **adaptive(3, 6)), ran(first.state, 2), None, resume=True
    )
    assert again.state.adaptive is not None
    assert again.state.adaptive.sequence[:4] == sequence
    assert again.state.seeds == sequence[:3] and len(again.state.runs) == 3
    assert again.state.runs[2].dir == f"run_02_seed{sequence[2]}"
