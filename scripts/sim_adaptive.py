"""Adaptive seeds, measured: how often the stopping rule's final 95% interval
holds the true mean, and how often a paired test after it finds a difference
that is not there.

    python scripts/sim_adaptive.py [--reps 1000] [--seed 0]

The real rule (``orchestrator.adaptive.next_step`` with an ``AdaptiveRule``)
is driven one seed at a time (``free_slots=1``) on simulated values of a metric:
normal, or lognormal (skewed to the right, as a loss with the odd bad seed).
Each study draws its ``max`` values up front and uses a prefix, as a study uses
a prefix of its stored seed sequence. Two figures per setting:

- coverage: one config, stopped by the rule; the fraction of studies whose
  final 95% t interval of the mean contains the true mean (nominal 0.95);
- false positives: two variants with no true difference (independent draws of
  the same metric on each seed), a seed added for both until both intervals
  meet the target, as the rule does for variants; then
  ``scipy.stats.ttest_rel`` at alpha 0.05 (nominal 0.05).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

from orchestrator.adaptive import Action, AdaptiveRule, next_step

ALPHA = 0.05
MEAN = 0.5  # the metric's true mean (its location does not matter)


@dataclass(frozen=True)
class Setting:
    """A metric and a rule: ``shape`` 0 is normal, else the lognormal's sigma
    (of the log); ``sigma`` is the metric's standard deviation either way."""

    shape: float
    sigma: float
    min_seeds: int
    max_seeds: int
    ci_halfwidth: float

    @property
    def rule(self) -> AdaptiveRule:
        return AdaptiveRule(self.min_seeds, self.max_seeds, "metric", self.ci_halfwidth)

    @property
    def metric(self) -> str:
        return "normal" if self.shape == 0 else f"lognormal s={self.shape:g}"


@dataclass(frozen=True)
class Figures:
    coverage: float  # of the final 95% t interval, one config
    mean_seeds: float  # seeds used, one config
    false_positive: float  # paired t-test, two variants, no true difference
    mean_seeds_paired: float


SETTINGS = [
    Setting(shape, sigma, low, high, width)
    for shape in (0.0, 0.5, 1.0)
    for sigma, low, high, width in (
        (0.02, 3, 30, 0.01),
        (0.01, 5, 40, 0.005),
    )
]


def draws(setting: Setting, rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """Values of the metric with mean ``MEAN`` and standard deviation ``sigma``."""
    z = rng.standard_normal(size)
    if setting.shape == 0:
        return MEAN + setting.sigma * z
    s = setting.shape
    raw = np.exp(s * z)  # lognormal: mean e^(s²/2), std sqrt((e^(s²) - 1) e^(s²))
    scale = setting.sigma / math.sqrt((math.exp(s * s) - 1) * math.exp(s * s))
    return MEAN + scale * (raw - math.exp(s * s / 2))


def stopped_at(rule: AdaptiveRule, columns: np.ndarray) -> int:
    """How many seeds the rule runs on ``columns`` (variants x max values), one
    seed at a time: the values it has are each variant's first ones."""
    names: list[str | None] = [f"v{i}" for i in range(len(columns))] if len(columns) > 1 else [None]
    n = 0
    while True:
        groups = {name: list(row[:n]) for name, row in zip(names, columns, strict=True)}
        step = next_step(rule, groups, seeds_tried=n, free_slots=1, runs_per_seed=len(columns))
        if step.action is Action.STOP:
            return n
        assert step.action is Action.MORE, step
        n += step.seeds


def t_interval(values: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    n = len(values)
    half = float(stats.t.ppf(0.975, n - 1)) * float(np.std(values, ddof=1)) / math.sqrt(n)
    mean = float(np.mean(values))
    return mean - half, mean + half


def simulate(setting: Setting, reps: int, seed: int) -> Figures:
    """The figures of ``reps`` studies of each kind, from ``seed``."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    single = draws(setting, rng, (reps, 1, setting.max_seeds))
    paired = draws(setting, rng, (reps, 2, setting.max_seeds))
    covered, used, positive, used_paired = 0, 0, 0, 0
    for columns in single:
        n = stopped_at(setting.rule, columns)
        low, high = t_interval(columns[0][:n])
        covered += low <= MEAN <= high
        used += n
    for columns in paired:
        n = stopped_at(setting.rule, columns)
        positive += float(stats.ttest_rel(columns[0][:n], columns[1][:n]).pvalue) < ALPHA
        used_paired += n
    return Figures(covered / reps, used / reps, positive / reps, used_paired / reps)


def table(reps: int, seed: int, settings: list[Setting] = SETTINGS) -> str:
    head = (
        f"{'metric':<15} {'sigma':>6} {'min':>4} {'max':>4} {'target':>7} | "
        f"{'coverage':>8} {'seeds':>6} | {'fixed-n cov':>11} | {'paired FPR':>10} {'seeds':>6}"
    )
    lines = [head, "-" * len(head)]
    for i, setting in enumerate(settings):
        got = simulate(setting, reps, seed + i)
        # The same metric with the seeds fixed at about the adaptive mean: the
        # coverage the t interval has without optional stopping.
        fixed_n = max(2, round(got.mean_seeds))
        fixed = Setting(setting.shape, setting.sigma, fixed_n, fixed_n, setting.ci_halfwidth)
        anchor = simulate(fixed, reps, seed + i)
        lines.append(
            f"{setting.metric:<15} {setting.sigma:>6g} {setting.min_seeds:>4} "
            f"{setting.max_seeds:>4} {setting.ci_halfwidth:>7g} | {got.coverage:>8.3f} "
            f"{got.mean_seeds:>6.1f} | {anchor.coverage:>7.3f} n={fixed_n:<2} | "
            f"{got.false_positive:>10.3f} {got.mean_seeds_paired:>6.1f}"
        )
    se = math.sqrt(0.95 * 0.05 / reps)
    lines.append(f"({reps} studies a row; a coverage's standard error is about {se:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="studies per row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(table(args.reps, args.seed))


if __name__ == "__main__":
    main()
