"""The direction of imports between parent and child.

The parent (``orchestrator/``) must start in well under a second and never load
torch or user code; the child (``worker/``) must not depend on the parent's
internals, or a change to the scheduler could break every running job. The one
shared piece is ``orchestrator.contract``. These tests read every module's
imports with ``ast`` (so an import inside a function counts too) and fail on
any that goes the wrong way.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

# The parent may import the worker's modules only by these names: submitit
# pickles ``worker.slurm_job``'s callables in the parent, so that module is
# torch-free by design (and checked below).
PARENT_MAY_IMPORT_FROM_WORKER = {"worker.slurm_job"}
# Besides the standard library, what ``worker.slurm_job`` may import.
SLURM_JOB_MAY_IMPORT = {"submitit", "orchestrator", "worker"}
HEAVY = {"torch", "lightning", "pytorch_lightning", "torchvision", "numpy", "matplotlib"}
TORCH_SIDE = {"torch", "lightning", "pytorch_lightning", "torchvision", "torchmetrics"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, wherever the import sits.

    ``from a.b import c`` counts as ``a.b`` and ``a.b.c`` (c may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules_under(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_scan_sees_the_known_imports() -> None:
    # Guard the guard: a scan that found nothing would pass every rule below.
    assert "orchestrator.contract.records" in imported_modules(ROOT / "worker" / "run.py")
    assert "torch" in imported_modules(ROOT / "worker" / "run.py")
    assert len(modules_under("orchestrator")) > 20 and len(modules_under("worker")) > 5


@pytest.mark.parametrize("path", modules_under("worker"), ids=lambda p: str(p.relative_to(ROOT)))
def test_worker_imports_only_the_contract_from_the_parent(path: Path) -> None:
    wrong = sorted(
        name
        for name in imported_modules(path)
        if is_under(name, "orchestrator")
        and name != "orchestrator"
        and not is_under(name, "orchestrator.contract")
    )
    assert not wrong, f"{path.relative_to(ROOT)} imports the parent's internals: {wrong}"


@pytest.mark.parametrize(
    "path", modules_under("orchestrator"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_parent_never_imports_the_torch_side(path: Path) -> None:
    imports = imported_modules(path)
    from_worker = {n for n in imports if is_under(n, "worker")}
    wrong_worker = sorted(
        n
        for n in from_worker
        if not any(is_under(n, allowed) for allowed in PARENT_MAY_IMPORT_FROM_WORKER)
        # ``from worker.slurm_job import SlurmRun`` also yields the class's name
        and not any(n.startswith(allowed + ".") for allowed in PARENT_MAY_IMPORT_FROM_WORKER)
    )
    heavy = sorted(n for n in imports if n.split(".")[0] in TORCH_SIDE)
    assert not wrong_worker, f"{path.relative_to(ROOT)} imports the worker: {wrong_worker}"
    assert not heavy, f"{path.relative_to(ROOT)} imports torch's side: {heavy}"


@pytest.mark.parametrize(
    "path", modules_under("orchestrator/contract"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_contract_imports_only_itself_and_the_standard_library(path: Path) -> None:
    wrong = sorted(
        n
        for n in imported_modules(path)
        if (is_under(n, "orchestrator") and not is_under(n, "orchestrator.contract"))
        or is_under(n, "worker")
        or n.split(".")[0] in HEAVY
    )
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_slurm_job_module_is_torch_free() -> None:
    stdlib = set(sys.stdlib_module_names)
    imports = imported_modules(ROOT / "worker" / "slurm_job.py")
    wrong = sorted(n for n in imports if n.split(".")[0] not in stdlib | SLURM_JOB_MAY_IMPORT)
    wrong += sorted(
        n for n in imports if is_under(n, "worker") and not is_under(n, "worker.slurm_job")
    )
    assert not wrong, f"worker/slurm_job.py (pickled by the parent) imports {wrong}"


def test_importing_the_contract_loads_no_torch_and_no_parent_internals() -> None:
    code = (
        "import sys, orchestrator.contract\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(HEAVY)!r})\n"
        "inner = sorted(m for m in sys.modules if m.startswith('orchestrator.')"
        " and not m.startswith('orchestrator.contract') and m != 'orchestrator.errors')\n"
        "print(heavy, inner)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[] []", done.stdout + done.stderr
