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
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["Reporter", "report"]

# The files of the run folder, as orchestrator.contract.records names them; repeated here so
# a user's script imports nothing else of xorch.
_HEARTBEAT_FILE = "heartbeat.json"
_METRICS_FILE = "metrics.json"


class Reporter:
    """Rows of metrics and heartbeats for one attempt; ``report`` is the shared one."""

    def __init__(self, run_dir: str | None = None, attempt: int | None = None) -> None:
        folder = run_dir if run_dir is not None else os.environ.get("XORCH_RUN_DIR")
        self.run_dir = Path(folder) if folder else None
        self.attempt = attempt if attempt is not None else int(os.environ.get("XORCH_ATTEMPT", 1))
        self._columns: list[str] = ["epoch", "step"]
        self._rows: list[dict[str, Any]] = []
        self._epoch = 0
        self._step = 0

    @property
    def csv_path(self) -> Path | None:
        if self.run_dir is None:
            return None
        return self.run_dir / "lightning_logs" / f"version_{self.attempt - 1}" / "metrics.csv"

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
        if self.run_dir is None:
            return
        beat = {
            "pid": os.getpid(),
            "time": time.time(),
            "phase": phase,
            "epoch": self._epoch,
            "global_step": self._step,
            "max_epochs": None,
            "resumed_from": os.environ.get("XORCH_RESUME_FROM") or None,
            "first_batch_time": None,
        }
        _write_json(self.run_dir / _HEARTBEAT_FILE, beat)

    def final(self, **metrics: Any) -> None:
        """The run's final metrics (metrics.json); without it, the last reported values."""
        if self.run_dir is None:
            return
        payload = {
            "metrics": {str(k): float(v) for k, v in metrics.items()},
            "resumed_from": os.environ.get("XORCH_RESUME_FROM") or None,
        }
        _write_json(self.run_dir / _METRICS_FILE, payload)

    def _append(self, row: dict[str, Any]) -> None:
        path = self.csv_path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._rows.append(row)
        new = [name for name in row if name not in self._columns]
        if new or not path.exists():
            # A metric first seen now widens the header: write the file anew
            # (rare); otherwise one appended line per call.
            self._columns.extend(new)
            temporary = path.with_suffix(".tmp")
            with open(temporary, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, self._columns)
                writer.writeheader()
                writer.writerows(self._rows)
            os.replace(temporary, path)
            return
        with open(path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, self._columns).writerow(row)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Whole or not at all: the parent may read the file at any moment."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(temporary, path)


report = Reporter()
