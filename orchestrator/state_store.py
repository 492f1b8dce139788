"""runner_state.json on disk: serialise, validate, load, migrate, save.

Saving validates what it writes (every run record is read back before it goes
to disk), keeps the previous file as ``runner_state.json.bak`` and replaces the
file atomically under a short lock. Loading refuses a broken file or a newer
schema without touching it.

A study saves after every attempt starts and ends, so saving must stay cheap at
10,000 runs: each run record is serialised (and validated) once, when it
changes, and its JSON text is reused while the record object is unchanged. The
file holds one run per line, so it stays readable with ``grep``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from typing import Any

from orchestrator.atomic import atomic_write_text
from orchestrator.errors import StateError, StateWriteError
from orchestrator.locks import state_lock
from orchestrator.paths import StudyPaths
from orchestrator.state import (
    SCHEMA_VERSION,
    Attempt,
    AttemptClass,
    RunRecord,
    RunStatus,
    StudyState,
)

__all__ = ["load_state", "save_state", "state_from_payload", "state_to_json"]

# Migrations from older schema versions: {old_version: function(payload) -> payload}.
MIGRATIONS: dict[int, Any] = {}


class _RunTexts:
    """The JSON text of each run record, kept while the record object lives."""

    def __init__(self) -> None:
        self._texts: dict[int, tuple[RunRecord, str]] = {}

    def text(self, record: RunRecord) -> str:
        hit = self._texts.get(id(record))
        if hit is not None and hit[0] is record:
            return hit[1]
        text = json.dumps(_record_payload(record), separators=(",", ":"), allow_nan=True)
        again = json.dumps(_record_payload(_record(json.loads(text))), separators=(",", ":"))
        if again != text:  # never write what does not read back (compared as text: NaN)
            raise ValueError(f"run {record.index} does not survive a round trip through JSON")
        self._texts[id(record)] = (record, text)
        return text

    def keep_only(self, state: StudyState) -> None:
        if len(self._texts) <= 2 * len(state.runs) + 16:
            return  # old texts are dropped in batches, not on every save
        live = {id(r) for r in state.runs}
        for key in [k for k in self._texts if k not in live]:
            del self._texts[key]


_RUN_TEXTS = _RunTexts()


def state_to_json(state: StudyState) -> str:
    _check(state)
    header = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "runs"}
    # Plain types already but for the tuples; converting the seeds here rather
    # than through _plain saves a call per run at 10,000 runs.
    header.update(
        seeds=list(state.seeds),
        summary_metrics=list(state.summary_metrics),
        training_config=_plain(state.training_config),
    )
    runs = ",\n".join(_RUN_TEXTS.text(r) for r in state.runs)
    _RUN_TEXTS.keep_only(state)
    return json.dumps(header)[:-1] + ', "runs": [\n' + runs + "\n]}\n"


def _record_payload(record: RunRecord) -> dict[str, Any]:
    payload = {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)}
    payload["attempts"] = [
        {f.name: _plain(getattr(a, f.name)) for f in dataclasses.fields(a)} for a in record.attempts
    ]
    return payload


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check(state: StudyState) -> None:
    if [r.index for r in state.runs] != list(range(len(state.runs))):
        raise ValueError("run indexes are not 0..n-1")
    if tuple(r.seed for r in state.runs) != state.seeds:
        raise ValueError("run seeds do not match the seed list")


def state_from_payload(payload: Any) -> StudyState:
    """Build and check a state from parsed JSON; raises ValueError/TypeError/KeyError."""
    if not isinstance(payload, dict):
        raise ValueError("top level is not an object")
    state = StudyState(
        config_fingerprint=str(payload["config_fingerprint"]),
        training_config=dict(payload["training_config"]),
        seeds=tuple(int(s) for s in payload["seeds"]),
        runs=tuple(_record(r) for r in payload["runs"]),
        created_at=str(payload["created_at"]),
        schema_version=int(payload["schema_version"]),
        summary_metrics=tuple(str(m) for m in payload.get("summary_metrics", ("val/loss",))),
    )
    _check(state)
    return state


def _record(payload: Mapping[str, Any]) -> RunRecord:
    attempts = tuple(
        Attempt(**{**a, "outcome": AttemptClass(a["outcome"]) if a.get("outcome") else None})
        for a in payload.get("attempts", ())
    )
    failure = payload.get("failure")
    return RunRecord(
        **{
            **payload,
            "status": RunStatus(payload["status"]),
            "failure": AttemptClass(failure) if failure else None,
            "metrics": {str(k): float(v) for k, v in payload.get("metrics", {}).items()},
            "attempts": attempts,
        }
    )


def load_state(paths: StudyPaths) -> StudyState | None:
    """The saved state, None when there is none. Never modifies the file."""
    try:
        text = paths.state.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {paths.state}: {exc.strerror}") from None
    recover = (
        f"; the previous good state is {paths.state_backup}: check it and copy it over "
        f"{paths.state.name} to recover"
        if paths.state_backup.exists()
        else "; move it aside to start the study over"
    )
    try:
        payload = json.loads(text)
        version = payload.get("schema_version") if isinstance(payload, dict) else None
        if not isinstance(version, int):
            raise ValueError("schema_version is missing")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{paths.state} has schema_version {version}, newer than this xorch "
                f"understands ({SCHEMA_VERSION}); upgrade xorch to resume it"
            )
        while version < SCHEMA_VERSION:
            payload = MIGRATIONS[version](payload)
            version = payload["schema_version"]
        return state_from_payload(payload)
    except StateError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StateError(f"{paths.state} is damaged ({exc}){recover}") from None


def save_state(paths: StudyPaths, state: StudyState) -> None:
    """Validate, keep the previous file as .bak, replace atomically. Raises StateWriteError."""
    text = state_to_json(state)
    try:
        with state_lock(paths):
            atomic_write_text(paths.state, text, keep_previous_as=paths.state_backup)
    except OSError as exc:
        raise StateWriteError(
            f"could not write {paths.state} ({exc.strerror or exc}); the previous state is "
            "intact. Free disk space or fix permissions, then resume with --resume"
        ) from None
