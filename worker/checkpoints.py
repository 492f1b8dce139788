"""Deciding whether a run can continue from its last.ckpt.

Lightning writes last.ckpt in place, so a kill during that write leaves a
truncated file. Such a file must mean "start this run over", never a crash:
we load it once here, and move it aside when it does not load.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from orchestrator.contract.paths import aside_path

__all__ = ["usable_checkpoint"]


def usable_checkpoint(path: Path) -> str | None:
    """``str(path)`` if it holds a loadable Lightning checkpoint, else None.

    A damaged file is renamed to ``last.ckpt.damaged-N`` (kept as evidence,
    never deleted) so the new attempt does not trip on it again.
    """
    if not path.is_file():
        return None
    try:
        # The file was written by this run's own earlier attempt, so a full
        # (non weights-only) load is safe; it also covers user hyperparameters
        # that the weights-only unpickler refuses.
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise ValueError("no state_dict in it")
    except (ImportError, AttributeError) as exc:
        # A class pickled in the checkpoint (a user's hyperparameter, callback or
        # module) no longer imports: the file is fine, the code or the import
        # path changed. Moving the file aside would throw away good training, so
        # this is a config error (no retry), not damage.
        from worker.build import BuildError

        raise BuildError(
            f"{path} holds a class that does not import now ({type(exc).__name__}: {exc}); "
            "put that module back on the import path, or move the file away to start "
            "this run over"
        ) from exc
    except (
        RuntimeError,
        EOFError,
        ValueError,
        KeyError,
        IndexError,
        pickle.UnpicklingError,
        OSError,
    ) as exc:
        # What a truncated or overwritten file raises: torch's zip reader
        # (RuntimeError; OSError EINVAL for a file cut a few bytes short of its
        # end, as a full disk leaves it), an empty file (EOFError), the unpickler on bytes that
        # are not a pickle (UnpicklingError and friends), our own ValueError.
        aside = aside_path(path, "damaged")
        path.replace(aside)
        warnings.warn(
            f"{path} does not load ({type(exc).__name__}: {exc}); moved to {aside.name}, "
            "starting this run from scratch",
            stacklevel=2,
        )
        return None
    return str(path)
