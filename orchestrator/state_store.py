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
from pathlib import Path
from typing import Any

from orchestrator.contract.atomic import atomic_write_text
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import StateError, StateWriteError, os_error_fix
from orchestrator.locks import state_lock
from orchestrator.state import (
    SCHEMA_VERSION,
    AdaptiveRule,
    AdaptiveSeeds,
    Attempt,
    AttemptClass,
    RunRecord,
    RunStatus,
    StudyState,
)

__all__ = [
    "RunTexts",
    "load_backup",
    "load_state",
    "load_study_state",
    "save_state",
    "state_from_payload",
    "state_to_json",
]

# Migrations from older schema versions: {old_version: function(payload) -> payload}.
MIGRATIONS: dict[int, Any] = {}


class RunTexts:
    """The JSON text of each run record, kept while the record object lives: a
    cache a ledger owns, so a save re-encodes only the runs that changed."""

    def __init__(self) -> None:
        self._texts: dict[int, tuple[RunRecord, str]] = {}

    def text(self, record: RunRecord) -> str:
        hit = self._texts.get(id(record))
        if hit is not None and hit[0] is record:
            return hit[1]
        text = json.dumps(_record_payload(record), separators=(",", ":"), allow_nan=True)
        again = json.dumps(
            _record_payload(_record(json.loads(text), f"runs[{record.index}]")),
            separators=(",", ":"),
        )
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


def state_to_json(state: StudyState, texts: RunTexts | None = None) -> str:
    _check(state)
    texts = RunTexts() if texts is None else texts
    header = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "runs"}
    # A study of one config writes the file older versions wrote, key for key.
    for key in _VARIANT_KEYS:
        if not header[key]:
            del header[key]
        else:
            header[key] = _plain(header[key])
    if state.adaptive is None:  # a study without adaptive seeds: the file as before
        del header["adaptive"]
    else:
        header["adaptive"] = _adaptive_payload(state.adaptive)
    # Plain types already but for the tuples; converting the seeds here rather
    # than through _plain saves a call per run at 10,000 runs.
    header.update(
        seeds=list(state.seeds),
        summary_metrics=list(state.summary_metrics),
        training_config=_plain(state.training_config),
    )
    runs = ",\n".join(texts.text(r) for r in state.runs)
    texts.keep_only(state)
    return json.dumps(header)[:-1] + ', "runs": [\n' + runs + "\n]}\n"


# Attempt fields whose key in the file is not their Python name. ``attempt_class``
# was called ``outcome`` when schema v1 was written; keeping the old key spares
# every state file on disk a migration and a schema bump for a rename alone.
ATTEMPT_JSON_KEYS = {"attempt_class": "outcome"}
_ATTEMPT_FIELDS = {json_key: name for name, json_key in ATTEMPT_JSON_KEYS.items()}
_VARIANT_KEYS = ("variant_configs", "compare_to", "goal")


def _adaptive_payload(adaptive: AdaptiveSeeds) -> dict[str, Any]:
    """The config's shape (min, max, until), then the drawn sequence and the verdict."""
    rule = adaptive.rule
    return {
        "min": rule.min_seeds,
        "max": rule.max_seeds,
        "until": {"metric": rule.metric, "ci_halfwidth": rule.ci_halfwidth},
        "sequence": list(adaptive.sequence),
        "stopped": adaptive.stopped,
    }


def _adaptive(payload: Any) -> AdaptiveSeeds | None:
    if payload is None:
        return None
    where = "adaptive"
    if type(payload) is not dict:
        raise _Bad(f"{where} is {_short(payload)}, not an object")
    until = _get(payload, "until", dict, where)
    return AdaptiveSeeds(
        rule=AdaptiveRule(
            min_seeds=_get(payload, "min", int, where),
            max_seeds=_get(payload, "max", int, where),
            metric=_get(until, "metric", str, f"{where}.until"),
            ci_halfwidth=_get(until, "ci_halfwidth", float, f"{where}.until"),
        ),
        sequence=tuple(_each(_get(payload, "sequence", list, where), int, f"{where}.sequence")),
        stopped=_get(payload, "stopped", (str, _NONE), where, None),
    )


# runner_state.json's keys of a run, in the file's order: the record's fields and,
# among them, the properties read off its attempts (``DERIVED_RUN_KEYS``), which
# the file keeps so that older readers and ``grep`` find them where they were.
DERIVED_RUN_KEYS = ("started_at", "ended_at", "exit_code")
RUN_JSON_KEYS = ("index", "seed", "dir", "status", "started_at", "ended_at", "duration_s",
                 "metrics", "exit_code", "failure", "attempts", "variant")  # fmt: skip


