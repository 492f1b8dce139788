"""runner_state.json on disk: serialise, validate, load, migrate, save (its
schema and the checks of what is read are ``state_schema``'s).

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

from orchestrator.contract.atomic import atomic_write_chunks
from orchestrator.contract.bounded import ReadRefused, parse_json, read_bounded
from orchestrator.contract.limits import MAX_STATE_BYTES
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import StateError, StateWriteError, os_error_fix
from orchestrator.locks import state_lock
from orchestrator.representative import ChosenRun, Standouts, standouts
from orchestrator.state import SCHEMA_VERSION, AdaptiveSeeds, RunRecord, StudyState
from orchestrator.state_journal import JOURNAL_KEY, apply_journal
from orchestrator.state_schema import (
    ATTEMPT_JSON_KEYS,
    OPTIONAL_RUN_KEYS,
    RUN_JSON_KEYS,
    VARIANT_KEYS,
    BadValue,
    check_state,
    record_from_payload,
    state_from_payload,
)

__all__ = [
    "ATTEMPT_JSON_KEYS",
    "RunTexts",
    "load_backup",
    "load_state",
    "load_study_state",
    "read_study_folder",
    "save_state",
    "state_chunks",
    "state_from_payload",
    "state_to_json",
    "study_folder",
]

# Migrations from older schema versions: {old_version: function(payload) -> payload}.
MIGRATIONS: dict[int, Any] = {}


class RunTexts:
    """The JSON text of each run record, kept while the record object lives: a
    cache a ledger owns, so a save re-encodes only the runs that changed."""

    def __init__(self) -> None:
        self._texts: dict[int, tuple[RunRecord, str, bytes]] = {}
        self._checkpoints: dict[int, tuple[RunRecord, str | None]] = {}

    def checkpoint(self, record: RunRecord, root: Path) -> str | None:
        """The completed run's ``last.ckpt`` (study-relative), or None: looked up once
        per record, not on every save (500 variants: 1,000 look-ups a save)."""
        hit = self._checkpoints.get(id(record))
        if hit is not None and hit[0] is record:
            return hit[1]
        checkpoint = StudyPaths(root).run(record.dir).last_checkpoint
        where = f"{record.dir}/{checkpoint.name}" if checkpoint.is_file() else None
        self._checkpoints[id(record)] = (record, where)
        return where

    def text(self, record: RunRecord) -> str:
        return self._entry(record)[1]

    def data(self, record: RunRecord) -> bytes:
        """The text, encoded: what a save writes."""
        return self._entry(record)[2]

    def _entry(self, record: RunRecord) -> tuple[RunRecord, str, bytes]:
        hit = self._texts.get(id(record))
        if hit is not None and hit[0] is record:
            return hit
        text = json.dumps(_record_payload(record), separators=(",", ":"), allow_nan=True)
        again = json.dumps(
            _record_payload(record_from_payload(json.loads(text), f"runs[{record.index}]")),
            separators=(",", ":"),
        )
        if again != text:  # never write what does not read back (compared as text: NaN)
            raise ValueError(f"run {record.index} does not survive a round trip through JSON")
        entry = self._texts[id(record)] = (record, text, text.encode("utf-8"))
        return entry

    def keep_only(self, state: StudyState) -> None:
        if len(self._texts) <= 2 * len(state.runs) + 16:
            return  # old texts are dropped in batches, not on every save
        live = {id(r) for r in state.runs}
        for key in [k for k in self._texts if k not in live]:
            del self._texts[key]
        for key in [k for k in self._checkpoints if k not in live]:
            del self._checkpoints[key]


def state_to_json(
    state: StudyState, texts: RunTexts | None = None, root: Path | None = None
) -> str:
    """The file's text; ``root``: the study folder, where the representative and the
    best run's ``last.ckpt`` are looked for (their checkpoint is null without it)."""
    return b"".join(state_chunks(state, texts, root)).decode("utf-8")


def state_chunks(
    state: StudyState,
    texts: RunTexts | None = None,
    root: Path | None = None,
    journal: str | None = None,
) -> list[bytes]:
    """The file's bytes in pieces (the header, then each run), as a save writes them;
    ``journal``: the token of the runner_state.journal lines that follow it."""
    check_state(state)
    texts = RunTexts() if texts is None else texts
    header = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "runs"}
    # A study of one config writes the file older versions wrote, key for key.
    for key in VARIANT_KEYS:
        if not header[key]:
            del header[key]
        else:
            header[key] = _plain(header[key])
    if state.adaptive is None:  # a study without adaptive seeds: the file as before
        del header["adaptive"]
    else:
        header["adaptive"] = _adaptive_payload(state.adaptive)
    if state.representative_metric is None:
        del header["representative_metric"]
    if state.folds is None:  # a study without folds: the file as before
        del header["folds"]
    else:
        header["folds"] = {"n": state.folds.n, "key": state.folds.key}
    # Plain types already but for the tuples; converting the seeds here rather
    # than through _plain saves a call per run at 10,000 runs.
    header.update(
        seeds=list(state.seeds),
        summary_metrics=list(state.summary_metrics),
        training_config=_plain(state.training_config),
    )
    header.update(_standouts_payload(state, root, texts))
    if journal is not None:  # a small study's file: as before, key for key
        header[JOURNAL_KEY] = journal
    chunks = [(json.dumps(header)[:-1] + ', "runs": [\n').encode("utf-8")]
    separator = b",\n"
    for record in state.runs:
        chunks += (texts.data(record), separator)
    if state.runs:
        chunks.pop()  # the last separator
    chunks.append(b"\n]}\n")
    texts.keep_only(state)
    return chunks


