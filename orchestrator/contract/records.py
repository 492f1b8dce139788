"""What parent and child say to each other, through files in the run directory.

Both sides import this module, so it must never import torch or Lightning. Each
file is a JSON object written atomically; the dataclasses here are its shape,
and ``JsonRecord`` is the one reader and writer they share.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.contract.atomic import atomic_write_json
from orchestrator.contract.bounded import parse_json, read_bounded, read_json
from orchestrator.contract.limits import MAX_CONFIG_BYTES, MAX_RECORD_BYTES

__all__ = [
    "ERROR_FILE",
    "HEARTBEAT_FILE",
    "LAST_CHECKPOINT_FILE",
    "LOG_FILE",
    "METRICS_FILE",
    "PARENT_PID_ENV",
    "RANK_EXIT_FILE",
    "RUN_SPEC_FILE",
    "ErrorReport",
    "Heartbeat",
    "HeartbeatPhase",
    "JsonRecord",
    "RankExit",
    "RankProgress",
    "RunResult",
    "RunSpec",
    "file_problem",
    "json_object_noting",
    "read_json_object",
]

RUN_SPEC_FILE = "run_spec.json"
HEARTBEAT_FILE = "heartbeat.json"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.json"
LOG_FILE = "train.log"
LAST_CHECKPOINT_FILE = "last.ckpt"
RANK_EXIT_FILE = "rank_exit.json"

# The environment variable through which the child learns its parent's pid, to
# stop itself when the parent dies before it could set the death signal.
PARENT_PID_ENV = "XORCH_PARENT_PID"


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing or not a whole object."""
    return json_object_noting(path)[0]


