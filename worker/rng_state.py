"""Bit-exact resume for a Lightning script that xorch runs as a ``command:``.

xorch's own runs put the global RNG states into every checkpoint and back at
the resumed epoch (``worker.callbacks.ResumeStateHooks``); a script of its
own gets the same hooks with one callback, named by class path:

- ``lightning`` (``import lightning as L``, LightningCLI):
  ``--trainer.callbacks+=worker.rng_state.RngStateCallback``
  or ``L.Trainer(callbacks=[RngStateCallback()])``;
- ``pytorch_lightning``: ``worker.rng_state.PLRngStateCallback``.

Each subclasses the ``Callback`` of its own package, as the Trainer of that
package requires. Resume with ``resume_args: [--ckpt_path, "{resume_from}"]``.
"""

from __future__ import annotations

from typing import Any

from worker.callbacks import ResumeStateHooks

__all__ = ["PLRngStateCallback", "RngStateCallback"]


def _flavour(module: str, name: str) -> type | None:
    try:
        package = __import__(module, fromlist=["Callback"])
    except ImportError:
        return None
    return type(name, (ResumeStateHooks, package.Callback), {"__module__": __name__})


RngStateCallback: Any = _flavour("lightning.pytorch", "RngStateCallback")
PLRngStateCallback: Any = _flavour("pytorch_lightning", "PLRngStateCallback")
