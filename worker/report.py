"""Reporting for any training script run by xorch (``command:`` studies).

No torch, no Lightning: a plain PyTorch loop, JAX or scikit-learn code imports
it the same way::

    from worker.report import report

    for epoch in range(epochs):
        ...
        report(epoch=epoch, **{"train/loss": loss, "val/acc": acc})
    report.final(**{"val/acc": acc})   # optional: else the last values count

Each call appends a row to ``lightning_logs/version_<attempt - 1>/metrics.csv``
in the run folder (the CSVLogger's layout, so ``xorch plot`` draws the curves
and the parent reads the last values as the run's metrics) and rewrites
``heartbeat.json``: the parent's hang check counts these calls as signs of
life, so a loop stuck between two calls is seen as a hang. ``report.beat()``
beats without a row. Outside xorch (no ``XORCH_RUN_DIR``) every call does nothing.
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any

from orchestrator.contract.atomic import atomic_write_text
from orchestrator.contract.child import ATTEMPT_ENV, RESUME_FROM_ENV, RUN_DIR_ENV
from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import Heartbeat, HeartbeatPhase, RunResult

__all__ = ["Reporter", "report"]


class Reporter:
    """Rows of metrics and heartbeats for one attempt; ``report`` is the shared one.

    It writes the run folder's files through ``orchestrator.contract`` (torch-free,
    nothing else of xorch), so their names and records are the parent's."""

    def __init__(self, run_dir: str | None = None, attempt: int | None = None) -> None:
        folder = run_dir if run_dir is not None else os.environ.get(RUN_DIR_ENV)
        self.run_dir = Path(folder) if folder else None
        self.attempt = attempt if attempt is not None else int(os.environ.get(ATTEMPT_ENV, 1))
        self._columns: list[str] = ["epoch", "step"]
        self._rows: list[dict[str, Any]] = []
        self._epoch = 0
        self._step = 0

    @property
    def _paths(self) -> RunPaths | None:
        return RunPaths(self.run_dir) if self.run_dir is not None else None

    @property
    def csv_path(self) -> Path | None:
        paths = self._paths
        return paths.csv_metric_log(self.attempt) if paths is not None else None

    def __call__(self, step: int | None = None, epoch: int | None = None, **metrics: Any) -> None:
        """One row: the metrics at this epoch (and step), and a heartbeat."""
        if epoch is not None:
            self._epoch = int(epoch)
        if step is not None:
            self._step = int(step)
        if self.run_dir is None:
            return
        row: dict[str, Any] = {"epoch": self._epoch, "step": self._step}
        row.update({str(k): float(v) for k, v in metrics.items()})
        self._append(row)
        self.beat()

    def beat(self, phase: str = "train") -> None:
        """A sign of life without a row (for long epochs between ``report`` calls)."""
        paths = self._paths
        if paths is None:
            return
        Heartbeat(
            pid=os.getpid(),
            time=time.time(),
            phase=HeartbeatPhase(phase),
            epoch=self._epoch,
            global_step=self._step,
            resumed_from=os.environ.get(RESUME_FROM_ENV) or None,
        ).write(paths.heartbeat)

    def final(self, **metrics: Any) -> None:
        """The run's final metrics (metrics.json); without it, the last reported values."""
        paths = self._paths
        if paths is None:
            return
        RunResult(
            metrics={str(k): float(v) for k, v in metrics.items()},
            resumed_from=os.environ.get(RESUME_FROM_ENV) or None,
        ).write(paths.metrics)

    def _append(self, row: dict[str, Any]) -> None:
        path = self.csv_path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._rows.append(row)
        new = [name for name in row if name not in self._columns]
        if new or not path.exists():
            # A metric first seen now widens the header: write the file anew,
            # whole or not at all (rare); otherwise one appended line per call.
            self._columns.extend(new)
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, self._columns)
            writer.writeheader()
            writer.writerows(self._rows)
            atomic_write_text(path, text.getvalue())
            return
        with open(path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, self._columns).writerow(row)


report = Reporter()