def _record_payload(record: RunRecord) -> dict[str, Any]:
    payload = {key: _plain(getattr(record, key)) for key in RUN_JSON_KEYS}
    if record.variant is None:
        del payload["variant"]  # as older versions wrote it
    payload["attempts"] = [
        {ATTEMPT_JSON_KEYS.get(f.name, f.name): _plain(getattr(a, f.name))
         for f in dataclasses.fields(a)}
        for a in record.attempts
    ]  # fmt: skip
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
    adaptive = state.adaptive
    if adaptive is not None:
        if adaptive.sequence[: len(state.seeds)] != state.seeds:
            raise ValueError("adaptive.sequence does not start with the study's seeds")
        if not len(state.seeds) <= adaptive.rule.max_seeds <= len(adaptive.sequence):
            raise ValueError("adaptive.max is outside the seeds run and the sequence drawn")
    if not state.variant_configs:
        if tuple(r.seed for r in state.runs) != state.seeds:
            raise ValueError("run seeds do not match the seed list")
        if any(r.variant is not None for r in state.runs):
            raise ValueError("a run names a variant but the study has none")
        return
    seeds = set(state.seeds)
    pairs = {(r.variant, r.seed) for r in state.runs}
    if len(pairs) != len(state.runs):
        raise ValueError("a (variant, seed) pair has two runs")
    for record in state.runs:
        if record.seed not in seeds:
            raise ValueError(f"run {record.index}: seed {record.seed} is not in the seed list")
        if record.variant not in state.variant_configs:
            raise ValueError(f"run {record.index}: variant {record.variant!r} is not the study's")
    if state.compare_to is not None and state.compare_to not in state.variant_configs:
        raise ValueError(f"compare_to {state.compare_to!r} is not a variant")


class _Bad(ValueError):
    """A value of the wrong kind, with the dotted key it sits at."""


def state_from_payload(payload: Any) -> StudyState:
    """Build and check a state from parsed JSON; raises ValueError naming the key."""
    if not isinstance(payload, dict):
        raise _Bad(f"the top level is a {_kind(payload)}, not an object")
    runs = _get(payload, "runs", list, "")
    state = StudyState(
        config_fingerprint=_get(payload, "config_fingerprint", str, ""),
        training_config=_get(payload, "training_config", dict, ""),
        seeds=tuple(_each(_get(payload, "seeds", list, ""), int, "seeds")),
        runs=tuple(_record(r, f"runs[{i}]") for i, r in enumerate(runs)),
        created_at=_get(payload, "created_at", str, ""),
        schema_version=_get(payload, "schema_version", int, ""),
        summary_metrics=tuple(
            _each(_get(payload, "summary_metrics", list, "", ["val/loss"]), str, "summary_metrics")
        ),
        variant_configs=_get(payload, "variant_configs", dict, "", {}),
        compare_to=_get(payload, "compare_to", (str, _NONE), "", None),
        goal=_get(payload, "goal", dict, "", {}),
        adaptive=_adaptive(payload.get("adaptive")),
    )
    _check(state)
    return state


_MISSING = object()


def _get(
    payload: Mapping[str, Any], key: str, kind: Any, where: str, default: Any = _MISSING
) -> Any:
    """``payload[key]``, checked to be of ``kind`` (a type, a tuple of types, or an
    enum class: its value); a wrong one names the key (``runs[3].seed``)."""
    dotted = f"{where}.{key}" if where else key
    if key not in payload:
        if default is _MISSING:
            raise _Bad(f"{dotted} is missing")
        return default
    value = payload[key]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)
            raise _Bad(f"{dotted} is {_short(value)}, not one of {choices}") from None
    return _typed(value, kind, dotted)


def _typed(value: Any, kind: Any, dotted: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and type(value) is int:
        return float(value)
    if type(value) not in kinds:  # exact: JSON true is not a number here
        raise _Bad(f"{dotted} is {_short(value)}, not {_name(kinds)}")
    return value


def _each(values: list[Any], kind: Any, where: str) -> list[Any]:
    return [_typed(v, kind, f"{where}[{i}]") for i, v in enumerate(values)]


def _name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object",
             list: "a list", type(None): "null"}  # fmt: skip
    shown = [k for k in kinds if not (k is int and float in kinds)]
    return " or ".join(names.get(k, k.__name__) for k in shown)


def _kind(value: Any) -> str:
    return _name((type(value),)).removeprefix("an ").removeprefix("a ")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


_NONE = type(None)
_INT = (int,)
_STR = (str,)
_OPT_INT = (int, _NONE)
_OPT_NUMBER = (float, int, _NONE)
_OPT_STR = (str, _NONE)
# The JSON kinds each field of a record may hold (checked by exact type, in one
# pass per record: loading 10,000 runs for ``xorch status`` must stay fast).
_ATTEMPT_KINDS: dict[str, tuple[type, ...]] = {
    "number": _INT, "started_at": _STR, "log": _STR, "pid": _OPT_INT,
    "pid_create_time": _OPT_NUMBER, "host": _STR, "outcome": _OPT_STR, "reason": _STR,
    "exit_code": _OPT_INT, "signal": _OPT_STR, "ended_at": _OPT_STR,
    "duration_s": _OPT_NUMBER, "resumed_from": _OPT_STR, "slot": _OPT_STR, "gpu": _OPT_STR,
    "job_id": _OPT_STR,
}  # fmt: skip
_RUN_KINDS: dict[str, tuple[type, ...]] = {
    "index": _INT, "seed": _INT, "dir": _STR, "status": _STR, "started_at": _OPT_STR,
    "ended_at": _OPT_STR, "duration_s": _OPT_NUMBER, "metrics": (dict,), "exit_code": _OPT_INT,
    "failure": _OPT_STR, "attempts": (list,), "variant": _OPT_STR,
}  # fmt: skip


