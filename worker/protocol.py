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
    """The child's final word on a run that trained to the end."""

    metrics: dict[str, float]
    skipped_metrics: tuple[str, ...] = ()
    resumed_from: str | None = None
    peak_gpu_mem_mb: float | None = None  # torch's peak allocation, when the run used CUDA

    def write(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> RunResult | None:
        payload = read_json_object(path)
        if payload is None or not isinstance(payload.get("metrics"), dict):
            return None
        metrics = {str(k): float(v) for k, v in payload["metrics"].items() if _is_number(v)}
        return cls(
            metrics=metrics,
            skipped_metrics=tuple(payload.get("skipped_metrics", ())),
            resumed_from=payload.get("resumed_from"),
            peak_gpu_mem_mb=payload.get("peak_gpu_mem_mb"),
        )


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
            return cls(**payload)
        except TypeError:
            return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
