"""The one line a person reads for a run that raised, shared by child and parent.

A message of several lines (``Error(s) in loading state_dict ...`` then the
keys) says what went wrong on its last line, and an exception raised while
handling another (``raise ... from``, or Python's "During handling" chain)
is explained by the one before it: the line is the last line, then the cause,
e.g. ``config is broken (caused by KeyError: 'lr')``. Stdlib only: the parent
reads a command program's traceback from its log with the same words.
"""

from __future__ import annotations

__all__ = ["CAUSE_MARKERS", "exception_line", "last_line", "traceback_line"]

MAX_LINE = 500

# What Python prints between the exceptions of a chain.
CAUSE_MARKERS = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _cause(exc: BaseException) -> BaseException | None:
    if exc.__cause__ is not None:
        return exc.__cause__
    if exc.__context__ is not None and not exc.__suppress_context__:
        return exc.__context__
    return None


def exception_line(exc: BaseException) -> str:
    """``exc``'s last message line, then ``(caused by Type: line)`` for each
    exception of its chain (at most three), cut to MAX_LINE characters."""
    line = last_line(str(exc))
    cause, seen = _cause(exc), 0
    while cause is not None and seen < 3:
        text = last_line(str(cause))
        name = type(cause).__name__
        line += f" (caused by {name}: {text})" if text else f" (caused by {name})"
        cause, seen = _cause(cause), seen + 1
    return line[:MAX_LINE]


def traceback_line(log_tail: str) -> str | None:
    """The ``Type: message (caused by ...)`` of the last Python traceback in a
    log's tail, or None when it holds none."""
    lines = log_tail.splitlines()
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip() in CAUSE_MARKERS:
            blocks.append([])
        else:
            blocks[-1].append(line)
    finals = [_final_exception(block) for block in blocks]
    finals = [f for f in finals if f]
    if not finals or "Traceback (most recent call last):" not in log_tail:
        return None
    line = finals[-1]
    for cause in reversed(finals[:-1][-3:]):
        line += f" (caused by {cause})"
    return line[:MAX_LINE]


def _final_exception(block: list[str]) -> str:
    """The exception line that ends one traceback block: the last unindented line."""
    for line in reversed(block):
        if line.strip() and not line.startswith((" ", "\t")) and not line.startswith("Traceback"):
            return line.strip()
    return ""
