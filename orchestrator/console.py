"""What the parent tells the user: timestamped lines, and on a terminal a live
progress line.

Every event is one plain timestamped line, on the terminal and in xorch.log.
When stdout is a terminal, a progress line (runs done of total, each running
run's epoch, ETA) is redrawn below them with rich; under nohup, in a pipe or a
file there is no progress line, no ANSI code and no carriage return.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from orchestrator.contract.records import Heartbeat
from orchestrator.tables import aligned_lines

if TYPE_CHECKING:
    from orchestrator.state import StudyState

__all__ = ["Reporter", "format_metrics", "progress_line", "progress_text"]

PROGRESS_EVERY_S = 1.0


class Reporter:
    def __init__(self, log_path: Path | None = None, stream: TextIO | None = None) -> None:
        self.log_path = log_path
        self.stream = stream if stream is not None else sys.stdout
        self._live: Any = None
        self._last_progress = 0.0

    @property
    def interactive(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def say(self, message: str) -> None:
        line = f"[{datetime.now().strftime('%Y-%m-%d %H:%M:%S')}] {message}"
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=self.stream, flush=True)
        if self.log_path is not None:
            try:
                with open(self.log_path, "a", encoding="utf-8") as log:
                    log.write(line + "\n")
            except OSError:
                pass  # the terminal still has it; a full disk is reported by the state writer

    def error(self, message: str) -> None:
        """An error of the launch: ``xorch: error: ...`` on stderr (after the
        progress lines, not among them), and in xorch.log like every line."""
        self._to_stderr(f"xorch: error: {message}")

    def warn(self, message: str) -> None:
        """Something a person should know that does not stop the launch:
        ``xorch: warning: ...`` on stderr, and in xorch.log."""
        self._to_stderr(f"xorch: warning: {message}")

    def _to_stderr(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        if self.log_path is not None:
            with contextlib.suppress(OSError), open(self.log_path, "a", encoding="utf-8") as log:
                log.write(line + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        for line in aligned_lines([header, *rows]):
            self.say(line)

    @contextlib.contextmanager
    def live_progress(self) -> Iterator[None]:
        """Show ``progress`` updates on a terminal for the duration of the block."""
        if not self.interactive:
            yield
            return
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        with Live(
            Text(""), console=Console(file=self.stream), transient=True, refresh_per_second=4
        ) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None

    def next_progress(self) -> float | None:
        """When the progress line is next due (monotonic time); None without one."""
        if self._live is None:
            return None
        return self._last_progress + PROGRESS_EVERY_S

    def progress_due(self) -> bool:
        """Whether a progress line is shown and due for a redraw (at most once a second)."""
        return self._live is not None and (
            time.monotonic() - self._last_progress >= PROGRESS_EVERY_S
        )

    def progress(self, text: str) -> None:
        """Redraw the progress line on a terminal."""
        if self._live is None:
            return
        from rich.text import Text

        self._last_progress = time.monotonic()
        self._live.update(Text(text))


def progress_line(state: StudyState, running: Sequence[tuple[int, Path]], slots: int) -> str:
    """The progress line of a study: ``running`` pairs each running run's index
    with its heartbeat file, read here for the epoch it is on."""
    shown = []
    for index, heartbeat in sorted(running):
        beat = Heartbeat.read(heartbeat)
        shown.append((index, beat.epoch_text if beat is not None else None))
    completed = state.completed
    durations = [r.duration_s for r in completed if r.duration_s]
    return progress_text(len(completed), len(state.runs), shown, durations, slots)


def progress_text(
    done: int,
    total: int,
    running: Sequence[tuple[int, str | None]],
    durations: Sequence[float],
    slots: int,
) -> str:
    """``3/10 done | run 3 epoch 4/50, run 4 starting | ETA 12m30s``"""
    parts = [f"{done}/{total} done"]
    if running:
        parts.append(
            ", ".join(
                f"run {index} " + (f"epoch {epoch}" if epoch else "starting")
                for index, epoch in running
            )
        )
    if durations and done < total:
        remaining = (total - done) * (sum(durations) / len(durations)) / max(1, slots)
        minutes, seconds = divmod(int(remaining), 60)
        parts.append(f"ETA {minutes}m{seconds:02d}s")
    return " | ".join(parts)


def format_metrics(metrics: Mapping[str, float], names: Sequence[str]) -> str:
    shown = [f"{n}={metrics[n]:.6g}" for n in names if n in metrics]
    missing = [n for n in names if n not in metrics]
    if missing:
        shown.append("(not logged: " + ", ".join(missing) + ")")
    return " ".join(shown)