def _checked(payload: Any, kinds: Mapping[str, tuple[type, ...]], required: tuple[str, ...],
             where: str) -> dict[str, Any]:  # fmt: skip
    if type(payload) is not dict:
        raise _Bad(f"{where} is {_short(payload)}, not an object")
    for key, value in payload.items():
        allowed = kinds.get(key)
        if allowed is None:
            raise _Bad(f"{where} has an unknown key {key!r}")
        if type(value) not in allowed:
            raise _Bad(f"{where}.{key} is {_short(value)}, not {_name(allowed)}")
    for key in required:
        if key not in payload:
            raise _Bad(f"{where}.{key} is missing")
    return payload


def _record(payload: Any, where: str) -> RunRecord:
    fields = _checked(payload, _RUN_KINDS, ("index", "seed", "dir", "status"), where)
    metrics = fields.get("metrics", {})
    for name, value in metrics.items():
        if type(value) is not float and type(value) is not int:
            raise _Bad(f"{where}.metrics.{name} is {_short(value)}, not a number")
    stored = {k: v for k, v in fields.items() if k not in DERIVED_RUN_KEYS}
    return RunRecord(
        **{
            **stored,
            "status": _get(fields, "status", RunStatus, where),
            "failure": _optional_class(fields, "failure", where),
            "metrics": {k: float(v) for k, v in metrics.items()},
            "attempts": tuple(
                _attempt(a, f"{where}.attempts[{i}]")
                for i, a in enumerate(fields.get("attempts", ()))
            ),
        }
    )


def _attempt(payload: Any, where: str) -> Attempt:
    fields = _checked(payload, _ATTEMPT_KINDS, ("number", "started_at", "log"), where)
    attempt_class = _optional_class(fields, "outcome", where)
    named = {_ATTEMPT_FIELDS.get(key, key): value for key, value in fields.items()}
    return Attempt(**{**named, "attempt_class": attempt_class})


def _optional_class(payload: Mapping[str, Any], key: str, where: str) -> AttemptClass | None:
    if payload.get(key) is None:
        return None
    return _get(payload, key, AttemptClass, where)


def load_state(paths: StudyPaths) -> StudyState | None:
    """The saved state, None when there is none. Never modifies the file."""
    return _load(paths, paths.state)


def load_study_state(paths: StudyPaths) -> StudyState:
    """The saved state of a study the user named (``xorch status``, ``report``,
    ``replay``...); a StateError when the folder holds none. Never modifies it."""
    state = load_state(paths)
    if state is None:
        raise StateError(f"{paths.root} holds no {paths.state.name}: is it a study folder?")
    return state


def load_backup(paths: StudyPaths) -> StudyState | None:
    """The previous good state (runner_state.json.bak), None when there is none."""
    return _load(paths, paths.state_backup)


def _load(paths: StudyPaths, source: Path) -> StudyState | None:
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateError(f"{source} is a folder, not a state file; move it away") from None
    except OSError as exc:
        raise StateError(f"cannot read {source} ({exc.strerror}); {os_error_fix(exc)}") from None
    if source == paths.state and paths.state_backup.exists():
        recover = (
            f"; the previous good state is {paths.state_backup}: resume with --resume after "
            f"moving {paths.state.name} aside, and xorch recovers the study from it"
        )
    else:
        recover = "; move it aside to start the study over"
    try:
        payload = json.loads(data.decode("utf-8"))
        version = payload.get("schema_version") if isinstance(payload, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            raise _Bad("schema_version is missing or not an integer")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{source} has schema_version {version}, newer than this xorch "
                f"understands ({SCHEMA_VERSION}); upgrade xorch to resume it"
            )
        while version < SCHEMA_VERSION:
            if version not in MIGRATIONS:
                raise _Bad(f"schema_version {version} is not one xorch ever wrote")
            payload = MIGRATIONS[version](payload)
            version = payload["schema_version"]
        return state_from_payload(payload)
    except StateError:
        raise
    except UnicodeDecodeError:
        raise StateError(f"{source} is damaged (not text: binary data){recover}") from None
    except json.JSONDecodeError as exc:
        problem = f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        raise StateError(f"{source} is damaged ({problem}){recover}") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise StateError(f"{source} is damaged ({exc}){recover}") from None


def save_state(paths: StudyPaths, state: StudyState, texts: RunTexts | None = None) -> None:
    """Validate, keep the previous file as .bak, replace atomically. Raises StateWriteError.

    ``texts``: the caller's cache of run texts (a ledger's); none: every run is encoded."""
    text = state_to_json(state, texts)
    try:
        with state_lock(paths):
            atomic_write_text(paths.state, text, keep_previous_as=paths.state_backup)
    except OSError as exc:
        raise StateWriteError(
            f"could not write {paths.state} ({exc.strerror or exc}); the previous state is "
            f"intact: {os_error_fix(exc)}, then resume with --resume"
        ) from None