def json_object_noting(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The JSON object in ``path`` (None if missing or not a whole object) and
    why a file that is there was not used: "" for none, else a short reason
    (past ``MAX_RECORD_BYTES``, not a regular file, nested too deeply...)."""
    read = read_json(Path(path), MAX_RECORD_BYTES)
    if read.problem or isinstance(read.payload, dict) or read.payload is None:
        return (read.payload if isinstance(read.payload, dict) else None), read.problem
    return None, f"is {_json_kind(read.payload)}, not an object"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def file_problem(path: Path, problem: str) -> str:
    """``metrics.json is empty``, ``metrics.json could not be read (nested too
    deeply)``: what was wrong with a file that is there; "" for no problem."""
    if not problem:
        return ""
    if problem.startswith("is "):
        return f"{path.name} {problem}"
    return f"{path.name} could not be read ({problem})"


_Record = TypeVar("_Record", bound="JsonRecord")


class JsonRecord:
    """A frozen dataclass kept as one JSON object in a file of the run folder.

    ``write`` replaces the file atomically. ``read`` gives None for a missing
    file, one that is not a whole JSON object, or one whose keys do not fit the
    dataclass: the reader (the parent, mostly) treats all of those as "the child
    left no word" and falls back to other evidence. Subclasses check the values'
    types in ``_checked`` and choose what is left out of the file in ``to_json``.
    """

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass

    def write(self, path: Path, durable: bool = True) -> None:
        atomic_write_json(path, self.to_json(), durable)

    @classmethod
    def read(cls: type[_Record], path: Path) -> _Record | None:
        return cls.read_noting(path)[0]

    @classmethod
    def read_noting(cls: type[_Record], path: Path) -> tuple[_Record | None, str]:
        """The record, and why a file that is there was not one ("" if it was,
        or if there is no file): for the reason a run is given."""
        payload, problem = json_object_noting(path)
        if payload is None:
            return None, problem
        record = cls.from_json(payload)
        return record, "" if record is not None else "not this record's fields"

    @classmethod
    def from_json(cls: type[_Record], payload: dict[str, Any]) -> _Record | None:
        try:
            record = cls(**payload)
        except (TypeError, ValueError):  # a missing or unknown key, a value out of range
            return None
        return record if record._checked() else None

    def _checked(self) -> bool:
        """Whether the values have the types this record promises."""
        return True


@dataclass(frozen=True)
class RunSpec(JsonRecord):
    """Everything a child needs to train one run. Written by the parent."""

    run_index: int
    seed: int
    run_dir: str
    config: dict[str, Any]
    import_paths: tuple[str, ...] = ()
    heartbeat_interval_s: float = 2.0
    resume_from_checkpoint: bool = True
    attempt: int = 1  # 1 for the first; a command run's {attempt}
    fold: int | None = None  # the run's fold (experiments_runner.folds); {fold}, XORCH_FOLD

    @classmethod
    def load(cls, path: Path) -> RunSpec:
        """The spec in ``path``, or an exception saying why not: unlike the
        child's reports, a child without its spec has nothing to fall back on."""
        payload = parse_json(read_bounded(Path(path), MAX_CONFIG_BYTES).decode("utf-8"))
        payload["import_paths"] = tuple(payload.get("import_paths", ()))
        return cls(**payload)


class HeartbeatPhase(str, enum.Enum):
    """What the child was doing at its last heartbeat. str-valued, so
    heartbeat.json holds the plain word ("train")."""

    STARTING = "starting"  # imports and build (a thread beats while they run)
    SETUP = "setup"  # built; the checkpoint to resume from is chosen
    FIT = "fit"  # fit began, no batch yet
    TRAIN = "train"
    VALIDATE = "validate"
    TEST = "test"


@dataclass(frozen=True)
class Heartbeat(JsonRecord):
    """A sign of life, rewritten by the child every few seconds."""

    pid: int
    time: float
    phase: HeartbeatPhase
    epoch: int = 0
    global_step: int = 0
    max_epochs: int | None = None
    resumed_from: str | None = None
    first_batch_time: float | None = None  # when training really began

    def __post_init__(self) -> None:
        # Read from JSON the phase is a plain string; an unknown one raises
        # ValueError, which ``from_json`` reads as "not a heartbeat of ours".
        object.__setattr__(self, "phase", HeartbeatPhase(self.phase))

    def write_if_possible(self, path: Path) -> bool:
        """Write the beat; False, and nothing raised, when the filesystem refuses.

        A beat is a sign of life, not a result: a full disk or an NFS hiccup
        for a moment must not end hours of training. If the writes keep
        failing, the parent sees no beats and stops the run as a hang, which is
        the truth it can act on; the atomic writer keeps the last beat whole."""
        try:
            self.write(path)
        except OSError:
            return False
        return True

    @property
    def epoch_text(self) -> str | None:
        """``3/10`` (the epoch counted from 1, of max_epochs when known); None
        before training began, when there is no epoch to speak of."""
        if self.phase in (HeartbeatPhase.STARTING, HeartbeatPhase.SETUP):
            return None
        total = f"/{self.max_epochs}" if self.max_epochs else ""
        return f"{self.epoch + 1}{total}"


@dataclass(frozen=True)
class RunResult(JsonRecord):
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
    # The epochs trained (``trainer.current_epoch`` after fit) and the best checkpoint
    # (a ModelCheckpoint with ``monitor``: its best_model_path; else last.ckpt). An
    # older metrics.json has neither: read as None.
    epochs_trained: int | None = None
    best_checkpoint_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        del payload["not_numbers"]  # the reader's finding, not the worker's to write
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> RunResult | None:
        """None unless ``payload`` has a ``metrics`` object; fields of the wrong
        type are read as absent, so one odd value does not lose the run."""
        if not isinstance(payload.get("metrics"), dict):
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
        epochs = payload.get("epochs_trained")
        best = payload.get("best_checkpoint_path")
        return cls(
            metrics=metrics,
            skipped_metrics=tuple(skipped),
            resumed_from=resumed if isinstance(resumed, str) else None,
            peak_gpu_mem_mb=peak,
            not_numbers=tuple(dropped),
            epochs_trained=epochs if type(epochs) is int and epochs >= 0 else None,
            best_checkpoint_path=best if isinstance(best, str) and best else None,
        )

    @property
    def note(self) -> str:
        """A line for the run's record about metrics that were left out; "" if none."""
        if not self.not_numbers:
            return ""
        names = ", ".join(self.not_numbers)
        return f"{METRICS_FILE}: left out values that are not numbers: {names}"


@dataclass(frozen=True)
class ErrorReport(JsonRecord):
    """The child's final word on a run that raised."""

    type: str
    message: str
    traceback: str = ""
    cuda_oom: bool = False
    host_oom: bool = False  # an allocation in host memory failed (MemoryError, RLIMIT_AS)
    resumed_from: str | None = None

    def _checked(self) -> bool:
        # Not ours otherwise: the parent falls back to the exit status.
        return isinstance(self.type, str) and isinstance(self.message, str)


@dataclass(frozen=True)
class RankExit(JsonRecord):
    """Rank 0's word that another DDP rank of the run ended first, and how
    (``exit_code`` < 0: killed by that signal); rank 0 then ended the same way."""

    rank: int
    pid: int
    exit_code: int

    def _checked(self) -> bool:
        values = (self.rank, self.pid, self.exit_code)
        return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


# Where a DDP rank is within a training step, in order: a rank stuck before
# the point the others reached is the one they wait for at the next collective.
PROGRESS_POINTS = ("batch_start", "backward", "batch_end")


@dataclass(frozen=True)
class RankProgress(JsonRecord):
    """Where one rank of a DDP run last was: ``passed`` points so far (the
    ranks pass the same points in lockstep, so the counts compare), the last
    one's step and name (written at every point, without fsync: it only names
    the rank a hang waits for)."""

    rank: int
    pid: int
    passed: int
    step: int
    point: str
    time: float

    def _checked(self) -> bool:
        ints = (self.rank, self.pid, self.passed, self.step)
        return (
            all(isinstance(v, int) and not isinstance(v, bool) for v in ints)
            and self.point in PROGRESS_POINTS
            and isinstance(self.time, (int, float))
        )


def _as_float(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (nan and inf included), else None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer past a float's range, e.g. 10**400
        return None
