"""scripts/sim_adaptive.py, kept honest: its figures against ones computed here
without it (the rule written out by hand, the metric's moments, a fixed-n
design whose coverage is known), so the README's table cannot silently rot."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from scripts.sim_adaptive import MEAN, Setting, draws, simulate, table

NORMAL = Setting(shape=0.0, sigma=0.02, min_seeds=3, max_seeds=30, ci_halfwidth=0.01)
SKEWED = Setting(shape=1.0, sigma=0.01, min_seeds=5, max_seeds=40, ci_halfwidth=0.005)


def by_hand(setting: Setting, reps: int, seed: int) -> tuple[float, float, float]:
    """Coverage, mean seeds and the paired false-positive rate, from the rule as
    the README states it: ``min`` seeds, then one more until every variant's 95%
    t half-width is <= the target, or ``max``."""
    rng = np.random.default_rng(seed)
    z_single = rng.standard_normal((reps, 1, setting.max_seeds))
    z_paired = rng.standard_normal((reps, 2, setting.max_seeds))

    def values(z: np.ndarray) -> np.ndarray:
        if setting.shape == 0:
            return MEAN + setting.sigma * z
        s2 = setting.shape**2
        scale = setting.sigma / math.sqrt((math.exp(s2) - 1) * math.exp(s2))
        return MEAN + scale * (np.exp(setting.shape * z) - math.exp(s2 / 2))

    def half(x: np.ndarray) -> float:
        return float(stats.t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x)))

    def stop(columns: np.ndarray) -> int:
        n = setting.min_seeds
        while n < setting.max_seeds and max(half(c[:n]) for c in columns) > setting.ci_halfwidth:
            n += 1
        return n

    covered, used, positive = 0, 0, 0
    for columns in values(z_single):
        n = stop(columns)
        x = columns[0][:n]
        covered += abs(np.mean(x) - MEAN) <= half(x)
        used += n
    for columns in values(z_paired):
        n = stop(columns)
        d = columns[0][:n] - columns[1][:n]
        t = np.mean(d) / (np.std(d, ddof=1) / math.sqrt(n))
        positive += 2 * stats.t.sf(abs(t), n - 1) < 0.05
    return covered / reps, used / reps, positive / reps


@pytest.mark.parametrize("setting", [NORMAL, SKEWED], ids=["normal", "lognormal"])
def test_the_simulation_drives_the_rule_as_the_readme_states_it(setting):
    got = simulate(setting, reps=40, seed=7)
    coverage, seeds, false_positive = by_hand(setting, reps=40, seed=7)
    assert got.coverage == pytest.approx(coverage, abs=1e-12)
    assert got.mean_seeds == pytest.approx(seeds, abs=1e-12)
    assert got.false_positive == pytest.approx(false_positive, abs=1e-12)


def test_the_metric_has_the_mean_and_spread_it_claims():
    rng = np.random.default_rng(3)
    for setting in (NORMAL, SKEWED):
        x = draws(setting, rng, (200_000,))
        assert np.mean(x) == pytest.approx(MEAN, abs=5 * setting.sigma / math.sqrt(x.size))
        assert np.std(x) == pytest.approx(setting.sigma, rel=0.05)
    assert stats.skew(x) > 3  # lognormal with s=1: skewness about 6


def test_a_fixed_number_of_seeds_covers_95_percent_and_the_paired_test_holds_5():
    fixed = Setting(shape=0.0, sigma=0.02, min_seeds=8, max_seeds=8, ci_halfwidth=1e-9)
    got = simulate(fixed, reps=400, seed=11)
    assert got.mean_seeds == got.mean_seeds_paired == 8
    se = math.sqrt(0.95 * 0.05 / 400)
    assert got.coverage == pytest.approx(0.95, abs=3 * se)
    assert got.false_positive == pytest.approx(0.05, abs=3 * se)


def test_the_table_prints_the_simulations_figures():
    printed = table(reps=30, seed=5, settings=[NORMAL]).splitlines()
    got = simulate(NORMAL, reps=30, seed=5)
    row = printed[2].split()
    assert row[0] == "normal"
    assert f"{got.coverage:.3f}" == row[6] and f"{got.mean_seeds:.1f}" == row[7]
    assert f"{got.false_positive:.3f}" in row[-2:]
