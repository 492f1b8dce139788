"""Seeding a run, and carrying RNG state through a checkpoint."""

from __future__ import annotations

import os
import random
from types import ModuleType
from typing import Any

import numpy as np
import torch

__all__ = [
    "capture_rng_state",
    "cublas_env",
    "restore_rng_state",
    "set_determinism",
    "set_training_seed",
]


def set_training_seed(seed: int, pkg: ModuleType | None = None) -> None:
    """Seed Python, NumPy, torch (CPU and every CUDA device) and DataLoader workers.

    ``workers=True`` makes Lightning give each DataLoader worker its own seed
    derived from this one, so augmentations in workers are reproducible too.
    """
    if pkg is None:  # else the run's package: lightning.pytorch or pytorch_lightning
        import pytorch_lightning

        pkg = pytorch_lightning
    pkg.seed_everything(seed, workers=True, verbose=False)


def set_determinism(enabled: bool) -> None:
    """``deterministic_cudnn: true``: deterministic kernels everywhere, at a cost in speed.

    cuBLAS needs its workspace variable before CUDA starts, so the worker calls
    ``cublas_env`` before importing torch; this sets the rest.
    """
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled and torch.backends.cudnn.benchmark
    if enabled:
        torch.use_deterministic_algorithms(True)


def cublas_env(enabled: bool) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state, in types that ``torch.load(weights_only=True)`` accepts
    (plain ints, lists and tensors: NumPy's array is turned into a list)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    assert isinstance(keys, np.ndarray)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
