"""What the parent tells the user: timestamped lines on the terminal and in xorch.log.

Plain lines only (no ANSI codes, no carriage returns), so the output reads the
same under nohup, in a pipe and in the log file.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

__all__ = ["Reporter", "format_metrics"]


class Reporter:
    def __init__(self, log_path: Path | None = None, stream: TextIO | None = None) -> None:
        self.log_path = log_path
        self.stream = stream if stream is not None else sys.stdout

    def say(self, message: str) -> None:
        line = f"[{datetime.now().strftime('%Y-%m-%d %H:%M:%S')}] {message}"
        print(line, file=self.stream, flush=True)
        if self.log_path is not None:
            try:
                with open(self.log_path, "a", encoding="utf-8") as log:
                    log.write(line + "\n")
            except OSError:
                pass  # the terminal still has it; a full disk is reported by the state writer

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        for cells in (header, *rows):
            self.say("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def format_metrics(metrics: Mapping[str, float], names: Sequence[str]) -> str:
    shown = [f"{n}={metrics[n]:.6g}" for n in names if n in metrics]
    missing = [n for n in names if n not in metrics]
    if missing:
        shown.append("(not logged: " + ", ".join(missing) + ")")
    return " ".join(shown)
