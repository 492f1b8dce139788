"""Loaded by every Python process a test not marked ``lightning`` (or ``slurm``)
starts (tests/conftest.py puts this folder first on PYTHONPATH and sets
XORCH_TESTS_NO_TORCH): importing torch or Lightning there fails at once,
naming the fix. So a test of the parent that quietly starts a real training
child cannot pass unmarked, and the fast suite stays fast."""

from __future__ import annotations

import os
import sys
from importlib.abc import MetaPathFinder

_FORBIDDEN = frozenset({"torch", "lightning", "pytorch_lightning", "lightning_fabric"})


class _NoTorch(MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in _FORBIDDEN:
            raise ImportError(
                f"{name} imported in a child of a test not marked `lightning`: "
                "use tests.fake_worker for the parent's behaviour, or mark the test "
                "@pytest.mark.lightning"
            )


if os.environ.get("XORCH_TESTS_NO_TORCH") == "1":
    sys.meta_path.insert(0, _NoTorch())
