"""Loaded by every Python process a test not marked ``lightning`` (or ``slurm``)
starts (tests/conftest.py puts this folder first on PYTHONPATH and sets
XORCH_TESTS_NO_TORCH): importing torch or Lightning there fails at once,
naming the fix. So a test of the parent that quietly starts a real training
child cannot pass unmarked, and the fast suite stays fast.

``XORCH_TORCH_GUARD_LOG=FILE pytest ...`` instead lets the import happen and
appends the test's id to FILE: a way to list the tests that need the marker."""

from __future__ import annotations

import os
import sys
from importlib.abc import MetaPathFinder

_FORBIDDEN = frozenset({"torch", "lightning", "pytorch_lightning", "lightning_fabric"})


class _NoTorch(MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] not in _FORBIDDEN:
            return
        log = os.environ.get("XORCH_TORCH_GUARD_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as file:
                file.write(os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0] + "\n")
            sys.meta_path.remove(self)
            return
        raise ImportError(
            f"{name} imported in a child of a test not marked `lightning`: "
            "use tests.fake_worker for the parent's behaviour, or mark the test "
            "@pytest.mark.lightning"
        )


if os.environ.get("XORCH_TESTS_NO_TORCH") == "1":
    sys.meta_path.insert(0, _NoTorch())
