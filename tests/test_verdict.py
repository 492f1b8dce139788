"""The verdict over an attempt's evidence: a table of cases, no child, no disk."""

from __future__ import annotations

import signal

import pytest

from orchestrator.contract.child import BUILD_ERROR_TYPE
from orchestrator.contract.records import ErrorReport, RankExit, RunResult
from orchestrator.oom import MemoryEvidence
from orchestrator.run_shape import RunKind
from orchestrator.state import AttemptClass as C
from orchestrator.verdict import AttemptEvidence, decide

KILL = -signal.SIGKILL
OOM = MemoryEvidence(True, "killed by the kernel's OOM killer (kernel log: Killed process 7)")
NOT_OOM = MemoryEvidence(False, "SIGKILL from outside xorch; no sign of memory pressure")


def _error(type_: str = "builtins.ValueError", **kw: object) -> ErrorReport:
    return ErrorReport(type=type_, message="bad value", **kw)  # type: ignore[arg-type]


CASES = [
    ("completed", AttemptEvidence(0, result=RunResult(metrics={"loss": 0.5})), C.COMPLETED, ""),
    ("no metrics.json", AttemptEvidence(0), C.NO_METRICS, "without metrics.json"),
    (
        "command completed",
        AttemptEvidence(0, RunKind.COMMAND, command_metrics={"a": 1.0}),
        C.COMPLETED,
        "",
    ),
    ("command without metrics", AttemptEvidence(0, RunKind.COMMAND), C.NO_METRICS, "worker.report"),
    ("raised", AttemptEvidence(1, error=_error()), C.FAILED, "ValueError: bad value"),
    ("exit without error.json", AttemptEvidence(3), C.FAILED, "no error.json (see train.log)"),
    (
        "command log tail",
        AttemptEvidence(2, RunKind.COMMAND, log_tail="boom"),
        C.FAILED,
        "exit status 2: boom",
    ),
    (
        "build error",
        AttemptEvidence(1, error=_error(BUILD_ERROR_TYPE)),
        C.CONFIG_ERROR,
        "bad value",
    ),
    ("cuda oom", AttemptEvidence(1, error=_error(cuda_oom=True)), C.CUDA_OOM, "ValueError"),
    ("host oom", AttemptEvidence(1, error=_error(host_oom=True)), C.OOM_KILLED, "host memory"),
    (
        "worker oom",
        AttemptEvidence(1, error=_error(), worker_oom="killed by the kernel's OOM killer"),
        C.OOM_KILLED,
        "a DataLoader worker was killed",
    ),
    ("sigkill, oom evidence", AttemptEvidence(KILL, memory=OOM), C.OOM_KILLED, "Killed process 7"),
    ("sigkill, none", AttemptEvidence(KILL, memory=NOT_OOM), C.KILLED, "from outside xorch"),
    ("sigsegv", AttemptEvidence(-signal.SIGSEGV), C.SIGNAL, "killed by SIGSEGV"),
    (
        "ddp rank signalled",
        AttemptEvidence(128 + 11, rank_exit=RankExit(rank=1, pid=9, exit_code=-11)),
        C.SIGNAL,
        "rank 1 (pid 9) ended first; killed by SIGSEGV",
    ),
    (
        "ddp rank sigkilled for memory",
        AttemptEvidence(KILL, rank_exit=RankExit(rank=2, pid=7, exit_code=KILL), memory=OOM),
        C.OOM_KILLED,
        "rank 2 (pid 7) ended first; killed by the kernel",
    ),
]


@pytest.mark.parametrize(
    ("evidence", "expected", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_failure_class(evidence: AttemptEvidence, expected: C, words: str) -> None:
    verdict = decide(evidence)
    assert verdict.attempt_class is expected
    assert words in verdict.reason
    assert verdict.config_error == (expected is C.CONFIG_ERROR)


def test_a_signal_kill_names_the_signal() -> None:
    assert decide(AttemptEvidence(-signal.SIGTERM)).signal == "SIGTERM"
    assert decide(AttemptEvidence(KILL, memory=NOT_OOM)).exit_code == KILL
