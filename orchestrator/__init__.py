"""xorch's parent process: plans a seed study, runs one child per run, keeps the
state and the summary. It never imports torch or Lightning."""

from __future__ import annotations

from orchestrator.errors import ExitCode, XorchError

__version__ = "0.1.0"

__all__ = ["ExitCode", "XorchError", "__version__"]
