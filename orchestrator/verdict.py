"""Evidence, then a verdict: how an attempt that ended by itself is classed.

``gather_evidence`` reads what the attempt left (the JSON records, the log's
last line, the memory evidence of a SIGKILL) into one frozen ``AttemptEvidence``;
``decide`` classes it without touching the disk, so every failure class is
tested with a table of cases (tests/test_verdict.py), no child needed.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.command import command_metrics, command_outcome
from orchestrator.contract.bounded import read_tail
from orchestrator.contract.child import BUILD_ERROR_TYPE
from orchestrator.contract.failure_text import traceback_line
from orchestrator.contract.limits import LOG_LAST_LINE_BYTES
from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import (
    LOG_FILE,
    ErrorReport,
    Heartbeat,
    RankExit,
    RankProgress,
    RunResult,
    file_problem,
)
from orchestrator.oom import MemoryBaseline, MemoryEvidence, dataloader_worker_pids, oom_evidence
from orchestrator.run_shape import RunKind
from orchestrator.state import AttemptClass, RunOutcome

__all__ = [
    "BUILD_ERROR_TYPE",
    "AttemptEvidence",
    "Verdict",
    "Watched",
    "classify_exit",
    "decide",
    "gather_evidence",
    "rank_behind",
    "signal_name",
]


@dataclass(frozen=True)
class Verdict:
    attempt_class: AttemptClass
    reason: str
    exit_code: int | None
    signal: str | None
    metrics: dict[str, float]
    resumed_from: str | None = None
    config_error: bool = False  # retrying cannot help: stop the study
    outcome: RunOutcome = field(default_factory=RunOutcome)  # epochs, best checkpoint


@dataclass(frozen=True)
class AttemptEvidence:
    """All an attempt that ended by itself left behind, read once."""

    exit_code: int
    kind: RunKind = RunKind.LIGHTNING  # COMMAND: a ``command:`` study's own program
    result: RunResult | None = None  # metrics.json
    command_metrics: dict[str, float] | None = None  # a command run's metrics, however reported
    command_outcome: RunOutcome = field(default_factory=RunOutcome)  # epochs (CSV log), last.ckpt
    heartbeat_resumed_from: str | None = None
    rank_exit: RankExit | None = None  # rank_exit.json: another DDP rank ended first
    error: ErrorReport | None = None  # error.json
    log_tail: str = ""  # the log's last line (command runs only)
    log_name: str = LOG_FILE
    memory: MemoryEvidence | None = None  # for a SIGKILL: was it for memory?
    worker_oom: str | None = None  # a dead DataLoader worker's memory evidence
    unread: str = ""  # records that were there but could not be used, and why (a note)


@dataclass(frozen=True)
class Watched:
    """What the parent saw of the child while it ran: its kind, pid, peak memory,
    and the memory counters at its start (to tell a SIGKILL for memory)."""

    kind: RunKind = RunKind.LIGHTNING
    pid: int | None = None
    peak_rss: int = 0
    memory: MemoryBaseline | None = None


def gather_evidence(code: int, run: RunPaths, watched: Watched = Watched()) -> AttemptEvidence:
    """Read what the attempt left; only the files its exit status makes relevant."""
    kind, pid, peak_rss, memory = watched.kind, watched.pid, watched.peak_rss, watched.memory
    command_run = kind is RunKind.COMMAND
    if code == 0:
        if command_run:
            beat = Heartbeat.read(run.heartbeat)  # worker.report notes {resume_from} there
            metrics, note = command_metrics(run)
            return AttemptEvidence(
                code,
                kind,
                command_metrics=metrics,
                command_outcome=command_outcome(run),
                heartbeat_resumed_from=beat.resumed_from if beat is not None else None,
                unread=note,
            )
        result, problem = RunResult.read_noting(run.metrics)
        return AttemptEvidence(code, kind, result=result, unread=_noted(run.metrics, problem))
    rank, rank_problem = RankExit.read_noting(run.rank_exit)
    effective = rank.exit_code if rank is not None and rank.exit_code < 0 else code
    if effective > 0:
        report, problem = ErrorReport.read_noting(run.error)
        unread = "; ".join(
            filter(None, [_noted(run.rank_exit, rank_problem), _noted(run.error, problem)])
        )
        workers = dataloader_worker_pids(report.message) if report is not None else []
        return AttemptEvidence(
            code,
            kind,
            rank_exit=rank,
            error=report,
            log_tail=_last_log_line(run) if command_run and report is None else "",
            log_name=run.log.name,
            worker_oom=_worker_oom(workers, peak_rss, memory) if workers else None,
            unread=unread,
        )
    evidence = None
    if effective == -signal.SIGKILL:
        evidence = oom_evidence(rank.pid if rank is not None else pid, peak_rss, memory)
    unread = _noted(run.rank_exit, rank_problem)
    return AttemptEvidence(code, kind, rank_exit=rank, memory=evidence, unread=unread)


def _noted(path: Path, problem: str) -> str:
    """``metrics.json could not be read (nested too deeply)``; "" for no problem."""
    return file_problem(path, problem)


def _with_note(reason: str, ev: AttemptEvidence) -> str:
    return f"{reason}; {ev.unread}" if ev.unread else reason


def decide(ev: AttemptEvidence) -> Verdict:
    """The class of an attempt that ended by itself. A command run's program
    reports its metrics its own way and writes no error.json: its exit status
    and the last line of its log are the evidence."""
    code = ev.exit_code
    if code == 0 and ev.kind is RunKind.COMMAND:
        if ev.command_metrics is None:
            reason = "exited 0 without metrics (no worker.report rows, metrics.json or metrics.csv)"
            return Verdict(AttemptClass.NO_METRICS, _with_note(reason, ev), 0, None, {})
        # note: values of metrics.json left out, or why it was not used (issue 23)
        return Verdict(
            AttemptClass.COMPLETED,
            ev.unread,
            0,
            None,
            ev.command_metrics,
            ev.heartbeat_resumed_from,
            outcome=ev.command_outcome,
        )
    if code == 0:
        if ev.result is None:
            reason = _with_note("exited 0 without metrics.json", ev)
            return Verdict(AttemptClass.NO_METRICS, reason, 0, None, {})
        # note: values in metrics.json that were not numbers, left out (never a crash)
        return Verdict(
            AttemptClass.COMPLETED,
            ev.result.note,
            0,
            None,
            ev.result.metrics,
            ev.result.resumed_from,
            outcome=RunOutcome(ev.result.epochs_trained, ev.result.best_checkpoint_path),
        )
    # A DDP run's rank 0 ends the way another rank that ended first did, and
    # names it; if it could not reproduce that rank's signal (a handler in the
    # way), it exited 128 + the signal, and the rank's record decides.
    rank = ev.rank_exit
    if rank is not None and rank.exit_code < 0:
        code = rank.exit_code
    if code > 0:
        return _raised(ev, code)
    name = signal_name(code) or f"signal {-code}"
    first = f"rank {rank.rank} (pid {rank.pid}) ended first; " if rank is not None else ""
    if -code == signal.SIGKILL:
        # Only evidence makes a SIGKILL an OOM kill: kill -9 looks the same.
        memory = ev.memory or MemoryEvidence(False, "SIGKILL from outside xorch")
        outcome = AttemptClass.OOM_KILLED if memory.oom else AttemptClass.KILLED
        return Verdict(outcome, _with_note(first + memory.reason, ev), code, name, {})
    reason = _with_note(f"{first}killed by {name}", ev)
    return Verdict(AttemptClass.SIGNAL, reason, code, name, {})


def _raised(ev: AttemptEvidence, code: int) -> Verdict:
    """An attempt that exited with a status > 0: error.json decides, if any."""
    report = ev.error
    if report is None:
        told = f": {ev.log_tail}" if ev.log_tail else f", no error.json (see {ev.log_name})"
        reason = _with_note(f"exit status {code}{told}", ev)
        return Verdict(AttemptClass.FAILED, reason, code, None, {})
    short_type = report.type.rsplit(".", 1)[-1]
    reason = f"{short_type}: {report.message}"
    config_error = report.type == BUILD_ERROR_TYPE
    outcome = AttemptClass.FAILED
    if config_error:
        outcome, reason = AttemptClass.CONFIG_ERROR, report.message
    elif ev.worker_oom is not None:
        outcome, reason = AttemptClass.OOM_KILLED, f"a DataLoader worker was {ev.worker_oom}"
    elif report.cuda_oom:
        outcome = AttemptClass.CUDA_OOM
    elif report.host_oom:
        outcome, reason = AttemptClass.OOM_KILLED, f"out of host memory: {reason}"
    return Verdict(outcome, reason, code, None, {}, report.resumed_from, config_error=config_error)


def classify_exit(code: int, run: RunPaths, watched: Watched = Watched()) -> Verdict:
    """Gather the evidence, then decide."""
    return decide(gather_evidence(code, run, watched))


def rank_behind(run: RunPaths, since: float) -> str:
    """For a DDP run that hangs: the one rank behind all the others in the
    training step (the others wait for it at the next collective), as a note
    for the reason; "" when no single rank is behind or there are no ranks."""
    notes = [RankProgress.read(path) for path in run.rank_progress_files()]
    places = [n for n in notes if n is not None and n.time >= since]
    if len(places) < 2:
        return ""
    places.sort(key=lambda n: n.passed)
    first, second = places[0], places[1]
    if first.passed == second.passed:
        return ""
    return f"; rank {first.rank} (pid {first.pid}) is behind: at step {first.step}, {first.point}"


def _last_log_line(run: RunPaths) -> str:
    """The last non-blank line of the run's log (a traceback's last line is its error)."""
    try:
        text = read_tail(run.log, LOG_LAST_LINE_BYTES)[0].decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A traceback's error and its cause (raise ... from), not only its last line.
    return traceback_line(text) or (lines[-1][:300] if lines else "")


def _worker_oom(pids: list[int], peak_rss: int, memory: MemoryBaseline | None) -> str | None:
    """The evidence that one of the dead DataLoader workers was killed for memory."""
    for pid in pids:
        evidence = oom_evidence(pid, peak_rss, memory)
        if evidence.oom:
            return evidence.reason
    return None


def signal_name(code: int | None) -> str | None:
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return None
