"""Which Lightning package a run is built with (issue 20).

``lightning.pytorch`` and ``pytorch_lightning`` are the same code under two
names, and their classes do not mix: a ``pytorch_lightning`` Trainer rejects a
``lightning.pytorch`` module or callback. A run is built with the package its
model and data classes subclass; ``lightning`` is imported only when a class's
MRO names it, so a ``pytorch_lightning`` run never pays for it."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType

from worker.build import BuildError

__all__ = ["PACKAGES", "package_for", "package_name_of"]

# The top-level module each package's classes live in -> the module to build with.
PACKAGES = {"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}
_DEFAULT = "pytorch_lightning"


def package_name_of(cls: type) -> str | None:
    """``lightning.pytorch`` or ``pytorch_lightning`` for a class built on one
    of them, read from the module names in its MRO (nothing is imported);
    None for a class of neither (plain torch, the user's own base)."""
    for base in cls.__mro__:
        top = base.__module__.split(".")[0]
        if top in PACKAGES:
            return PACKAGES[top]
    return None


def package_for(classes: Mapping[str, type | None]) -> ModuleType:
    """The package module to build a run with, from its user classes by entry
    name (``{"model": ..., "data": ..., "callbacks[0]": ...}``). Two entries of
    different packages are one BuildError line naming both and the fix."""
    seen: dict[str, str] = {}
    for where, cls in classes.items():
        name = package_name_of(cls) if cls is not None else None
        if name is None:
            continue
        for other_where, other in seen.items():
            if other != name:
                raise BuildError(
                    f"{other_where} is {other}, {where} is {name}: import both from one package"
                )
        seen[where] = name
    chosen = next(iter(seen.values()), _DEFAULT)
    return importlib.import_module(chosen)
