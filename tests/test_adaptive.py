"""Adaptive seeds (``n_runs: {min, max, until}``): the stop rule against scipy,
its bounds, failed runs and variants; the seed sequence fixed at creation; bad
input; studies of fake workers that stop at min and at max and say why."""

from __future__ import annotations

import json
import math
import signal
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from orchestrator.adaptive import (
    Action,
    AdaptiveRule,
    Precision,
    next_step,
    precision,
    study_step,
)
from orchestrator.adaptive_state import add_seeds, with_stop
from orchestrator.commands.status import render_status, study_status
from orchestrator.config import load_study
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import ConfigError, StateError
from orchestrator.state import AdaptiveSeeds, RunRecord, RunStatus, StudyState
from orchestrator.state_store import load_state, save_state, state_from_payload, state_to_json
from orchestrator.study import plan_ledger
from tests.fake_worker import PROGRESS_FILE
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import (
    read_state,
    running_attempt,
    snapshot,
    tiny_config,
    wait_for,
    wait_gone,
    xorch,
)

RULE = AdaptiveRule(min_seeds=3, max_seeds=6, metric="val/loss", ci_halfwidth=0.01)


def t_halfwidth(values) -> float:
    """The 95% t interval's half-width, straight from scipy.stats.t."""
    data = np.asarray(values, dtype=float)
    return float(stats.t.ppf(0.975, data.size - 1) * np.std(data, ddof=1) / math.sqrt(data.size))


def adaptive_n_runs(min_seeds=2, max_seeds=4, metric="val/loss", width=0.01) -> dict:
    return {"min": min_seeds, "max": max_seeds, "until": {"metric": metric, "ci_halfwidth": width}}


def adaptive_config(out: Path, **n_runs) -> dict:
    return fixed_config(out, adaptive_n_runs(**n_runs))


def fixed_config(out: Path, n_runs) -> dict:
    config = tiny_config(out, seeds=None, n_runs=n_runs)
    config["pl_trainer"]["max_epochs"] = 1  # one epoch: these studies test seeds, not training
    return config


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    "values",
    [[0.5, 0.52], [0.31, 0.29, 0.35, 0.30], list(np.linspace(0.1, 0.9, 17)), [1.0, 1.0, 1.0]],
)
def test_the_halfwidth_is_scipys_t_interval(values):
    found = precision({None: values})
    assert found.n == len(values)
    assert found.halfwidth == pytest.approx(t_halfwidth(values), rel=1e-12, abs=1e-15)


def test_fewer_than_two_values_have_no_interval():
    assert precision({None: [0.4]}).halfwidth == math.inf
    assert precision({None: []}).n == 0
    step = next_step(RULE, {None: [0.4]}, seeds_tried=6)
    assert step.action is Action.STOP
    assert step.reason == "reached max 6 seeds, ci_halfwidth n/a (1 value)"


def test_non_finite_values_are_left_out_like_the_summarys_mean():
    found = precision({None: [0.5, float("nan"), 0.52, float("inf")]})
    assert found.n == 2
    assert found.halfwidth == pytest.approx(t_halfwidth([0.5, 0.52]), rel=1e-12)


def test_a_precise_mean_stops_and_says_why():
    values = [0.300, 0.301, 0.302]
    step = next_step(RULE, {None: values}, seeds_tried=3)
    assert step.action is Action.STOP
    width = t_halfwidth(values)
    assert width <= RULE.ci_halfwidth
    assert step.reason == f"ci_halfwidth {width:.3g} <= 0.01 after 3 seeds"


