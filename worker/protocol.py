"""What parent and child say to each other, through files in the run directory.

Both sides import this module, so it must never import torch or Lightning. Each
file is a JSON object written atomically; the dataclasses here are its shape.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.atomic import atomic_write_json

__all__ = [
    "ERROR_FILE",
    "HEARTBEAT_FILE",
    "LAST_CHECKPOINT_FILE",
    "LOG_FILE",
    "METRICS_FILE",
    "RUN_SPEC_FILE",
    "ErrorReport",
    "Heartbeat",
    "RunResult",
    "RunSpec",
    "read_json_object",
]

RUN_SPEC_FILE = "run_spec.json"
HEARTBEAT_FILE = "heartbeat.json"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.json"
LOG_FILE = "train.log"
LAST_CHECKPOINT_FILE = "last.ckpt"

# The environment variable through which the child learns its parent's pid, to
# stop itself when the parent dies before it could set the death signal.
PARENT_PID_ENV = "XORCH_PARENT_PID"


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing or not a whole object."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


@dataclass(frozen=True)
class RunSpec:
    """Everything a child needs to train one run. Written by the parent."""

    run_index: int
    seed: int
    run_dir: str
    config: dict[str, Any]
    import_paths: tuple[str, ...] = ()
    heartbeat_interval_s: float = 2.0
    resume_from_checkpoint: bool = True
    attempt: int = 1  # 1 for the first; a command run's {attempt}

    def write(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> RunSpec:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        payload["import_paths"] = tuple(payload.get("import_paths", ()))
        return cls(**payload)


@dataclass(frozen=True)
class Heartbeat:
    """A sign of life, rewritten by the child every few seconds."""

    pid: int
    time: float
    phase: str
    epoch: int = 0
    global_step: int = 0
    max_epochs: int | None = None
    resumed_from: str | None = None
    first_batch_time: float | None = None  # when training really began

    def write(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> Heartbeat | None:
        payload = read_json_object(path)
        if payload is None:
            return None
        try:
            return cls(**payload)
        except TypeError:
            return None


@dataclass(frozen=True)
class RunResult:
    """The child's final word on a run that trained to the end.

    Metric values are numbers; nan, inf and -inf are kept (Python's json writes
    them as NaN and Infinity, and reads them back). A value that is not a
    number at all (a string, a list, null) cannot come from our worker, only
    from a file written by other hands: reading drops it, lists its name in
    ``not_numbers`` and says so in ``note``, rather than failing the run.
    """

    metrics: dict[str, float]
    skipped_metrics: tuple[str, ...] = ()  # the worker's: logged, but not scalars
    resumed_from: str | None = None
    peak_gpu_mem_mb: float | None = None  # torch's peak allocation, when the run used CUDA
    not_numbers: tuple[str, ...] = ()  # the reader's: in the file, but not numbers

    def write(self, path: Path) -> None:
        payload = asdict(self)
        del payload["not_numbers"]  # the reader's finding, not the worker's to write
        atomic_write_json(path, payload)

    @classmethod
    def read(cls, path: Path) -> RunResult | None:
        """The result in ``path``; None if it is missing or not a JSON object with
        a ``metrics`` object. Fields of the wrong type are read as absent."""
        payload = read_json_object(path)
        if payload is None or not isinstance(payload.get("metrics"), dict):
            return None
        metrics: dict[str, float] = {}
        dropped: list[str] = []
        for name, value in payload["metrics"].items():
            number = _as_float(value)
            if number is None:
                dropped.append(str(name))
            else:
                metrics[str(name)] = number
        skipped = payload.get("skipped_metrics")
        if not isinstance(skipped, list) or not all(isinstance(n, str) for n in skipped):
            skipped = []
        resumed = payload.get("resumed_from")
        peak = _as_float(payload.get("peak_gpu_mem_mb"))
        return cls(
            metrics=metrics,
            skipped_metrics=tuple(skipped),
            resumed_from=resumed if isinstance(resumed, str) else None,
            peak_gpu_mem_mb=peak,
            not_numbers=tuple(dropped),
        )

    @property
    def note(self) -> str:
        """A line for the run's record about metrics that were left out; "" if none."""
        if not self.not_numbers:
            return ""
        names = ", ".join(self.not_numbers)
        return f"{METRICS_FILE}: left out values that are not numbers: {names}"


@dataclass(frozen=True)
class ErrorReport:
    """The child's final word on a run that raised."""

    type: str
    message: str
    traceback: str = ""
    cuda_oom: bool = False
    host_oom: bool = False  # an allocation in host memory failed (MemoryError, RLIMIT_AS)
    resumed_from: str | None = None

    def write(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> ErrorReport | None:
        payload = read_json_object(path)
        if payload is None:
            return None
        try:
            report = cls(**payload)
        except TypeError:
            return None
        if not isinstance(report.type, str) or not isinstance(report.message, str):
            return None  # not ours: the parent falls back to the exit status
        return report


def _as_float(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (nan and inf included), else None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer past a float's range, e.g. 10**400
        return None
