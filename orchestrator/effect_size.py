"""Effect sizes of one group against a reference, and what a small sample can show.

Paired: ``d_z = mean(d) / sd(d)`` (Cohen's d_z, d the per-seed
  differences, sd with ddof=1) with its 95% interval from the noncentral t
  (``d_z_interval``), and ``hedges_g`` = g_av = ``diff / sqrt((s_a² +
  s_b²)/2) · J(n - 1)``, n the pairs (Cumming 2012; Lakens 2013): the average-std
  standardiser reads on the scale of an unpaired g, not growing with the
  correlation between seeds as d_z does. Unpaired: Hedges' g, the pooled std,
  ``J(n_a + n_b - 2)``. ``J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))``, the exact
  small-sample correction; ``g_kind`` names which g a row shows.

``wilcoxon_floor`` is the smallest p the exact Wilcoxon signed-rank test can give
(2 / 2^k on k non-zero differences), which ``inference.contrast`` notes when it
cannot reach 0.05.
"""

from __future__ import annotations

import math

from orchestrator.sample_stats import CONFIDENCE

__all__ = ["d_z_interval", "hedges_correction", "hedges_g", "wilcoxon_floor"]


def hedges_correction(df: float) -> float:
    """Hedges' exact small-sample factor J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))."""
    from scipy.special import gammaln

    return math.exp(gammaln(df / 2) - gammaln((df - 1) / 2)) / math.sqrt(df / 2)


def d_z_interval(d_z: float, pairs: int) -> tuple[float, float]:
    """The 95% interval of d_z on ``pairs`` pairs: t = d_z·sqrt(n) has a noncentral t
    distribution (df n - 1, noncentrality δ·sqrt(n)); the bounds are the δ at which
    the observed t is its 97.5% and 2.5% quantile (Steiger & Fouladi 1997)."""
    from scipy import optimize, stats

    df, root_n = pairs - 1, math.sqrt(pairs)
    t_obs = d_z * root_n
    bounds = []
    # The cdf at t_obs falls as the noncentrality grows: the lower bound lies below
    # t_obs, the upper above. Step out from t_obs until the tail is crossed (scipy's
    # nct is nan far out, so no wide fixed bracket), then solve on that step.
    for tail, way in ((0.5 + CONFIDENCE / 2, -1.0), (0.5 - CONFIDENCE / 2, 1.0)):

        def gap(ncp: float, tail: float = tail) -> float:
            return float(stats.nct.cdf(t_obs, df, ncp)) - tail

        near, step, bound = t_obs, 1.0, math.nan
        for _ in range(60):
            far = t_obs + way * step
            value = gap(far)
            if not math.isfinite(value):
                break
            if (value > 0) == (way < 0):
                bound = optimize.brentq(gap, min(near, far), max(near, far)) / root_n
                break
            near, step = far, step * 2
        bounds.append(bound)
    return bounds[0], bounds[1]


def wilcoxon_floor(pairs: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give on
    ``pairs`` non-zero differences: every sign alike, 2 / 2^pairs."""
    return 2.0 / 2.0**pairs if pairs > 0 else 1.0


def hedges_g(diff: float, n_x: int, n_y: int, var_x: float, var_y: float, paired: bool) -> float:
    """Paired: g_av = diff / sqrt((s_x² + s_y²)/2) · J(n - 1), n the pairs (Cumming
    2012, Lakens 2013). Unpaired: Hedges' g, the pooled std, J(n_x + n_y - 2)."""
    if paired:
        scale, df = math.sqrt((var_x + var_y) / 2), n_x - 1
    else:
        df = n_x + n_y - 2
        scale = math.sqrt(((n_x - 1) * var_x + (n_y - 1) * var_y) / df)
    if scale == 0 or df < 2:  # J(1) is Γ(0.5)/(√0.5 Γ(0)): 0; g is undefined
        return math.nan
    return diff / scale * hedges_correction(df)