# (half-width, target, the reason): the printed comparison never contradicts
# itself; 0.018675 at 3 digits would read "0.0187 <= 0.01868".
ROUNDING = [
    (0.018675, 0.01868, "ci_halfwidth 0.01868 <= 0.01868 after 5 seeds"),
    (0.01871, 0.01868, "ci_halfwidth 0.0187 > 0.01868 after 5 seeds"),
    (0.00999, 0.01, "ci_halfwidth 0.00999 <= 0.01 after 5 seeds"),
    (0.0099999, 0.01, "ci_halfwidth 0.01 <= 0.01 after 5 seeds"),
    (0.0100000001, 0.01, "ci_halfwidth 0.0100000001 > 0.01 after 5 seeds"),
    (0.1 + 2**-56, 0.1, "ci_halfwidth 0.10000000000000002 > 0.1 after 5 seeds"),
    (0.01, 0.01, "ci_halfwidth 0.01 <= 0.01 after 5 seeds"),
    (0.0123456789, 0.0123456789, "ci_halfwidth 0.0123456789 <= 0.0123456789 after 5 seeds"),
    (0.5, math.inf, "ci_halfwidth 0.5 <= inf after 5 seeds"),
    (math.inf, 0.01, "reached max 6 seeds, ci_halfwidth n/a (5 values)"),
]


@pytest.mark.parametrize(("width", "target", "reason"), ROUNDING)
def test_the_printed_comparison_reads_as_the_real_one(monkeypatch, width, target, reason):
    import orchestrator.adaptive as adaptive

    monkeypatch.setattr(adaptive, "precision", lambda groups: Precision(5, width))
    rule = AdaptiveRule(min_seeds=3, max_seeds=6, metric="val/loss", ci_halfwidth=target)
    step = next_step(rule, {None: [0.0]}, seeds_tried=5 if math.isfinite(width) else 6)
    assert step.reason == reason
    printed = reason.split()
    if printed[2] in ("<=", ">"):  # the comparison as printed holds as decimals
        half, target_text = Decimal(printed[1]), Decimal(printed[3])
        assert (half <= target_text) == (printed[2] == "<=") == (width <= target)


def test_runs_in_flight_are_waited_for_before_stopping():
    values = [0.300, 0.301, 0.302]
    assert next_step(RULE, {None: values}, 4, seeds_in_flight=1).action is Action.WAIT
    assert next_step(RULE, {None: values}, 6, seeds_in_flight=1).action is Action.WAIT


def test_a_wide_interval_adds_one_seed_per_free_slot_up_to_max():
    values = [0.1, 0.5, 0.9]
    width = t_halfwidth(values)
    step = next_step(RULE, {None: values}, seeds_tried=3)
    assert (step.action, step.seeds) == (Action.MORE, 1)
    assert step.reason == f"ci_halfwidth {width:.3g} > 0.01 after 3 seeds"
    assert next_step(RULE, {None: values}, 3, free_slots=2).seeds == 2
    assert next_step(RULE, {None: values}, 5, free_slots=4).seeds == 1  # max is 6
    stop = next_step(RULE, {None: values}, seeds_tried=6)
    assert stop.action is Action.STOP
    assert stop.reason == f"reached max 6 seeds, ci_halfwidth {width:.3g} > 0.01"


def test_min_counts_values_in_hand_and_runs_in_flight():
    tight = [0.300, 0.300, 0.301]
    # Narrow already, but 3 values are the minimum: the run in flight is the third.
    assert next_step(RULE, {None: tight[:2]}, 3, seeds_in_flight=1).action is Action.WAIT
    # Nothing in flight, a seed lost: replace it (never stop on fewer than min values).
    step = next_step(RULE, {None: tight[:2]}, 3, seeds_failed=1)
    assert (step.action, step.seeds) == (Action.MORE, 1)
    assert step.reason == "2 of min 3 seeds in (1 failed)"


def test_variants_add_a_seed_for_all_until_every_variant_is_precise():
    groups = {"baseline": [0.300, 0.301, 0.302], "wide": [0.1, 0.5, 0.9]}
    step = next_step(RULE, groups, seeds_tried=3, free_slots=3, runs_per_seed=2)
    assert (step.action, step.seeds) == (Action.MORE, 2)  # 2 seeds x 2 variants fill 3 slots
    assert "(widest: wide)" in step.reason
    assert step.precision.halfwidth == pytest.approx(t_halfwidth(groups["wide"]), rel=1e-12)
    groups["wide"] = [0.300, 0.302, 0.301]
    done = next_step(RULE, groups, seeds_tried=3)
    assert done.action is Action.STOP
    assert done.reason.endswith("<= 0.01 for every variant after 3 seeds")


