"""The names of the machine-wide GPU lease folder's files (issue 21: several
studies on one box); the study's own files are named in ``contract.paths``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GPU_LEASES_ENV", "LeasePaths"]

GPU_LEASES_ENV = "XORCH_GPU_LEASES"  # the machine's GPU lease folder, when not the default


@dataclass(frozen=True)
class LeasePaths:
    """The machine-wide GPU lease folder (``orchestrator.gpu_leases``), shared by
    every xorch process of one user on this machine::

        /tmp/xorch-gpu-leases-<uid>/    (or $XORCH_GPU_LEASES)
            leases.lock                 held for the moment a lease is chosen and taken
            gpu-0.place-1.lock          flock'ed by the parent whose run holds place 1 of GPU 0
            gpu-0.place-1.json          who: pid, create time, host, study, run
            gpu-0.wait-4242.json        xorch pid 4242 waits for GPU 0 (since, renewed)
    """

    root: Path

    @classmethod
    def default(cls, env: Mapping[str, str]) -> LeasePaths:
        if env.get(GPU_LEASES_ENV):
            return cls(Path(env[GPU_LEASES_ENV]).expanduser())
        # Not $XDG_RUNTIME_DIR: logind removes it at the user's last logout, under a
        # study left running with nohup, and the next xorch would see no leases.
        # Nor $TMPDIR: one machine, one folder, whatever a job's environment says.
        uid = os.getuid() if hasattr(os, "getuid") else 0
        return cls(Path("/tmp") / f"xorch-gpu-leases-{uid}")

    @property
    def mutex(self) -> Path:
        return self.root / "leases.lock"

    def place_lock(self, gpu: str, place: int) -> Path:
        return self.root / f"gpu-{_safe_gpu(gpu)}.place-{place}.lock"

    def place_owner(self, gpu: str, place: int) -> Path:
        return self.root / f"gpu-{_safe_gpu(gpu)}.place-{place}.json"

    def places(self) -> list[tuple[str, int]]:
        """(GPU, place) of every lock file in the folder, in GPU then place order (the
        GPU as its file name spells it)."""
        found = []
        for path in self.root.glob("gpu-*.place-*.lock"):
            match = _PLACE_FILE.fullmatch(path.name)
            if match:
                found.append((match.group(1), int(match.group(2))))
        return sorted(found, key=lambda gp: (len(gp[0]), gp[0], gp[1]))

    def places_of(self, gpu: str) -> list[int]:
        """The places of ``gpu`` that have a lock file (held or not)."""
        return [place for name, place in self.places() if name == _safe_gpu(gpu)]

    def wait_record(self, gpu: str, pid: int) -> Path:
        return self.root / f"gpu-{_safe_gpu(gpu)}.wait-{pid}.json"

    def wait_records(self, gpu: str) -> list[Path]:
        return sorted(self.root.glob(f"gpu-{_safe_gpu(gpu)}.wait-*.json"))


_PLACE_FILE = re.compile(r"gpu-([A-Za-z0-9_-]+)\.place-([0-9]+)\.lock")


def _safe_gpu(gpu: str) -> str:
    """A GPU id as a file name part: an index ("2") or a UUID ("GPU-8f3a..."); any
    other character (a MIG id's "/") becomes "_"."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", gpu)
