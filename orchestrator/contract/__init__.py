"""The contract between the parent and its children: the run folder's file
names, the JSON records they exchange, and the atomic writer both use.

Both sides import this package and nothing else of each other: ``worker/`` may
import ``orchestrator.contract`` (and ``orchestrator/__init__``, which stays
light for that reason) but no other ``orchestrator`` module, and the parent
never imports the worker's torch side. So this package imports neither torch
nor Lightning nor any other ``orchestrator`` module; tests/test_dependencies.py
checks both directions.
"""

from __future__ import annotations

from orchestrator.contract.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from orchestrator.contract.child import (
    ATTEMPT_ENV,
    BUILD_ERROR_TYPE,
    COMMAND_ENTRY,
    RESUME_FROM_ENV,
    RUN_DIR_ENV,
    TRAIN_ENTRY,
    ChildExit,
    run_variable,
)
from orchestrator.contract.environment import child_environment
from orchestrator.contract.paths import RunPaths, StudyPaths, aside_path, run_dir_name
from orchestrator.contract.records import (
    PARENT_PID_ENV,
    ErrorReport,
    Heartbeat,
    HeartbeatPhase,
    RunResult,
    RunSpec,
    read_json_object,
)

__all__ = [
    "ATTEMPT_ENV",
    "BUILD_ERROR_TYPE",
    "COMMAND_ENTRY",
    "PARENT_PID_ENV",
    "RESUME_FROM_ENV",
    "RUN_DIR_ENV",
    "TRAIN_ENTRY",
    "ChildExit",
    "ErrorReport",
    "Heartbeat",
    "HeartbeatPhase",
    "RunPaths",
    "RunResult",
    "RunSpec",
    "StudyPaths",
    "aside_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "child_environment",
    "read_json_object",
    "run_dir_name",
    "run_variable",
]