# --------------------------------------------------------------------------- a state


def state_of(outcomes: list[tuple[RunStatus, float | None]], rule=RULE, variants=()) -> StudyState:
    """A study of one config (or of ``variants``) whose seeds 0.. ended as given."""
    sequence = tuple(range(100, 100 + rule.max_seeds))
    names = list(variants) or [None]
    seeds = sequence[: len(outcomes) // len(names)]
    runs = []
    for i, (status, value) in enumerate(outcomes):
        seed = seeds[i // len(names)]
        runs.append(
            RunRecord(
                index=i,
                seed=seed,
                dir=f"run_{i}",
                status=status,
                metrics={} if value is None else {"val/loss": value},
                variant=names[i % len(names)],
            )
        )
    return StudyState(
        config_fingerprint="x",
        training_config={},
        seeds=seeds,
        runs=tuple(runs),
        variant_configs={n: {} for n in variants},
        adaptive=AdaptiveSeeds(rule, sequence),
    )


def test_failed_runs_do_not_count_and_their_seeds_count_toward_max():
    done = RunStatus.COMPLETED
    state = state_of([(done, 0.300), (RunStatus.FAILED, None), (done, 0.301), (done, 0.302)])
    step = study_step(state)
    assert step.precision.n == 3
    assert step.precision.halfwidth == pytest.approx(t_halfwidth([0.3, 0.301, 0.302]), rel=1e-12)
    assert step.action is Action.STOP and step.reason.endswith("after 3 seeds (1 failed)")


def test_a_study_whose_runs_all_fail_ends_at_max():
    state = state_of([(RunStatus.FAILED, None)] * 3)
    steps = 0
    while (step := study_step(state)).action is Action.MORE:
        state, added = add_seeds(state, step.seeds)
        runs = list(state.runs)
        for index in added:  # each new run fails for good too
            runs[index] = RunRecord(**{**vars(runs[index]), "status": RunStatus.FAILED})
        state = StudyState(**{**vars(state), "runs": tuple(runs)})
        steps += 1
        assert steps < 10, "the rule kept adding seeds"
    assert len(state.seeds) == RULE.max_seeds
    assert step.reason == "reached max 6 seeds (6 failed), ci_halfwidth n/a (0 values)"


def test_seeds_come_from_the_stored_sequence_for_every_variant():
    done = RunStatus.COMPLETED
    state = state_of([(done, 0.1), (done, 0.2)] * 3, variants=("a", "b"))
    state, added = add_seeds(state, 2)
    assert state.seeds == (100, 101, 102, 103, 104)
    assert [(state.runs[i].variant, state.runs[i].seed) for i in added] == [
        ("a", 103), ("b", 103), ("a", 104), ("b", 104),
    ]  # fmt: skip
    assert state.runs[added[0]].dir == "a/run_03_seed103"


def test_the_state_file_keeps_the_rule_the_sequence_and_the_verdict():
    state = state_of([(RunStatus.COMPLETED, 0.1)] * 3)
    state = with_stop(state, "reached max 6 seeds")
    payload = json.loads(state_to_json(state))
    assert payload["adaptive"] == {
        "min": 3,
        "max": 6,
        "until": {"metric": "val/loss", "ci_halfwidth": 0.01},
        "sequence": [100, 101, 102, 103, 104, 105],
        "stopped": "reached max 6 seeds",
    }
    assert state_from_payload(payload) == state
    payload["adaptive"]["sequence"][0] = 7  # the seeds run must be its first ones
    with pytest.raises(ValueError, match="does not start with the study's seeds"):
        state_from_payload(payload)
    plain = state_of([(RunStatus.COMPLETED, 0.1)] * 3)
    plain = StudyState(**{**vars(plain), "adaptive": None})
    assert "adaptive" not in json.loads(state_to_json(plain))


def test_status_says_how_far_the_seeds_got_in_one_line(tmp_path):
    paths = StudyPaths(tmp_path)
    state = state_of([(RunStatus.COMPLETED, 0.1), (RunStatus.RUNNING, None)] * 2)
    save_state(paths, state)
    shown = render_status(study_status(tmp_path)).splitlines()
    expected = (
        "adaptive seeds: 4 of max 6 so far, until the 95% CI of val/loss's mean is within ±0.01"
    )
    assert shown[-1] == expected
    save_state(paths, with_stop(state, "reached max 6 seeds, ci_halfwidth 0.2 > 0.01"))
    status = study_status(tmp_path)
    assert render_status(status).splitlines()[-1] == (
        "adaptive seeds: stopped: reached max 6 seeds, ci_halfwidth 0.2 > 0.01"
    )
    assert json.loads(render_status(status, as_json=True))["adaptive"] == status.adaptive


# --------------------------------------------------------------------------- config and resume


def plan(write_config, config: dict, resume: bool = False) -> StudyState:
    spec = load_study(write_config(config))
    return plan_ledger(spec, StudyPaths(spec.output_dir), resume).state


def test_the_whole_sequence_is_drawn_at_creation_and_min_seeds_are_planned(workdir, write_config):
    state = plan(write_config, adaptive_config(workdir / "out", min_seeds=3, max_seeds=12))
    assert state.adaptive is not None
    sequence = state.adaptive.sequence
    assert len(sequence) == 12 and len(set(sequence)) == 12
    assert all(0 <= s <= 2**31 - 1 for s in sequence)
    assert state.seeds == sequence[:3]
    assert [r.dir for r in state.runs] == [
        f"run_{i:02d}_seed{s}" for i, s in enumerate(state.seeds)
    ]
    assert load_state(StudyPaths(workdir / "out")) == state  # on disk before any run


def test_resume_keeps_the_sequence_and_may_change_the_rule(workdir, write_config):
    out = workdir / "out"
    first = plan(write_config, adaptive_config(out, min_seeds=2, max_seeds=4))
    assert first.adaptive is not None
    sequence = first.adaptive.sequence
    again = plan(write_config, adaptive_config(out, min_seeds=3, max_seeds=6, width=0.5), True)
    assert again.adaptive is not None
    assert again.adaptive.sequence[:4] == sequence and len(again.adaptive.sequence) == 6
    assert again.seeds == sequence[:3]  # the larger min is planned at once
    assert again.adaptive.rule == AdaptiveRule(3, 6, "val/loss", 0.5)
    with pytest.raises(StateError, match=r"n_runs\.max is 2 but the study has already run 3"):
        plan(write_config, adaptive_config(out, min_seeds=2, max_seeds=2), True)
    fixed = fixed_config(out, 3)
    with pytest.raises(StateError, match="resume it with its n_runs mapping"):
        plan(write_config, fixed, True)


def test_a_fixed_study_is_not_resumed_as_adaptive(workdir, write_config):
    out = workdir / "out"
    plan(write_config, fixed_config(out, 3))
    with pytest.raises(StateError, match="started with 3 fixed seeds; resume it with n_runs: 3"):
        plan(write_config, adaptive_config(out), True)


def test_a_smaller_max_on_resume_exits_2_with_one_line(workdir, write_config):
    out = workdir / "out"
    plan(write_config, adaptive_config(out, min_seeds=3, max_seeds=5))
    before = snapshot(out)
    path = write_config(adaptive_config(out, min_seeds=2, max_seeds=2))
    result = xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "experiments_runner.n_runs.max is 2" in lines[0], result.stderr
    after = snapshot(out)
    after.pop(".xorch-launch.lock")  # taken before the state is read, as for every resume
    assert after == before


BAD = {
    "min above max": (
        {"n_runs": adaptive_n_runs(min_seeds=5, max_seeds=3)},
        "experiments_runner.n_runs.min (5) is more than max (3); make min <= max",
    ),
    "min below 2": (
        {"n_runs": adaptive_n_runs(min_seeds=1)},
        "experiments_runner.n_runs.min must be an integer >= 2 (an interval needs two values)",
    ),
    "no metric": (
        {"n_runs": {"min": 2, "max": 4, "until": {"ci_halfwidth": 0.1}}},
        "experiments_runner.n_runs.until.metric is missing",
    ),
    "zero width": (
        {"n_runs": adaptive_n_runs(width=0)},
        "experiments_runner.n_runs.until.ci_halfwidth must be a number > 0",
    ),
    "negative width": (
        {"n_runs": adaptive_n_runs(width=-0.1)},
        "experiments_runner.n_runs.until.ci_halfwidth must be a number > 0",
    ),
    "metric not summarised": (
        {"n_runs": adaptive_n_runs(metric="val/F1Score")},
        "experiments_runner.n_runs.until.metric val/F1Score is not in summary_metrics [val/loss]",
    ),
    "with a seeds list": (
        {"n_runs": adaptive_n_runs(), "seeds": [1, 2, 3]},
        "experiments_runner.n_runs: a mapping (adaptive seeds) draws its own seeds",
    ),
    "unknown key": (
        {"n_runs": {**adaptive_n_runs(), "maximum": 9}},
        "experiments_runner.n_runs: unknown key 'maximum'",
    ),
    "unknown until key": (
        {"n_runs": {"min": 2, "max": 4, "until": {"metric": "val/loss", "ci_width": 0.1}}},
        "experiments_runner.n_runs.until: unknown key 'ci_width'",
    ),
    "adaptive as a runner key": (
        {"adaptive": adaptive_n_runs()},
        "experiments_runner: unknown key 'adaptive'",
    ),
    "max missing": (
        {"n_runs": {"min": 2, "until": {"metric": "val/loss", "ci_halfwidth": 0.1}}},
        "experiments_runner.n_runs.max is missing",
    ),
}


def bad_config(out: Path, block: dict) -> dict:
    config = tiny_config(out, seeds=None)
    config["experiments_runner"].update(block)
    return config


@pytest.mark.parametrize("mistake", list(BAD))
def test_bad_adaptive_blocks_name_the_key(workdir, write_config, mistake):
    block, expected = BAD[mistake]
    config = bad_config(workdir / "out", block)
    with pytest.raises(ConfigError) as caught:
        load_study(write_config(config))
    assert str(caught.value).startswith(expected)


@pytest.mark.parametrize("mistake", ["min above max", "metric not summarised", "with a seeds list"])
def test_bad_adaptive_input_exits_2_with_one_line_and_touches_nothing(
    workdir, write_config, mistake
):
    block, expected = BAD[mistake]
    path = write_config(bad_config(workdir / "out", block))
    before = snapshot(workdir)
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert snapshot(workdir) == before
    assert not (workdir / "out").exists()


# ---------------------------------------------------------------- studies of fake workers

# The fake worker's val/loss is its seed + 0.5, and drawn seeds lie up to 2**31 apart:
# no interval of two of them is wider than this (12.7 * 2**31 / 2 < 1.4e10).
HUGE = 1e11


def fake_adaptive_config(out: Path, steps: int = 2, acts=None, runner=None, **n_runs) -> dict:
    """An adaptive study of fake workers (tests/fake_worker.py): the parent's seed rule
    with real child processes that start in milliseconds."""
    block = {"n_runs": adaptive_n_runs(**n_runs), **(runner or {})}
    return fake_study_config(out, seeds=None, steps=steps, acts=acts, **block)


def test_a_huge_target_stops_at_min_and_a_tiny_one_runs_to_max(workdir, write_config):
    wide_out, tight_out = workdir / "wide", workdir / "tight"
    easy = write_config(fake_adaptive_config(wide_out, width=HUGE), "easy.yaml")
    result = fake_xorch("launch", str(easy), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(wide_out)
    assert len(state["runs"]) == 2 and len(state["adaptive"]["sequence"]) == 4
    assert state["seeds"] == state["adaptive"]["sequence"][:2]
    stopped = state["adaptive"]["stopped"]
    assert stopped.startswith("ci_halfwidth ") and stopped.endswith("<= 1e+11 after 2 seeds")
    assert f"adaptive seeds: stopped: {stopped}" in result.stdout
    assert "adding seed" not in result.stdout

    hard = write_config(fake_adaptive_config(tight_out, width=1e-12), "hard.yaml")
    result = fake_xorch("launch", str(hard), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(tight_out)
    assert [r["seed"] for r in state["runs"]] == state["adaptive"]["sequence"]
    assert all(r["status"] == "completed" for r in state["runs"])
    assert result.stdout.count("adding seed") == 2
    losses = [r["metrics"]["val/loss"] for r in state["runs"]]
    width = t_halfwidth(losses)
    assert state["adaptive"]["stopped"] == f"reached max 4 seeds, ci_halfwidth {width:.3g} > 1e-12"
    assert f"adaptive seeds: stopped: {state['adaptive']['stopped']}" in result.stdout

    status = xorch("status", str(tight_out), cwd=workdir)
    assert status.returncode == 0
    assert f"adaptive seeds: stopped: {state['adaptive']['stopped']}" in status.stdout.splitlines()

    # A resume with a larger max and a reachable target adds nothing: 4 seeds are enough.
    more = fake_adaptive_config(tight_out, max_seeds=6, width=HUGE)
    result = fake_xorch("launch", str(write_config(more, "more.yaml")), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting attempt" not in result.stdout
    state = read_state(tight_out)
    assert len(state["runs"]) == 4 and len(state["adaptive"]["sequence"]) == 6
    assert state["adaptive"]["stopped"].endswith("<= 1e+11 after 4 seeds")


def test_a_study_whose_runs_all_fail_stops_at_max_and_says_so(workdir, write_config):
    out = workdir / "out"
    never = {"*": {"*": {"do": "raise", "message": "this model never trains"}}}
    config = fake_adaptive_config(
        out, acts=never, runner={"max_retries": 0}, min_seeds=2, max_seeds=3
    )
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["failed"] * 3
    expected = "reached max 3 seeds (3 failed), ci_halfwidth n/a (0 values)"
    assert state["adaptive"]["stopped"] == expected
    assert f"adaptive seeds: stopped: {expected}" in result.stdout


def test_variants_get_the_same_added_seeds(workdir, write_config):
    out = workdir / "out"
    variants = {"base": {}, "worse": {"model.init_args.offset": 1.0}}
    config = fake_adaptive_config(
        out, runner={"variants": variants}, min_seeds=2, max_seeds=3, width=1e-12
    )
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    sequence = state["adaptive"]["sequence"]
    assert [(r["variant"], r["seed"]) for r in state["runs"]] == [
        (variant, seed) for seed in sequence for variant in ("base", "worse")
    ]
    assert state["adaptive"]["stopped"].startswith("reached max 3 seeds, ci_halfwidth ")
    assert "(widest: " in state["adaptive"]["stopped"]


def test_a_study_killed_after_adding_a_seed_resumes_with_the_stored_sequence(workdir, write_config):
    out = workdir / "out"
    # Each run trains for 10 steps (1 s): long enough to be caught training.
    config = fake_adaptive_config(out, steps=10, min_seeds=2, max_seeds=4, width=1e-12)
    path = write_config(config)
    parent = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(lambda: (out / "runner_state.json").exists(), what="state file")
        sequence = read_state(out)["adaptive"]["sequence"]
        # Run 2 exists only once the rule added the third seed.
        run2 = out / f"run_02_seed{sequence[2]}"
        wait_for(
            lambda: (run2 / PROGRESS_FILE).exists() and running_attempt(out, 2),
            what="the added run 2 training",
        )
        child_pid = running_attempt(out, 2)["pid"]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    wait_gone(child_pid, what="orphaned child to stop")

    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert state["adaptive"]["sequence"] == sequence  # never drawn again
    assert [r["seed"] for r in state["runs"]] == sequence
    assert [len(r["attempts"]) for r in state["runs"]] == [1, 1, 2, 1]
    assert state["adaptive"]["stopped"].startswith("reached max 4 seeds, ci_halfwidth ")
