"""``xorch status DIR``: where a study stands, readable while it runs.

It only reads: runner_state.json (replaced atomically, so never seen half
written; no lock taken, so the study is never blocked) and the heartbeat of each
running run for its current epoch.

A metric that is not a number (a diverged seed) shows as ``nan``, ``inf`` or
``-inf``, and a line under the table counts such runs per summary metric, as
summary.csv's mean row leaves them out. ``--json`` stays strict JSON: those
values are the strings ``"nan"``, ``"inf"`` and ``"-inf"`` there.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestrator.contract.lease_paths import LeasePaths
from orchestrator.contract.paths import StudyPaths
from orchestrator.contract.records import Heartbeat
from orchestrator.gpu_leases import LeaseView, read_leases
from orchestrator.representative import standout_lines
from orchestrator.seed_table import seed_table, split_finite
from orchestrator.state import RunRecord, RunStatus, StudyState
from orchestrator.state_store import load_study_state
from orchestrator.summary import format_number
from orchestrator.tables import aligned_lines

__all__ = [
    "RunRow",
    "StudyStatus",
    "VariantProgress",
    "render_status",
    "run_status_label",
    "study_status",
]


@dataclass(frozen=True)
class RunRow:
    run: int
    variant: str | None  # None in a study of one config
    seed: int
    status: str  # pending, running, completed, interrupted, or the failure class
    attempt: int
    duration_s: float | None
    epoch: str | None  # "3/50" for a running run, from its heartbeat
    metrics: dict[str, float]
    gpus: str | None = None  # CUDA_VISIBLE_DEVICES of its latest attempt ("2,3"), if any
    fold: int | None = None  # its fold, in a study with folds


@dataclass(frozen=True)
class VariantProgress:
    """One variant's runs: how many, and how many per status or failure class."""

    total: int
    counts: dict[str, int]


@dataclass(frozen=True)
class StudyStatus:
    root: Path
    total: int
    counts: dict[str, int]
    summary_metrics: tuple[str, ...]
    rows: tuple[RunRow, ...]
    # summary metric -> "1 run not finite: inf", for those with such values
    # (a study of variants: "val/loss (wide)" -> ...)
    not_finite: dict[str, str] = field(default_factory=dict)
    # a study of variants: variant -> its runs (total) and status -> count, config order
    variants: dict[str, VariantProgress] = field(default_factory=dict)
    adaptive: str | None = None  # adaptive seeds: why they stopped, or how far they got
    # the representative and the best run, one line per variant (orchestrator.representative)
    standouts: tuple[str, ...] = ()
    # this machine's GPU leases held now, by any xorch process (orchestrator.gpu_leases)
    leases: tuple[LeaseView, ...] = ()


def study_status(study_dir: Path) -> StudyStatus:
    paths = StudyPaths(Path(study_dir).resolve())
    state = load_study_state(paths)
    rows = []
    counts: dict[str, int] = {}
    per_variant: dict[str, dict[str, int]] = {v: {} for v in state.variant_configs}
    for record in state.runs:
        status = run_status_label(record)
        counts[status] = counts.get(status, 0) + 1
        if record.variant is not None:
            mine = per_variant.setdefault(record.variant, {})
            mine[status] = mine.get(status, 0) + 1
        duration = record.duration_s
        epoch = None
        if record.status is RunStatus.RUNNING:
            beat = Heartbeat.read(paths.run(record.dir).heartbeat)
            epoch = beat.epoch_text if beat is not None else None
            if record.current_attempt and record.current_attempt.pid:
                duration = None
        metrics = {m: record.metrics[m] for m in state.summary_metrics if m in record.metrics}
        rows.append(
            RunRow(
                record.index,
                record.variant,
                record.seed,
                status,
                len(record.attempts),
                duration,
                epoch,
                metrics,
                record.attempts[-1].gpu if record.attempts else None,
                record.fold,
            )
        )
    not_finite = {}
    groups: list[str | None] = [*per_variant] or [None]
    table = seed_table(state)
    for name in state.summary_metrics:
        for variant in groups:
            _, left_out = split_finite(table.values(name, variant).values())
            if left_out.count:
                not_finite[name if variant is None else f"{name} ({variant})"] = left_out.describe()
    progress = {v: VariantProgress(sum(c.values()), c) for v, c in per_variant.items()}
    return StudyStatus(
        paths.root,
        len(state.runs),
        counts,
        state.summary_metrics,
        tuple(rows),
        not_finite,
        progress,
        _adaptive_line(state),
        tuple(standout_lines(state)),
        tuple(read_leases(LeasePaths.default(os.environ))),
    )


