"""W&B's offline run file read back, for the tracker tests.

``run-<id>.wandb`` is W&B's transaction log: a 7-byte header (``:W&B``, a magic
number, a version), then LevelDB's log format (32 KiB blocks of chunks, each a
CRC, a length, a type: whole, first, middle or last part of a record), each
record a ``wandb_internal_pb2.Record``. wandb 0.31 no longer ships a Python
reader of it (its Go core reads it), so the test reads it here; the records
themselves are parsed by W&B's own protobuf classes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OfflineRun", "read_offline_run"]

_BLOCK = 32 * 1024
_HEADER = 7
_CHUNK_HEADER = 7  # crc32 (4), length (2), type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    run_id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None


def _records(data: bytes) -> list[bytes]:
    assert data[:4] == b":W&B", "not a W&B run file"
    found: list[bytes] = []
    pos, partial = _HEADER, b""
    while pos + _CHUNK_HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _CHUNK_HEADER:  # the block's tail is padding
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        chunk = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        pos += _CHUNK_HEADER + length
        if kind == 0 and length == 0:  # zero padding
            continue
        if kind == _FULL:
            found.append(chunk)
        elif kind == _FIRST:
            partial = chunk
        elif kind == _MIDDLE:
            partial += chunk
        elif kind == _LAST:
            found.append(partial + chunk)
    return found


def _key(item: Any) -> str:
    """An item's name: its key, or its parts for a name with a slash in it."""
    return item.key or "/".join(item.nested_key)


def read_offline_run(path: Path) -> OfflineRun:
    """What one ``run-*.wandb`` file holds: the run's identity, its config,
    every history row and the exit code it finished with (None: never finished)."""
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    run = OfflineRun()
    for data in _records(Path(path).read_bytes()):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = record.run
            run.run_id, run.group, run.job_type = info.run_id, info.run_group, info.job_type
            run.name = info.display_name
            run.config.update({i.key: json.loads(i.value_json) for i in info.config.update})
        elif kind == "config":
            run.config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run
