"""Bit-exact resume for a Lightning script that xorch runs as a ``command:``.

xorch's own runs put the global RNG states into every checkpoint and back at
the resumed epoch (``worker.callbacks.ResumeStateCallback``); a script of its
own gets the same with one callback, named by class path:

- ``lightning`` (``import lightning as L``, LightningCLI):
  ``--trainer.callbacks+=worker.rng_state.RngStateCallback``
  or ``L.Trainer(callbacks=[RngStateCallback()])``;
- ``pytorch_lightning``: ``worker.rng_state.PLRngStateCallback``.

Each subclasses the ``Callback`` of its own package, as the Trainer of that
package requires. Resume with ``resume_args: [--ckpt_path, "{resume_from}"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.seeding import capture_rng_state, restore_rng_state

__all__ = ["PLRngStateCallback", "RngStateCallback"]

# Beside Lightning's own keys in the checkpoint; not ResumeStateCallback's "xorch".
CHECKPOINT_KEY = "xorch_rng"


class _RngState:
    """The hooks, for either package's Callback (see ResumeStateCallback for
    why the states go back at the first train epoch start and why the epoch
    iterates its data afresh)."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = capture_rng_state()

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(CHECKPOINT_KEY)
        if self._pending is not None:
            _iterate_afresh(trainer, self._restore)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._pending is not None:
            restore_rng_state(self._pending)
            self._pending = None


def _iterate_afresh(trainer: Any, before: Callable[[], None]) -> None:
    """The next epoch calls ``iter()`` on its data as an uninterrupted run does
    (Lightning reuses the iterator of ``setup_data`` on a resume); once only."""
    epoch_loop = trainer.fit_loop.epoch_loop
    original = epoch_loop.on_run_start

    def on_run_start(data_fetcher: Any) -> None:
        del epoch_loop.on_run_start  # back to the class's method
        before()
        loaders = data_fetcher.combined_loader.flattened
        own_position = any(hasattr(loader, "load_state_dict") for loader in loaders)
        if epoch_loop.batch_progress.current.ready == 0 and not own_position:
            iter(data_fetcher)
        original(data_fetcher)

    epoch_loop.on_run_start = on_run_start


def _flavour(module: str, name: str) -> type | None:
    try:
        package = __import__(module, fromlist=["Callback"])
    except ImportError:
        return None
    return type(name, (_RngState, package.Callback), {"__module__": __name__})


RngStateCallback: Any = _flavour("lightning.pytorch", "RngStateCallback")
PLRngStateCallback: Any = _flavour("pytorch_lightning", "PLRngStateCallback")
