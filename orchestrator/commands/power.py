"""``xorch power``: how many seeds a comparison needs, and what the current seeds can detect.

Power analysis for a t-test (two-sided), from the spread a study has shown:

- ``paired`` (two groups that share seeds): the std of the per-seed differences;
  a one-sample t-test on the differences (statsmodels ``TTestPower``). Seeds
  needed = pairs needed.
- ``two-sample`` (independent groups; one study against a future change of it):
  the runs' std (for two studies, the pooled std); Student's two-sample t-test
  with as many seeds in each group (statsmodels ``TTestIndPower``). Seeds needed
  = seeds per group.
- ``one-sample`` (one study against a fixed number, e.g. a published score):
  the runs' std, ``TTestPower``.

One study of one config cannot give the std of paired differences (that needs a
second config on the same seeds), so it gets the two-sample and one-sample
figures. A study of variants has that second config: each variant against the
reference (``compare_to``) gets paired figures from its per-seed differences on
the seeds both completed (``power_for_variants``; two-sample with the pooled std
when asked ``paired=False``). Those rows name the variant and its reference.

``effect`` is a difference in the metric's own units; the solvers take it in
std units (Cohen's d = effect / std). ``seeds_needed`` is the solver's sample
size rounded up (never below 2, the least a t-test needs). ``detectable`` is the
smallest difference the current seeds detect with the given power: the solved
effect size times the std.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.commands.compare import state_groups, variant_groups
from orchestrator.errors import XorchError
from orchestrator.state import StudyState
from orchestrator.tables import Cell, render_rows

__all__ = [
    "POWER_COLUMNS",
    "VARIANT_POWER_COLUMNS",
    "Design",
    "PowerAsk",
    "PowerFigures",
    "detectable_effect",
    "power_figures",
    "power_for_studies",
    "power_for_study",
    "power_for_variants",
    "power_records",
    "power_rows",
    "render_power",
]

POWER_COLUMNS: tuple[str, ...] = (
    "metric", "design", "n", "std", "effect", "effect_d", "alpha", "power",
    "seeds_needed", "detectable", "note",
)  # fmt: skip
# A study of variants: which variant against which reference, after the metric.
VARIANT_POWER_COLUMNS: tuple[str, ...] = (POWER_COLUMNS[0], "variant", "vs", *POWER_COLUMNS[1:])


class Design(str, enum.Enum):
    PAIRED = "paired"
    TWO_SAMPLE = "two-sample"
    ONE_SAMPLE = "one-sample"


@dataclass(frozen=True)
class PowerAsk:
    """What the figures are asked for: the difference to detect (``effect``, in the
    metric's units; None: only the difference the seeds can detect), at ``alpha`` with
    ``power``. Checked (``_check_levels``) before any study is read."""

    effect: float | None = None
    alpha: float = 0.05
    power: float = 0.8


@dataclass(frozen=True)
class PowerFigures:
    """Seeds needed for ``effect`` and the difference ``n`` seeds can detect, for one metric."""

    metric: str
    design: Design
    n: int  # pairs (paired), seeds per group (two-sample: the smaller group), or seeds
    std: float
    effect: float  # in the metric's units; nan when none was asked for
    alpha: float
    power: float
    seeds_needed: int | None
    detectable: float
    note: str = ""
    variant: str = ""  # a study of variants: the variant compared ...
    vs: str = ""  # ... with this reference

    @property
    def effect_d(self) -> float:
        return self.effect / self.std if self.std > 0 else math.nan


def _solver(design: Design) -> object:
    # sm_exceptions installs "always" filters for its warnings when first imported; import
    # it here, not first inside _solve's catch_warnings, where they would beat our "ignore".
    import statsmodels.tools.sm_exceptions  # noqa: F401
    from statsmodels.stats.power import TTestIndPower, TTestPower

    return TTestIndPower() if design is Design.TWO_SAMPLE else TTestPower()


def _solve(design: Design, alpha: float, power: float, **unknowns: float | None) -> float:
    """statsmodels' solve_power for the design; nan where the root finder fails."""
    solver = _solver(design)
    size = "nobs1" if design is Design.TWO_SAMPLE else "nobs"
    if "nobs" in unknowns:
        unknowns[size] = unknowns.pop("nobs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a failed fit warns and returns nan: we report it
        try:
            value = solver.solve_power(alpha=alpha, power=power, **unknowns)  # type: ignore[attr-defined]
        except (ValueError, RuntimeError):
            return math.nan
    return float(np.asarray(value).item())


def detectable_effect(
    design: Design, std: float, n: int, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> float:
    """Smallest difference (metric units) that ``n`` seeds detect; nan if n < 2 or std undefined."""
    if n < 2 or not math.isfinite(std):
        return math.nan
    if std == 0:
        return 0.0
    extra = {"ratio": ratio} if design is Design.TWO_SAMPLE else {}
    return std * _solve(design, alpha, power, effect_size=None, nobs=n, **extra)


def power_figures(
    metric: str,
    design: Design,
    std: float,
    n: int,
    effect: float | None,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> PowerFigures:
    """The figures for one metric from a std (of differences where paired) and ``n`` seeds."""
    effect_value = math.nan if effect is None else abs(effect)
    figures = PowerFigures(metric, design, n, std, effect_value, alpha, power, None, math.nan)
    if not math.isfinite(std):
        return _with(figures, note="no std yet: fewer than two finite values")
    detectable = detectable_effect(design, std, n, alpha, power, ratio)
    figures = _with(figures, detectable=detectable)
    if effect is None:
        return figures
    if effect_value == 0:
        return _with(figures, note="an effect of 0 cannot be detected")
    if std == 0:
        return _with(figures, seeds_needed=2, note="no spread: 2 seeds detect any difference")
    d = effect_value / std
    extra = {"ratio": 1.0} if design is Design.TWO_SAMPLE else {}
    needed = _solve(design, alpha, power, effect_size=d, nobs=None, **extra)
    if math.isnan(needed):
        # The root finder fails when even 2 seeds give more than the asked power.
        at_two = _solver(design).power(d, 2, alpha, **extra)  # type: ignore[attr-defined]
        if at_two >= power:
            return _with(figures, seeds_needed=2, note="2 seeds already reach the power")
        return _with(figures, note="the power solver did not converge")
    return _with(figures, seeds_needed=max(2, math.ceil(needed)))


def _with(figures: PowerFigures, **changes: object) -> PowerFigures:
    from dataclasses import replace

    return replace(figures, **changes)  # type: ignore[arg-type]


def _std(values: Sequence[float]) -> float:
    data = np.asarray(values, dtype=float)
    if data.size < 2 or not np.isfinite(data).all():
        return math.nan
    return 0.0 if np.ptp(data) == 0 else float(np.std(data, ddof=1))


def _check_metrics(metrics: Sequence[str], available: Mapping[str, object], where: str) -> None:
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise XorchError(
            f"metric {', '.join(unknown)} is not logged by {where}; "
            f"available: {', '.join(sorted(available)) or 'none'}"
        )


def power_for_study(
    state: StudyState, metrics: Sequence[str] | None, ask: PowerAsk
) -> list[PowerFigures]:
    """Two-sample and one-sample figures per metric (default: the study's summary_metrics)."""
    _check_levels(ask)
    if not state.completed:
        raise XorchError("the study has no completed run yet: there is no spread to work from")
    values = state_groups(state)
    chosen = list(dict.fromkeys(metrics or [m for m in state.summary_metrics if m in values]))
    _check_metrics(chosen, values, "the study's completed runs")
    rows = []
    for metric in chosen:
        sample, left_out = _finite(values[metric])
        std, n = _std(list(sample.values())), len(sample)
        for design in (Design.TWO_SAMPLE, Design.ONE_SAMPLE):
            figures = power_figures(metric, design, std, n, ask.effect, ask.alpha, ask.power)
            rows.append(_noted(figures, _left_out_note(left_out)))
    return rows


def _finite(values: Mapping[int, float]) -> tuple[dict[int, float], list[int]]:
    """The finite values (the seed table's rule) and the seeds left out."""
    kept = {seed: v for seed, v in values.items() if math.isfinite(v)}
    return kept, [seed for seed in values if seed not in kept]


def _left_out_note(seeds: Sequence[int], what: str = "not finite, left out") -> str:
    return f"{len(seeds)} {what}: seed {', '.join(map(str, seeds))}" if seeds else ""


def _noted(figures: PowerFigures, note: str) -> PowerFigures:
    if not note:
        return figures
    return _with(figures, note="; ".join(n for n in (note, figures.note) if n))


def power_for_studies(
    state_a: StudyState,
    state_b: StudyState,
    metrics: Sequence[str] | None,
    ask: PowerAsk,
    paired: bool | None = None,
) -> list[PowerFigures]:
    """Figures for comparing two studies: paired (by default) when they ran the same
    seeds, two-sample otherwise; ``paired=True`` pairs on the shared seeds."""
    _check_levels(ask)
    for label, state in (("first (A)", state_a), ("second (B)", state_b)):
        if not state.completed:
            raise XorchError(f"the {label} study has no completed run yet")
    values_a, values_b = state_groups(state_a), state_groups(state_b)
    common = {m: None for m in values_a if m in values_b}
    default = [m for m in state_a.summary_metrics if m in common] or sorted(common)
    chosen = list(dict.fromkeys(metrics or default))
    _check_metrics(chosen, common, "both studies")
    rows = []
    for metric in chosen:
        a, b = values_a[metric], values_b[metric]
        shared = sorted(set(a) & set(b))
        # Pairing by design: two studies are paired when they ran the same seeds.
        use_paired = (set(a) == set(b) and len(shared) >= 2) if paired is None else paired
        if use_paired and len(shared) < 2:
            raise XorchError(
                f"the studies share {len(shared)} seed(s) on {metric}: paired power needs "
                "at least two; use --unpaired"
            )
        figures = _pair_figures(metric, a, b, use_paired, ask)
        if paired is None and not use_paired and len(shared) >= 2:
            said = (f"the studies share {len(shared)} of their seeds, not all: two-sample "
                    "figures (--paired: paired on the shared)")  # fmt: skip
            figures = _noted(figures, said)
        rows.append(figures)
    return rows


def power_for_variants(
    state: StudyState,
    metrics: Sequence[str] | None,
    ask: PowerAsk,
    paired: bool | None = None,
) -> list[PowerFigures]:
    """Figures per metric for each variant against the reference, paired on the seeds
    both completed (unless ``paired`` is False: two-sample, pooled std). A variant
    with fewer than two such seeds gets a row whose note says there is no std yet."""
    _check_levels(ask)
    if not state.variant_configs:
        raise XorchError("this study has no variants: give a second study to compare with")
    reference = state.compare_to or next(iter(state.variant_configs))
    groups = variant_groups(state)
    if not groups[reference]:
        raise XorchError(
            f"the reference variant {reference} has no completed run yet: no spread to work from"
        )
    logged = {m: None for values in groups.values() for m in values}
    default = [m for m in state.summary_metrics if m in logged] or sorted(logged)
    chosen = list(dict.fromkeys(metrics or default))
    _check_metrics(chosen, logged, "any variant's completed runs")
    rows = []
    for metric in chosen:
        base = groups[reference].get(metric, {})
        for variant, values in groups.items():
            if variant == reference:
                continue
            mine = values.get(metric, {})
            figures = _pair_figures(metric, base, mine, paired is not False, ask)
            rows.append(_with(figures, variant=variant, vs=reference))
    return rows


def _pair_figures(
    metric: str,
    a: Mapping[int, float],
    b: Mapping[int, float],
    paired: bool,
    ask: PowerAsk,
) -> PowerFigures:
    """B against A: paired on the shared seeds (std of ``b - a``), or two-sample; a
    value that is not finite is left out (in a pair, with its partner)."""
    effect, alpha, power = ask.effect, ask.alpha, ask.power
    if paired:
        shared = sorted(set(a) & set(b))
        dropped = [s for s in shared if not (math.isfinite(a[s]) and math.isfinite(b[s]))]
        kept = [s for s in shared if s not in dropped]
        diffs = [b[s] - a[s] for s in kept]
        figures = power_figures(metric, Design.PAIRED, _std(diffs), len(kept), effect, alpha,
                                power)  # fmt: skip
        return _noted(figures, _left_out_note(dropped, "pair(s) dropped, a side not finite"))
    (a, bad_a), (b, bad_b) = _finite(a), _finite(b)
    note = _left_out_note([*bad_a, *bad_b])
    if not a or not b:
        figures = power_figures(metric, Design.TWO_SAMPLE, math.nan, 0, effect, alpha, power)
        return _noted(figures, note)
    std = _pooled_std(list(a.values()), list(b.values()))
    n = min(len(a), len(b))
    ratio = max(len(a), len(b)) / n
    figures = power_figures(metric, Design.TWO_SAMPLE, std, n, effect, alpha, power, ratio)
    return _noted(figures, note)


def _pooled_std(a: Sequence[float], b: Sequence[float]) -> float:
    std_a, std_b = _std(a), _std(b)
    if not (math.isfinite(std_a) and math.isfinite(std_b)):
        return math.nan
    df = len(a) + len(b) - 2
    return math.sqrt(((len(a) - 1) * std_a**2 + (len(b) - 1) * std_b**2) / df)


def _check_levels(ask: PowerAsk) -> None:
    if ask.effect is not None and not math.isfinite(ask.effect):
        raise XorchError(
            f"--effect {ask.effect} is not a number: give a finite difference (e.g. 0.01)"
        )
    if not 0 < ask.alpha < 1:
        raise XorchError(f"--alpha {ask.alpha} must be between 0 and 1 (e.g. 0.05)")
    if not 0 < ask.power < 1:
        raise XorchError(f"--power {ask.power} must be between 0 and 1 (e.g. 0.8)")


def power_rows(
    states: Sequence[StudyState],
    metrics: Sequence[str] | None,
    ask: PowerAsk,
    paired: bool | None = None,
) -> list[PowerFigures]:
    """``xorch power``'s rows for one study (its variants, or a future change of it) or
    two (comparing them)."""
    if len(states) not in (1, 2):
        raise XorchError(f"give one or two study folders, not {len(states)}")
    if len(states) == 2:
        return power_for_studies(states[0], states[1], metrics, ask, paired)
    (state,) = states
    if state.variant_configs:
        return power_for_variants(state, metrics, ask, paired)
    if paired:
        raise XorchError(
            "--paired needs two studies on the same seeds (the spread of their "
            "differences); one study gives two-sample and one-sample figures"
        )
    return power_for_study(state, metrics, ask)


def power_records(rows: Sequence[PowerFigures]) -> tuple[tuple[str, ...], list[list[Cell]]]:
    """The columns and one record per row; rows of a study of variants get the
    ``variant`` and ``vs`` columns."""
    named = any(r.variant for r in rows)
    records: list[list[Cell]] = [
        [r.metric, *([r.variant, r.vs] if named else []), r.design.value, r.n, r.std, r.effect,
         r.effect_d, r.alpha, r.power, math.nan if r.seeds_needed is None else r.seeds_needed,
         r.detectable, r.note]
        for r in rows
    ]  # fmt: skip
    return (VARIANT_POWER_COLUMNS if named else POWER_COLUMNS), records


def render_power(rows: Sequence[PowerFigures], fmt: str = "table") -> str:
    """``rows`` as ``fmt`` (table, markdown, latex, csv, json), ending in a newline."""
    return render_rows(*power_records(rows), fmt)
