"""runner_state.json's schema: the keys of its runs and attempts, the JSON kind
of every value, and the checks that build a ``StudyState`` from parsed JSON.

A value of the wrong kind is a ``BadValue`` naming its dotted key
(``runs[3].seed``); a state whose parts disagree (indexes, seeds, variants, the
adaptive sequence) fails ``check_state``. ``state_store`` reads and writes the
file with them.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

from orchestrator.state import (
    AdaptiveRule,
    AdaptiveSeeds,
    Attempt,
    AttemptClass,
    FoldSpec,
    RunRecord,
    RunStatus,
    StudyState,
)

__all__ = [
    "ATTEMPT_JSON_KEYS",
    "DERIVED_RUN_KEYS",
    "OPTIONAL_RUN_KEYS",
    "RUN_JSON_KEYS",
    "VARIANT_KEYS",
    "BadValue",
    "check_state",
    "record_from_payload",
    "state_from_payload",
]

# Attempt fields whose key in the file is not their Python name. ``attempt_class``
# was called ``outcome`` when schema v1 was written; keeping the old key spares
# every state file on disk a migration and a schema bump for a rename alone.
ATTEMPT_JSON_KEYS = {"attempt_class": "outcome"}
_ATTEMPT_FIELDS = {json_key: name for name, json_key in ATTEMPT_JSON_KEYS.items()}
VARIANT_KEYS = ("variant_configs", "compare_to", "goal")


# runner_state.json's keys of a run, in the file's order: the record's fields and,
# among them, the properties read off its attempts (``DERIVED_RUN_KEYS``), which
# the file keeps so that older readers and ``grep`` find them where they were.
DERIVED_RUN_KEYS = ("started_at", "ended_at", "duration_s", "exit_code", "failure")
RUN_JSON_KEYS = ("index", "seed", "dir", "status", "started_at", "ended_at", "duration_s",
                 "metrics", "exit_code", "failure", "attempts", "variant", "fold",
                 "epochs_trained", "best_checkpoint_path")  # fmt: skip
# Run keys written only when set: a study without them has the file older versions wrote.
OPTIONAL_RUN_KEYS = ("variant", "fold", "epochs_trained", "best_checkpoint_path")


def check_state(state: StudyState) -> None:
    if [r.index for r in state.runs] != list(range(len(state.runs))):
        raise ValueError("run indexes are not 0..n-1")
    adaptive = state.adaptive
    if adaptive is not None:
        if adaptive.sequence[: len(state.seeds)] != state.seeds:
            raise ValueError("adaptive.sequence does not start with the study's seeds")
        if not len(state.seeds) <= adaptive.rule.max_seeds <= len(adaptive.sequence):
            raise ValueError("adaptive.max is outside the seeds run and the sequence drawn")
    _check_folds(state)
    if not state.variant_configs:
        if state.folds is not None:
            _check_fold_pairs(state)
            return
        if tuple(r.seed for r in state.runs) != state.seeds:
            raise ValueError("run seeds do not match the seed list")
        if any(r.variant is not None for r in state.runs):
            raise ValueError("a run names a variant but the study has none")
        return
    seeds = set(state.seeds)
    pairs = {(r.variant, r.fold, r.seed) for r in state.runs}
    if len(pairs) != len(state.runs):
        raise ValueError("a (variant, fold, seed) has two runs")
    for record in state.runs:
        if record.seed not in seeds:
            raise ValueError(f"run {record.index}: seed {record.seed} is not in the seed list")
        if record.variant not in state.variant_configs:
            raise ValueError(f"run {record.index}: variant {record.variant!r} is not the study's")
    if state.compare_to is not None and state.compare_to not in state.variant_configs:
        raise ValueError(f"compare_to {state.compare_to!r} is not a variant")


def _check_folds(state: StudyState) -> None:
    """Every run has a fold in 0..n-1 in a study with folds, and none without."""
    n = state.folds.n if state.folds is not None else None
    for record in state.runs:
        if n is None and record.fold is not None:
            raise ValueError(f"run {record.index}: fold {record.fold} but the study has no folds")
        if n is not None and (record.fold is None or not 0 <= record.fold < n):
            raise ValueError(f"run {record.index}: fold {record.fold} is not one of 0..{n - 1}")


def _check_fold_pairs(state: StudyState) -> None:
    """A study of one config with folds: its seeds, each on (fold, seed) once."""
    seeds = set(state.seeds)
    pairs = {(r.fold, r.seed) for r in state.runs}
    if len(pairs) != len(state.runs):
        raise ValueError("a (fold, seed) has two runs")
    for record in state.runs:
        if record.seed not in seeds or record.variant is not None:
            raise ValueError(f"run {record.index}: seed {record.seed} is not in the seed list")


class BadValue(ValueError):
    """A value of the wrong kind, with the dotted key it sits at."""


def state_from_payload(payload: Any) -> StudyState:
    """Build and check a state from parsed JSON; raises ValueError naming the key."""
    if not isinstance(payload, dict):
        raise BadValue(f"the top level is a {_kind(payload)}, not an object")
    runs = _get(payload, "runs", list, "")
    state = StudyState(
        config_fingerprint=_get(payload, "config_fingerprint", str, ""),
        training_config=_get(payload, "training_config", dict, ""),
        seeds=tuple(_each(_get(payload, "seeds", list, ""), int, "seeds")),
        runs=tuple(record_from_payload(r, f"runs[{i}]") for i, r in enumerate(runs)),
        created_at=_get(payload, "created_at", str, ""),
        schema_version=_get(payload, "schema_version", int, ""),
        summary_metrics=tuple(
            _each(_get(payload, "summary_metrics", list, "", ["val/loss"]), str, "summary_metrics")
        ),
        variant_configs=_get(payload, "variant_configs", dict, "", {}),
        compare_to=_get(payload, "compare_to", (str, _NONE), "", None),
        goal=_get(payload, "goal", dict, "", {}),
        adaptive=_adaptive(payload.get("adaptive")),
        representative_metric=_get(payload, "representative_metric", (str, _NONE), "", None),
        folds=_folds(payload.get("folds")),
    )
    check_state(state)
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
            raise BadValue(f"{dotted} is missing")
        return default
    value = payload[key]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)
            raise BadValue(f"{dotted} is {_short(value)}, not one of {choices}") from None
    return _typed(value, kind, dotted)


def _typed(value: Any, kind: Any, dotted: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and type(value) is int:
        return float(value)
    if type(value) not in kinds:  # exact: JSON true is not a number here
        raise BadValue(f"{dotted} is {_short(value)}, not {_name(kinds)}")
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
    "failure": _OPT_STR, "attempts": (list,), "variant": _OPT_STR, "fold": _OPT_INT,
    "epochs_trained": _OPT_INT, "best_checkpoint_path": _OPT_STR,
}  # fmt: skip


def _checked(payload: Any, kinds: Mapping[str, tuple[type, ...]], required: tuple[str, ...],
             where: str) -> dict[str, Any]:  # fmt: skip
    if type(payload) is not dict:
        raise BadValue(f"{where} is {_short(payload)}, not an object")
    for key, value in payload.items():
        allowed = kinds.get(key)
        if allowed is None:
            raise BadValue(f"{where} has an unknown key {key!r}")
        if type(value) not in allowed:
            raise BadValue(f"{where}.{key} is {_short(value)}, not {_name(allowed)}")
    for key in required:
        if key not in payload:
            raise BadValue(f"{where}.{key} is missing")
    return payload


def record_from_payload(payload: Any, where: str) -> RunRecord:
    fields = _checked(payload, _RUN_KINDS, ("index", "seed", "dir", "status"), where)
    metrics = fields.get("metrics", {})
    for name, value in metrics.items():
        if type(value) is not float and type(value) is not int:
            raise BadValue(f"{where}.metrics.{name} is {_short(value)}, not a number")
    _optional_class(fields, "failure", where)  # checked, then read off the attempts
    stored = {k: v for k, v in fields.items() if k not in DERIVED_RUN_KEYS}
    return RunRecord(
        **{
            **stored,
            "status": _get(fields, "status", RunStatus, where),
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


def _folds(payload: Any) -> FoldSpec | None:
    if payload is None:
        return None
    if type(payload) is not dict:
        raise BadValue(f"folds is {_short(payload)}, not an object")
    return FoldSpec(_get(payload, "n", int, "folds"), _get(payload, "key", (str, _NONE), "folds"))


def _adaptive(payload: Any) -> AdaptiveSeeds | None:
    if payload is None:
        return None
    where = "adaptive"
    if type(payload) is not dict:
        raise BadValue(f"{where} is {_short(payload)}, not an object")
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
