from __future__ import annotations

import math

from orchestrator.seed_table import SeedTable, SeedValue


def _table() -> SeedTable:
    rows = [SeedValue(None, None, "val/acc", s, 0.4) for s in range(6)]
    rows.append(SeedValue(None, None, "val/acc", 7, math.inf))
    return SeedTable(tuple(rows))


def test_non_finite_values_are_left_out_and_named_by_seed() -> None:
    table = _table()
    assert len(table.values("val/acc")) == 7
    assert sorted(table.finite("val/acc")) == [0, 1, 2, 3, 4, 5]
    assert table.not_finite_note("val/acc") == "1 non-finite: seed 7 inf"
    assert table.metrics() == ["val/acc"]


def test_describe_without_the_interval_has_the_same_mean_and_std() -> None:
    from orchestrator.seed_table import describe

    values = [0.4, float("inf"), 0.42, 0.47]
    whole, light = describe(values), describe(values, interval=False)
    assert (light.n, light.mean, light.std, light.not_finite) == (
        whole.n,
        whole.mean,
        whole.std,
        whole.not_finite,
    )
    assert math.isnan(light.ci_low) and math.isnan(light.ci_high)
    assert not math.isnan(whole.ci_low)
