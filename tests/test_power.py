"""orchestrator.commands.power and ``xorch power``: the seed counts and detectable differences are
statsmodels' solvers' answers, on a launched study (of fake workers) and on saved states."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from statsmodels.stats.power import TTestIndPower, TTestPower

from orchestrator.commands.power import Design, power_figures
from orchestrator.contract.paths import StudyPaths
from orchestrator.state import RunRecord, RunStatus, StudyState
from orchestrator.state_store import save_state
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import ended_attempts, saved_variant_study, snapshot, xorch

TOL = 1e-10


def close(x: float, y: float) -> bool:
    return abs(x - y) <= TOL * max(1.0, abs(y))


def saved_study(folder, values: dict[int, dict[str, float]]):
    """A study folder whose completed runs have ``values`` (seed -> metrics)."""
    runs = tuple(
        RunRecord(index=i, seed=seed, dir=f"run_{i:02d}_seed{seed}",
                  status=RunStatus.COMPLETED, attempts=ended_attempts(1.0),
                  metrics=metrics)
        for i, (seed, metrics) in enumerate(values.items())
    )  # fmt: skip
    state = StudyState(config_fingerprint="f", training_config={}, seeds=tuple(values),
                       runs=runs, summary_metrics=("val/loss",))  # fmt: skip
    folder.mkdir(parents=True)
    save_state(StudyPaths(folder), state)
    return folder


@pytest.mark.parametrize(
    ("design", "solver", "extra"),
    [(Design.PAIRED, TTestPower(), {}), (Design.ONE_SAMPLE, TTestPower(), {}),
     (Design.TWO_SAMPLE, TTestIndPower(), {"ratio": 1.0})],
)  # fmt: skip
@pytest.mark.parametrize(("std", "effect", "n"), [(0.012, 0.01, 5), (0.03, 0.01, 3), (0.5, 2.0, 8)])
def test_figures_are_the_statsmodels_solutions(design, solver, extra, std, effect, n):
    f = power_figures("val/acc", design, std, n, effect, alpha=0.05, power=0.8)
    needed = solver.solve_power(effect_size=effect / std, alpha=0.05, power=0.8, **extra)
    size = "nobs1" if design is Design.TWO_SAMPLE else "nobs"
    d = solver.solve_power(effect_size=None, alpha=0.05, power=0.8, **{size: n}, **extra)
    assert f.seeds_needed == max(2, math.ceil(needed))
    assert close(f.detectable, std * d) and close(f.effect_d, effect / std)
    # The solved size reaches the power; one seed fewer does not.
    achieved = solver.power(effect / std, f.seeds_needed, 0.05, **extra)
    assert achieved >= 0.8
    if f.seeds_needed > 2:
        assert solver.power(effect / std, f.seeds_needed - 1, 0.05, **extra) < 0.8


def test_edge_cases_say_why():
    flat = power_figures("m", Design.PAIRED, 0.0, 4, 0.01)
    assert flat.seeds_needed == 2 and flat.detectable == 0.0 and "no spread" in flat.note
    nan = power_figures("m", Design.PAIRED, math.nan, 4, 0.01)
    assert nan.seeds_needed is None and math.isnan(nan.detectable) and "no std yet" in nan.note
    huge = power_figures("m", Design.TWO_SAMPLE, 0.001, 4, 1.0)
    assert huge.seeds_needed == 2 and "2 seeds already" in huge.note
    no_effect = power_figures("m", Design.TWO_SAMPLE, 0.01, 4, None)
    assert no_effect.seeds_needed is None and no_effect.detectable > 0


def test_xorch_power_on_a_launched_study_matches_statsmodels(workdir, write_config):
    # A study of fake workers (tests/fake_worker.py): val/loss is seed + 0.5, so
    # these seeds spread it by ~39, and an effect of 20 asks for some tens of seeds.
    out = workdir / "out"
    config = fake_study_config(out, seeds=(42, 101, 28), summary_metrics=["val/loss", "val/acc"])
    launched = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    result = xorch("power", str(out), "--metric", "val/loss", "--effect", "20",
                   "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {row["design"]: row for row in json.loads(result.stdout)}
    state = json.loads((out / "runner_state.json").read_text())
    losses = np.array([r["metrics"]["val/loss"] for r in state["runs"]])
    std = float(np.std(losses, ddof=1))
    two = TTestIndPower().solve_power(effect_size=20 / std, alpha=0.05, power=0.8, ratio=1)
    one = TTestPower().solve_power(effect_size=20 / std, alpha=0.05, power=0.8)
    assert rows["two-sample"]["seeds_needed"] == math.ceil(two)
    assert rows["one-sample"]["seeds_needed"] == math.ceil(one)
    assert rows["two-sample"]["n"] == 3 and close(rows["two-sample"]["std"], std)
    detectable = TTestIndPower().solve_power(effect_size=None, nobs1=3, alpha=0.05, power=0.8)
    assert close(rows["two-sample"]["detectable"], std * detectable)


def test_two_studies_on_shared_seeds_use_the_paired_differences(tmp_path):
    rng = np.random.default_rng(3)
    base = rng.normal(0.5, 0.05, 6)
    shifted = base + 0.02 + rng.normal(0, 0.004, 6)  # strongly correlated by seed
    a = saved_study(tmp_path / "study a", {s: {"val/loss": float(v)} for s, v in
                                           zip(range(6), base, strict=True)})  # fmt: skip
    b = saved_study(tmp_path / "study b", {s: {"val/loss": float(v)} for s, v in
                                           zip(range(6), shifted, strict=True)})  # fmt: skip
    paired = json.loads(xorch("power", str(a), str(b), "--effect", "0.01", "-f", "json").stdout)
    std_d = float(np.std(shifted - base, ddof=1))
    assert paired[0]["design"] == "paired" and close(paired[0]["std"], std_d)
    want = TTestPower().solve_power(effect_size=0.01 / std_d, alpha=0.05, power=0.8)
    assert paired[0]["seeds_needed"] == math.ceil(want)
    unpaired = json.loads(
        xorch("power", str(a), str(b), "--effect", "0.01", "--unpaired", "-f", "json").stdout
    )
    # Ignoring the pairing throws the correlation away: far more seeds are needed.
    assert unpaired[0]["design"] == "two-sample"
    assert unpaired[0]["seeds_needed"] > 5 * paired[0]["seeds_needed"]


def test_bad_requests_are_one_line_and_exit_2(tmp_path):
    a = saved_study(tmp_path / "a", {1: {"val/loss": 0.5}, 2: {"val/loss": 0.6}})
    b = saved_study(tmp_path / "b", {3: {"val/loss": 0.5}, 4: {"val/loss": 0.6}})
    before = snapshot(tmp_path)
    for args, message in [
        ((str(a), "--paired", "--effect", "0.1"), "--paired needs two studies"),
        ((str(a), str(b), "--paired", "--effect", "0.1"), "share 0 seed"),
        ((str(a), "--alpha", "1.5"), "--alpha 1.5 must be between 0 and 1"),
        ((str(a), "--effect", "nan"), "--effect nan is not a number"),
        ((str(a), str(b), "--effect", "inf"), "--effect inf is not a number"),
        ((str(a), "-m", "val/acc"), "metric val/acc is not logged"),
        ((str(a), str(b), str(a)), "one or two study folders"),
        ((str(tmp_path / "missing"),), "no runner_state.json"),
    ]:
        result = xorch("power", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_xorch_power_on_a_variants_study_is_paired_per_variant_and_matches_statsmodels(tmp_path):
    rng = np.random.default_rng(7)
    seeds = tuple(range(1, 7))
    base = rng.normal(0.5, 0.05, 6)
    close_one = base + 0.01 + rng.normal(0, 0.005, 6)  # correlated with base by seed
    far_one = base + 0.3 + rng.normal(0, 0.02, 6)
    values = {"base": list(base), "close": list(close_one), "far": list(far_one)}
    root = tmp_path / "variants study"
    saved_variant_study(root, values, seeds, with_logs=False)
    result = xorch("power", str(root), "--metric", "val/loss", "--effect", "0.01", "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["variant"], r["vs"], r["design"]) for r in rows] == [
        ("close", "base", "paired"), ("far", "base", "paired")
    ]  # fmt: skip
    for row, other in zip(rows, (close_one, far_one), strict=True):
        std_d = float(np.std(other - base, ddof=1))  # the spread of the per-seed differences
        assert row["n"] == 6 and close(row["std"], std_d)
        want = TTestPower().solve_power(effect_size=0.01 / std_d, alpha=0.05, power=0.8)
        assert row["seeds_needed"] == max(2, math.ceil(want))
        d = TTestPower().solve_power(effect_size=None, nobs=6, alpha=0.05, power=0.8)
        assert close(row["detectable"], std_d * d)
    table = xorch("power", str(root), "-m", "val/loss", "--effect", "0.01").stdout
    assert table.split()[:4] == ["metric", "variant", "vs", "design"]

    # --unpaired: two-sample figures from the pooled std of the two variants.
    unpaired = json.loads(xorch("power", str(root), "-m", "val/loss", "--effect", "0.01",
                                "--unpaired", "-f", "json").stdout)  # fmt: skip
    pooled = math.sqrt((np.var(base, ddof=1) + np.var(close_one, ddof=1)) / 2)
    assert unpaired[0]["design"] == "two-sample" and close(unpaired[0]["std"], pooled)
    want = TTestIndPower().solve_power(effect_size=0.01 / pooled, alpha=0.05, power=0.8, ratio=1)
    assert unpaired[0]["seeds_needed"] == math.ceil(want)


def test_power_on_a_variants_study_still_running(tmp_path):
    values = {"base": [0.5, 0.6, 0.55], "new": [0.52, None, None]}
    root = tmp_path / "running"
    saved_variant_study(root, values, (1, 2, 3), with_logs=False)
    rows = json.loads(xorch("power", str(root), "-m", "val/loss", "-f", "json").stdout)
    assert rows[0]["variant"] == "new" and rows[0]["n"] == 1
    assert rows[0]["seeds_needed"] is None and "no std yet" in rows[0]["note"]
    nothing = tmp_path / "nothing yet"
    saved_variant_study(nothing, {"base": [None], "new": [0.5]}, (1,), with_logs=False)
    refused = xorch("power", str(nothing), "--effect", "0.1")
    assert refused.returncode == 2 and "reference variant base has no completed run" in (
        refused.stderr
    )