def _standouts_payload(state: StudyState, root: Path | None, texts: RunTexts) -> dict[str, Any]:
    """``representative`` and ``best_run``: derived on every save, never read back
    (a file without them loads as before); per variant in a study of variants."""

    def run(chosen: ChosenRun | None, of: Standouts, **extra: str) -> dict[str, Any] | None:
        if chosen is None:
            return None
        record = state.runs[chosen.index]
        where = texts.checkpoint(record, root) if root is not None else None
        fold = {} if record.fold is None else {"fold": record.fold}
        return {"index": chosen.index, **fold, "seed": chosen.seed, "metric": of.metric,
                "value": chosen.value, **extra, "checkpoint": where,
                "epochs_trained": record.epochs_trained,
                "best_checkpoint_path": record.best_checkpoint_path}  # fmt: skip

    rows = standouts(state)
    pairs = [(s.variant, run(s.representative, s), run(s.best, s, goal=s.goal)) for s in rows]
    if not state.variant_configs:
        return {"representative": pairs[0][1], "best_run": pairs[0][2]}
    return {
        "representative": {str(v): chosen for v, chosen, _ in pairs},
        "best_run": {str(v): best for v, _, best in pairs},
    }


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


def _record_payload(record: RunRecord) -> dict[str, Any]:
    payload = {key: _plain(getattr(record, key)) for key in RUN_JSON_KEYS}
    for key in OPTIONAL_RUN_KEYS:
        if payload[key] is None:
            del payload[key]  # as older versions wrote it
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


def study_folder(study_dir: Path | str) -> Path:
    """A study folder the user named, resolved; a path that cannot be one is a StateError."""
    try:
        folder = Path(study_dir).expanduser().resolve()
    except (RuntimeError, OSError):  # a symlink loop: RuntimeError before Python 3.13
        raise StateError(
            f"{study_dir}: a symlink in it points back to itself; fix the link or give "
            "the study folder itself"
        ) from None
    if folder.exists() and not folder.is_dir():
        raise StateError(f"{study_dir} is a file, not a study folder; give the output_base_dir")
    return folder


def read_study_folder(study_dir: Path | str) -> StudyState:
    """The state of the study folder the user named (the read-only commands, the Python
    API); the same StateError for a path that is no study. No lock, never writes."""
    return load_study_state(StudyPaths(study_folder(study_dir)))


def load_backup(paths: StudyPaths) -> StudyState | None:
    """The previous good state (runner_state.json.bak), None when there is none."""
    return _load(paths, paths.state_backup)


def _load(paths: StudyPaths, source: Path) -> StudyState | None:
    try:
        data = read_bounded(source, MAX_STATE_BYTES)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateError(f"{source} is a folder, not a state file; move it away") from None
    except ReadRefused as exc:
        raise StateError(f"{exc}; {_recovery(paths, source)}") from None
    except OSError as exc:
        raise StateError(f"cannot read {source} ({exc.strerror}); {os_error_fix(exc)}") from None
    recover = f"; {_recovery(paths, source)}"
    try:
        payload = parse_json(data.decode("utf-8"))
        version = payload.get("schema_version") if isinstance(payload, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            raise BadValue("schema_version is missing or not an integer")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{source} has schema_version {version}, newer than this xorch "
                f"understands ({SCHEMA_VERSION}); upgrade xorch to resume it"
            )
        while version < SCHEMA_VERSION:
            if version not in MIGRATIONS:
                raise BadValue(f"schema_version {version} is not one xorch ever wrote")
            payload = MIGRATIONS[version](payload)
            version = payload["schema_version"]
        return state_from_payload(apply_journal(paths, payload))
    except StateError:
        raise
    except UnicodeDecodeError:
        raise StateError(f"{source} is damaged (not text: binary data){recover}") from None
    except json.JSONDecodeError as exc:
        problem = f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        raise StateError(f"{source} is damaged ({problem}){recover}") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise StateError(f"{source} is damaged ({exc}){recover}") from None


def _recovery(paths: StudyPaths, source: Path) -> str:
    """How to go on from a damaged or refused ``source``."""
    if source == paths.state and paths.state_backup.exists():
        return (
            f"the previous good state is {paths.state_backup}: resume with --resume after "
            f"moving {paths.state.name} aside, and xorch recovers the study from it"
        )
    return "move it aside to start the study over"


def save_state(
    paths: StudyPaths, state: StudyState, texts: RunTexts | None = None, journal: str | None = None
) -> None:
    """Validate, keep the previous file as .bak, replace atomically, and remove the
    journal of the previous file (``state_journal``). Raises StateWriteError.

    ``texts``: the caller's cache of run texts (a ledger's); none: every run is
    encoded. ``journal``: the token of the journal this file starts (``state_writer``)."""
    chunks = state_chunks(state, texts, paths.root, journal)
    try:
        with state_lock(paths):
            atomic_write_chunks(paths.state, chunks, keep_previous_as=paths.state_backup)
            # After the new file: a crash between leaves lines of another token, skipped.
            paths.state_journal.unlink(missing_ok=True)
    except OSError as exc:
        raise StateWriteError(
            f"could not write {paths.state} ({exc.strerror or exc}); the previous state is "
            f"intact: {os_error_fix(exc)}, then resume with --resume"
        ) from None
