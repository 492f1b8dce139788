#!/usr/bin/env python
"""The parent's bookkeeping per run in a large study of variants, printed as medians.

    python scripts/bench_bookkeeping.py [--samples 5] [--full-samples 3] [--seeds 1 20]

A study of 500 variants x 1 seed and 500 x 20 seeds (10,000 runs) is built in
memory with the real state code (no child, no training): every run completed
but the last few, with random val/loss and val/acc. Each sample then does what
the parent does for one run in a pass of its loop: ``Ledger.finish_attempt``
recorded later, ``Ledger.start_attempt`` of the next run (one state save for
both), then the summary files.

- "summary + comparison every run": ``summary.write_summary``, both files in
  full after every run (what the parent did before issue 23's fix);
- "per run now": ``summary.SummaryWriter.after_run`` as the scheduler calls it,
  once its first comparison is written: summary.csv in full, comparison.csv
  only when ``COMPARISON_EVERY_S`` has passed (not within a sample);
- "comparison.csv alone": what the writer pays at most every
  ``COMPARISON_EVERY_S`` and at the end of a launch.

Goal (issue 23): at most 50 ms per run at 500 variants and at 10,000 runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator import summary  # noqa: E402
from orchestrator.contract.paths import StudyPaths, run_dir_name  # noqa: E402
from orchestrator.ledger import Ledger  # noqa: E402
from orchestrator.state import Attempt, AttemptClass, RunRecord, RunStatus, StudyState  # noqa: E402

VARIANTS = 500
PENDING = 12  # runs left pending at the end, finished by the samples (at most 11)


def variant_study(variants: int, seeds: int, rng: random.Random) -> StudyState:
    """``variants`` x ``seeds`` runs in planning order (seed by seed), all completed
    but the last ``PENDING``."""
    names = [f"v{i:03d}" for i in range(variants)]
    runs = []
    for position in range(seeds):
        for name in names:
            index = len(runs)
            folder = run_dir_name(position, 1000 + position, seeds, name)
            record = RunRecord(index=index, seed=1000 + position, dir=folder, variant=name)
            if index < variants * seeds - PENDING:
                attempt = _attempt(AttemptClass.COMPLETED)
                record = dataclasses.replace(
                    record, status=RunStatus.COMPLETED,
                    metrics=_metrics(rng), attempts=(attempt,),
                )  # fmt: skip
            runs.append(record)
    return StudyState(
        config_fingerprint="0" * 64,
        training_config={"model": {"lr": 0.1}},
        seeds=tuple(1000 + p for p in range(seeds)),
        runs=tuple(runs),
        summary_metrics=("val/loss", "val/acc"),
        variant_configs={name: {"model": {"lr": 0.1 + i}} for i, name in enumerate(names)},
        compare_to=names[0],
        goal={"val/loss": "min", "val/acc": "max"},
    )


def _attempt(outcome: AttemptClass | None = None) -> Attempt:
    attempt = Attempt(number=1, started_at="2026-01-01T00:00:00+00:00", log="x", pid=1)
    if outcome is None:
        return attempt
    return dataclasses.replace(attempt, attempt_class=outcome, duration_s=1.0)


def _metrics(rng: random.Random) -> dict[str, float]:
    loss = rng.uniform(0.2, 0.6)
    return {"val/loss": loss, "val/acc": 1.0 - loss + rng.gauss(0, 0.01)}


Bookkeeping = Callable[[StudyPaths], Callable[[StudyState], object]]


def per_run_ms(state: StudyState, samples: int, make: Bookkeeping) -> float:
    """The median of ``samples`` runs' bookkeeping: one state save (a verdict and
    the next start), then what ``make`` gives for the study folder."""
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = StudyPaths(Path(tmp))
        ledger = Ledger(paths, state)
        ledger.record_plan(state)
        bookkeeping = make(paths)
        bookkeeping(ledger.state)  # the files exist, as after the first run
        pending = [r.index for r in state.runs if r.status is RunStatus.PENDING]
        ledger.start_attempt(pending[0], _attempt())
        times = []
        for running, following in itertools.pairwise(pending[: samples + 1]):
            # One pass of the scheduler's loop: the verdict recorded later, the
            # next start saved with it (one save), then the summary files.
            begin = time.perf_counter()
            finished = _attempt(AttemptClass.COMPLETED)
            ledger.finish_attempt(running, finished, _metrics(rng), later=True)
            ledger.start_attempt(following, _attempt())
            bookkeeping(ledger.flush())
            times.append(time.perf_counter() - begin)
        return 1000 * statistics.median(times)


def comparison_ms(state: StudyState, samples: int) -> float:
    from orchestrator.commands.compare import comparison_csv

    times = []
    for _ in range(samples):
        begin = time.perf_counter()
        comparison_csv(state)
        times.append(time.perf_counter() - begin)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=9, help="runs timed per figure")
    parser.add_argument("--full-samples", type=int, default=3, help="runs timed in full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()
    writer_cls = getattr(summary, "SummaryWriter", None)
    rows: list[tuple[str, str, float]] = []
    for seeds in args.seeds:
        state = variant_study(VARIANTS, seeds, random.Random(seeds))
        label = f"{VARIANTS} x {seeds} ({VARIANTS * seeds} runs)"
        full = per_run_ms(state, args.full_samples, lambda p: partial(summary.write_summary, p))
        rows.append((label, "summary + comparison every run", full))
        if writer_cls is not None:  # one writer per launch, as the scheduler keeps it
            now = per_run_ms(state, args.samples, lambda p: writer_cls(p, time.monotonic).after_run)
            rows.append((label, "per run now", now))
        rows.append((label, "comparison.csv alone", comparison_ms(state, args.full_samples)))
    width = max(len(label) for label, _, _ in rows)
    print(f"{'study':<{width}}  {'bookkeeping':<31}  median ms")
    for label, what, ms in rows:
        print(f"{label:<{width}}  {what:<31}  {ms:9.1f}")


if __name__ == "__main__":
    main()