def run_status_label(record: RunRecord) -> str:
    """pending, running, completed, interrupted, or the failure class of a failed run."""
    return record.failure.value if record.failure else record.status.value


def _adaptive_line(state: StudyState) -> str | None:
    adaptive = state.adaptive
    if adaptive is None:
        return None
    if adaptive.stopped is not None:
        return f"adaptive seeds: stopped: {adaptive.stopped}"
    rule = adaptive.rule
    return (
        f"adaptive seeds: {len(state.seeds)} of max {rule.max_seeds} so far, until the 95% CI "
        f"of {rule.metric}'s mean is within ±{rule.ci_halfwidth:g}"
    )


def render_status(status: StudyStatus, as_json: bool = False) -> str:
    if as_json:
        payload = asdict(status)
        payload["root"] = str(status.root)
        for row in payload["rows"]:  # strict JSON has no nan or inf: spell them out
            row["metrics"] = {
                k: v if math.isfinite(v) else format_number(v) for k, v in row["metrics"].items()
            }
        return json.dumps(payload, indent=1, allow_nan=False)
    named = bool(status.variants)
    folded = any(row.fold is not None for row in status.rows)
    header = ["run", *(["variant"] if named else []), *(["fold"] if folded else []), "seed",
              "status", "attempt", "duration_s", "epoch", *status.summary_metrics]  # fmt: skip
    on_gpus = any(row.gpus for row in status.rows)  # a column only where runs had GPUs
    lines = [[*header, "gpus"] if on_gpus else header]
    for row in status.rows:
        lines.append(
            [
                str(row.run),
                *([row.variant or "-"] if named else []),
                *([str(row.fold)] if folded else []),
                str(row.seed),
                row.status,
                str(row.attempt),
                f"{row.duration_s:.1f}" if row.duration_s is not None else "-",
                row.epoch or "-",
                *(
                    format_number(row.metrics[m]) if m in row.metrics else "-"
                    for m in status.summary_metrics
                ),
                *([row.gpus or "-"] if on_gpus else []),
            ]
        )
    body = aligned_lines(lines)
    counts = ", ".join(f"{n} {name}" for name, n in sorted(status.counts.items()))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    notes = [f"{name}: {text} (left out of the mean)" for name, text in status.not_finite.items()]
    notes += status.standouts
    if status.adaptive is not None:
        notes.append(status.adaptive)
    notes += lease_lines(status)
    heading = [f"{status.root}  ({status.total} runs: {counts})  {stamp}"]
    heading += [f"  {name}: {_progress(p)}" for name, p in status.variants.items()]
    return "\n".join([*heading, *body, *notes])


def lease_lines(status: StudyStatus) -> list[str]:
    """Who holds which GPU place on this machine now: this study's runs and other studies'."""
    if not status.leases:
        return []
    lines = ["GPU places held on this machine:"]
    for lease in status.leases:
        owner = lease.owner
        who = "this study" if Path(owner.study) == status.root else owner.study
        since = time.strftime("%H:%M:%S", time.localtime(owner.since))
        lines.append(
            f"  GPU {lease.gpu} place {lease.place}: {who}, run {owner.run} "
            f"(xorch pid {owner.pid}, since {since})"
        )
    return lines


def _progress(progress: VariantProgress) -> str:
    """``3/4 completed, 1 running``: the completed share first, then the other statuses."""
    done = progress.counts.get("completed", 0)
    others = sorted((k, n) for k, n in progress.counts.items() if k != "completed")
    return ", ".join([f"{done}/{progress.total} completed", *(f"{n} {k}" for k, n in others)])
