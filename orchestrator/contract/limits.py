"""Every limit on what xorch reads, in one place (README, "Limits").

A file past its limit is never read whole: a config or the state file is
refused (exit 2), a run's JSON record is "no word" from the run, and a log or
a CSV log is read by its tail. Issue 23: a config path that never ended
(/dev/zero) was read until the kernel killed xorch.
"""

from __future__ import annotations

__all__ = [
    "LOG_JSON_TAIL_BYTES",
    "LOG_LAST_LINE_BYTES",
    "MAX_CONFIG_BYTES",
    "MAX_CSV_BYTES",
    "MAX_CSV_HEADER_BYTES",
    "MAX_CSV_TAIL_BYTES",
    "MAX_LOG_SCAN_BYTES",
    "MAX_RECORD_BYTES",
    "MAX_STATE_BYTES",
    "mib",
]

# A YAML config (or a file it composes). 100,000 seeds take about 1 MiB.
MAX_CONFIG_BYTES = 64 * 2**20
# runner_state.json (and its .bak): about 2 KiB a run, so 100,000 runs with
# retries stay well below.
MAX_STATE_BYTES = 1024 * 2**20
# One JSON record a run leaves (metrics, heartbeat, error, rank exit and
# progress, the launcher's owner file): ours are a few KiB.
MAX_RECORD_BYTES = 16 * 2**20
# The end of a CSVLogger metrics.csv read for a run's last values (the
# parent, after every command run) ...
MAX_CSV_TAIL_BYTES = 4 * 2**20
# ... and for its curves (``xorch plot``, ``report``); with its header line,
# itself read up to this size.
MAX_CSV_BYTES = 64 * 2**20
MAX_CSV_HEADER_BYTES = 2**20
# The end of train.log scanned for a command run's ``log_metrics`` patterns,
# and of a Slurm job's log.
MAX_LOG_SCAN_BYTES = 64 * 2**20
# A program's log can be large: its last JSON line (a command run's metrics)
# is looked for in its last 64 KiB, and its last line (the reason a command run
# failed) in its last 4 KiB.
LOG_JSON_TAIL_BYTES = 64 * 2**10
LOG_LAST_LINE_BYTES = 4 * 2**10


def mib(size: int) -> str:
    """``64 MiB``: a limit as the one-line messages and the README name it."""
    return f"{size // 2**20:,} MiB"
