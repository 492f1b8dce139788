"""``xorch export --to tensorboard``: a study as TensorBoard event files.

The target folder is one logdir: one run folder per study run, named by the
run's folder (``run_00_seed42``, ``base/run_00_seed1`` in a study of
variants), with each metric's curve as scalars (step = epoch) and the run's
hparams (seed, variant, the keys the variants change) with its status, so the
HParams tab compares seeds and variants on the final metrics. A folder
``summary`` (``VARIANT/summary``) holds the aggregate of ``xorch summary`` as
scalars at step 0 (``val/loss/mean`` ...).

The event files are built here from TensorBoard's own protos and record
writer (no TensorFlow, no torch). Each folder's file is written whole and
atomically, and an export removes the event files an earlier one left there,
so exporting again rewrites a run, never appends to it. Imported only by
``commands.export`` once tensorboard is known to be installed.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.summary.writer.record_writer import RecordWriter

from orchestrator.commands.export_study import ExportRun, MetricSeries, RunOutcome, StudyExport
from orchestrator.contract.atomic import atomic_write_bytes
from orchestrator.contract.paths import (
    tensorboard_event_file,
    tensorboard_event_files,
    tensorboard_summary_dir,
)

__all__ = ["export_tensorboard"]

SESSION_STATUS = {
    RunOutcome.FINISHED: api_pb2.STATUS_SUCCESS,
    RunOutcome.FAILED: api_pb2.STATUS_FAILURE,
    RunOutcome.KILLED: api_pb2.STATUS_FAILURE,
    RunOutcome.RUNNING: api_pb2.STATUS_RUNNING,
}


def export_tensorboard(study: StudyExport, logdir: Path) -> tuple[int, int]:
    """Write ``study`` under ``logdir``; (run folders created, run folders rewritten)."""
    created = rewritten = 0
    for run in study.runs:
        if _write(logdir / run.dir, _run_events(run)):
            rewritten += 1
        else:
            created += 1
    for variant in study.variants or (None,):
        rows = study.aggregates_of(variant)
        series = [MetricSeries(n, ((0, v),)) for row in rows for n, v in row.values().items()]
        _write(tensorboard_summary_dir(logdir, variant), _scalars(series))
    return created, rewritten


def _run_events(run: ExportRun) -> list[Event]:
    hparams = {**run.hparams, "status": run.status}
    start = time.time()
    events = [_session_start(hparams, start)]
    events += _scalars(run.series)
    events.append(_session_end(SESSION_STATUS[run.outcome], start))
    return events


def _scalars(series: Iterable[MetricSeries]) -> list[Event]:
    wall = time.time()
    return [
        Event(wall_time=wall, step=step,
              summary=Summary(value=[Summary.Value(tag=one.name, simple_value=value)]))
        for one in series
        for step, value in one.points
    ]  # fmt: skip


def _hparams_event(tag: str, data: plugin_data_pb2.HParamsPluginData, wall: float) -> Event:
    plugin = SummaryMetadata.PluginData(
        plugin_name=hparams_metadata.PLUGIN_NAME, content=data.SerializeToString()
    )
    value = Summary.Value(
        tag=tag, metadata=SummaryMetadata(plugin_data=plugin), tensor=hparams_metadata.NULL_TENSOR
    )
    return Event(wall_time=wall, summary=Summary(value=[value]))


def _session_start(hparams: Mapping[str, str | int | float], wall: float) -> Event:
    info = plugin_data_pb2.SessionStartInfo(start_time_secs=wall)
    for name, value in hparams.items():
        if isinstance(value, str):
            info.hparams[name].string_value = value
        else:
            info.hparams[name].number_value = float(value)
    data = plugin_data_pb2.HParamsPluginData(
        version=hparams_metadata.PLUGIN_DATA_VERSION, session_start_info=info
    )
    return _hparams_event(hparams_metadata.SESSION_START_INFO_TAG, data, wall)


def _session_end(status: int, wall: float) -> Event:
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=wall)
    data = plugin_data_pb2.HParamsPluginData(
        version=hparams_metadata.PLUGIN_DATA_VERSION, session_end_info=info
    )
    return _hparams_event(hparams_metadata.SESSION_END_INFO_TAG, data, wall)


def _write(folder: Path, events: list[Event]) -> bool:
    """``events`` as the folder's one event file; whether an earlier export's was there."""
    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    wall = time.time()
    writer.write(Event(wall_time=wall, file_version="brain.Event:2").SerializeToString())
    for event in events:
        writer.write(event.SerializeToString())
    earlier = tensorboard_event_files(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = tensorboard_event_file(folder, wall)
    atomic_write_bytes(target, buffer.getvalue())
    for path in earlier:
        if path != target:
            path.unlink(missing_ok=True)
    return bool(earlier)
