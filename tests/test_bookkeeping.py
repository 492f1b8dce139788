"""Issue 23: the parent's bookkeeping must not grow with the study. summary.csv
is still rewritten after every run; comparison.csv after the first run that can
be compared, then on its timer, and in full at the end of every launch. What is
tested is what the files hold, never a time (scripts/bench_bookkeeping.py
measures that)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.commands.compare import comparison_csv
from orchestrator.contract.paths import StudyPaths
from orchestrator.state_store import load_state
from orchestrator.summary import (
    COMPARISON_EVERY_S,
    SummaryWriter,
    comparison_due,
    summary_marks,
    summary_text,
)
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import saved_variant_study


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [(None, 0.0, True), (100.0, 100.0, False), (100.0, 129.9, False), (100.0, 130.0, True)],
)
def test_comparison_due(last, now, due):
    assert COMPARISON_EVERY_S == 30.0
    assert comparison_due(last, now) is due


def _with_loss(state, index: int, loss: float):
    record = state.runs[index]
    changed = dataclasses.replace(record, metrics={**record.metrics, "val/loss": loss})
    return dataclasses.replace(state, runs=(*state.runs[:index], changed, *state.runs[index + 1 :]))


def test_summary_every_run_and_comparison_on_its_timer(tmp_path):
    state = saved_variant_study(
        tmp_path, {"a": [0.5, 0.4], "b": [0.3, 0.2]}, (1, 2), with_logs=False
    )
    paths = StudyPaths(tmp_path)
    now = [1000.0]
    writer = SummaryWriter(paths, clock=lambda: now[0])
    writer.after_run(state)
    assert paths.comparison.read_text() == comparison_csv(state)  # the first run: written

    now[0] += 10
    later = _with_loss(state, 3, 0.1)
    writer.after_run(later)
    # summary.csv is up to date after every run; comparison.csv waits for its timer.
    marks = summary_marks(later)
    assert paths.summary.read_text() == summary_text(later.completed, later.variant_configs, marks)
    assert "0.100000" in paths.summary.read_text()
    assert paths.comparison.read_text() == comparison_csv(state) != comparison_csv(later)

    now[0] += COMPARISON_EVERY_S
    writer.after_run(later)
    assert paths.comparison.read_text() == comparison_csv(later)


def test_a_variants_block_follows_its_values(tmp_path):
    """Each variant's block is reused while its values are unchanged: a changed
    value, or the same values under another variant, never gets a stale block."""
    state = saved_variant_study(
        tmp_path, {"a": [0.5, 0.4], "b": [0.5, 0.4]}, (1, 2), with_logs=False
    )
    first = summary_text(state.completed, state.variant_configs)
    assert "mean,a,-,1.00,0.550000,0.450000" in first
    assert "mean,b,-,1.00,0.550000,0.450000" in first
    changed = _with_loss(state, 1, 0.7)  # b on seed 1
    text = summary_text(changed.completed, changed.variant_configs)
    assert "mean,a,-,1.00,0.550000,0.450000" in text
    assert "mean,b,-,1.00,0.550000,0.550000" in text
    zero = _with_loss(changed, 1, -0.0)  # prints apart from 0.0: never taken from a cache
    assert "1,b,1,1.00,0.500000,-0.000000" in summary_text(zero.completed, zero.variant_configs)


def test_comparison_csv_is_complete_at_the_end_of_a_variants_launch(tmp_path):
    seeds = (3, 5, 8, 13)
    offsets = {"base": 0.0, "up": 0.25, "down": -0.5}
    variants = {name: ({"model.init_args.offset": o} if o else {}) for name, o in offsets.items()}
    out = tmp_path / "out"
    config = fake_study_config(out, seeds=seeds, variants=variants, max_parallel=2)
    config["experiments_runner"]["summary_metrics"] = ["val/loss"]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = fake_xorch("launch", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    state = load_state(StudyPaths(out))
    assert state is not None and len(state.completed) == 12
    written = (out / "comparison.csv").read_text()
    assert written == comparison_csv(state)  # every run of the launch is in it
    table = pd.read_csv(io.StringIO(written)).set_index(["metric", "group"])
    for name, offset in offsets.items():
        row = table.loc[("val/loss", name)]
        assert row["n"] == len(seeds)
        # val/loss = seed + 0.5 + offset in the fake worker
        assert row["mean"] == pytest.approx(sum(seeds) / len(seeds) + 0.5 + offset)
        if name != "base":
            assert row["vs"] == "base" and row["n_pairs"] == len(seeds)
            assert row["diff"] == pytest.approx(offset)
    assert Path(out / "summary.csv").read_text().count("\nmean,") == 3


def test_a_summary_kept_run_by_run_is_the_summary_made_afresh(tmp_path):
    """Each block is kept with its records and rebuilt from the rows of those it
    kept (issue 20): after every run, in a study of one config and one of
    variants, the text equals the one made with every cache emptied."""
    from orchestrator import summary
    from orchestrator.state import Attempt, AttemptClass

    for losses in ({"a": [0.5, 0.0, 0.25]}, {"a": [0.5, 0.4, 0.3], "b": [-0.0, 0.1, 0.2]}):
        full = saved_variant_study(tmp_path / str(len(losses)), losses, (1, 2, 3), with_logs=False)
        if len(losses) == 1:  # a study of one config: no variant names
            runs = tuple(dataclasses.replace(r, variant=None) for r in full.runs)
            full = dataclasses.replace(full, runs=runs, variant_configs={}, compare_to=None)
        state = dataclasses.replace(
            full, runs=tuple(dataclasses.replace(r, status=r.status.PENDING) for r in full.runs)
        )
        for record in full.runs:
            attempt = Attempt(number=1, started_at="2026-01-01T00:00:00+00:00", log="x")
            state = state.start_attempt(record.index, attempt)
            done = dataclasses.replace(
                attempt, attempt_class=AttemptClass.COMPLETED, duration_s=record.index / 3
            )
            state = state.finish_attempt(record.index, done, record.metrics)
            kept = summary_text(state.completed, state.variant_configs, summary_marks(state))
            summary._last_block.clear()
            summary._cached_row.cache_clear()
            afresh = summary_text(state.completed, state.variant_configs, summary_marks(state))
            assert kept == afresh
        assert kept.count("\n") == len(full.runs) + 2 * len(losses) + 1
