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
