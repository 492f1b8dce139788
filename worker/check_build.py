"""``python -m worker.check_build``: build a run from the config, without training.

``xorch validate`` starts this in one child process, so that the parent stays
free of torch and user code. It reads ``{"config": ..., "import_paths": [...],
"seed": N}`` as JSON on stdin and builds the model, the data module, each
callback and logger, and the Trainer with the same code a training run uses
(``worker.build``), collecting every problem instead of stopping at the first.
Nothing is fitted, and nothing is written outside a temporary folder.

The answer is one JSON object, ``{"problems": [...], "built": [...]}``, on the
stdout this process started with; everything else (the user's own prints,
Lightning's messages) goes to stderr. Exit status 0 when it built, 2 when the
config has problems.

The Trainer is built on the CPU (``accelerator``, ``devices``, ``strategy``,
``num_nodes``, ``precision`` and ``plugins`` left out): validate often runs
where the training will not (a login node), and those keys depend on the
machine, not on the config's spelling, which ``check_trainer_arguments``
checks for all of them.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from orchestrator.contract.child import with_run_dir

__all__ = ["check_build", "main"]

T = TypeVar("T")

# Trainer arguments that describe the machine; validate builds on the CPU.
MACHINE_KEYS = ("accelerator", "devices", "strategy", "num_nodes", "precision", "plugins")


def check_build(config: Mapping[str, Any], seed: int = 0) -> tuple[list[str], list[str]]:
    """Every problem building a run from ``config`` (one line each), and what was built."""
    with tempfile.TemporaryDirectory(prefix="xorch-validate-") as scratch:
        # A scratch folder stands in for the run's own, also where the config names it.
        from worker.seed_shape import as_lightning

        return _check_in(as_lightning(with_run_dir(dict(config), scratch)), seed, Path(scratch))


def _check_in(config: Mapping[str, Any], seed: int, run_dir: Path) -> tuple[list[str], list[str]]:
    from worker.build import BuildError, build_data, build_model, choose_package
    from worker.seeding import set_training_seed

    problems: list[str] = []
    built: list[str] = []

    def attempt(where: str, make: Callable[[], T]) -> T | None:
        try:
            return make()
        except BuildError as exc:
            problems.append(str(exc))
        except Exception as exc:  # the user's own constructor raised: report, go on
            # The whole message on one line: a cut one stopped mid-sentence (issue 23).
            text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            problems.append(f"{where}: {type(exc).__name__}: {text}")
        return None

    pkg = attempt("package", lambda: choose_package(config))
    if pkg is None:
        return problems, built  # classes of two Lightning packages: nothing else is built
    set_training_seed(seed, pkg)  # as a run would: a constructor may draw random numbers
    data = attempt("data", lambda: build_data(config, pkg))
    if data is not None:
        built.append(f"data {type(data).__name__}")
    model = attempt("model", lambda: build_model(config, pkg))
    if model is not None:
        built.append(f"model {type(model).__name__}")
    _check_trainer(config, run_dir, pkg, attempt, problems, built)
    return problems, built


def _check_trainer(
    config: Mapping[str, Any], run_dir: Path, pkg: ModuleType,
    attempt: Callable[[str, Callable[[], Any]], Any], problems: list[str], built: list[str],
) -> None:  # fmt: skip
    """The trainer's arguments, each callback and the loggers, each tried through
    ``attempt``; the Trainer itself (on the CPU) when all of them built and nothing
    before them failed."""
    from worker.trainer_parts import (
        build_callback,
        build_loggers,
        build_trainer_parts,
        check_trainer_arguments,
    )

    trainer_config = dict(config.get("pl_trainer") or {})

    def trainer_arguments() -> bool:
        check_trainer_arguments(trainer_config, pkg)
        return True

    trainer_ok = attempt("pl_trainer", trainer_arguments)
    for i, entry in enumerate(config.get("callbacks") or []):
        callback = attempt(
            f"callbacks[{i}]", functools.partial(build_callback, entry, i, run_dir, pkg)
        )
        if callback is not None:
            built.append(f"callbacks[{i}] {type(callback).__name__}")
    loggers = attempt(
        "pl_trainer.logger",
        lambda: build_loggers(trainer_config.get("logger", True), run_dir, pkg),
    )
    if trainer_ok and loggers is not None and not problems:

        def make_trainer() -> Any:
            parts = build_trainer_parts(config, run_dir, [], pkg)
            kwargs = {k: v for k, v in parts.kwargs.items() if k not in MACHINE_KEYS}
            return pkg.Trainer(accelerator="cpu", devices=1, **kwargs)

        if attempt("pl_trainer", make_trainer) is not None:
            built.append("Trainer")


def main() -> int:
    # Our answer goes to the real stdout; anything printed while building goes
    # to stderr, so a print() in the user's constructor cannot garble it.
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.read())
    for extra in reversed(request.get("import_paths", [])):
        if extra not in sys.path:
            sys.path.insert(0, extra)
    problems, built = check_build(request["config"], int(request.get("seed", 0)))
    answer.write(json.dumps({"problems": problems, "built": built}) + "\n")
    answer.close()
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
