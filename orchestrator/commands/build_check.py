"""``xorch validate``'s second half: build one run from the config in a child.

The plan checks (``orchestrator.commands.validate``) never import torch or the user's code,
so they cannot see a class_path that does not import, a class of the wrong
kind, an ``init_args`` key the class does not take or an unknown Trainer
argument. This module asks one child process (``python -m worker.check_build``)
to build the model, data module, callbacks, loggers and Trainer with the
worker's own code, without training, and returns its problems, one line each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from orchestrator.config import StudySpec

__all__ = ["BuildCheck", "check_build"]

# Importing torch and Lightning takes seconds; a user's model may download
# weights. A build that takes longer than this is itself worth a line.
BUILD_CHECK_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class BuildCheck:
    problems: tuple[str, ...]  # one line each, starting with the config key at fault
    built: tuple[str, ...]  # e.g. "model QuickClassifier", "Trainer"


def check_build(spec: StudySpec, timeout_s: float = BUILD_CHECK_TIMEOUT_S) -> BuildCheck:
    """Build model, data, callbacks and Trainer from ``spec`` in one child process."""
    if spec.shape.is_command:
        # The program is the user's own: nothing to build; config checks found it.
        return BuildCheck((), ())
    seeds = spec.runner.seeds
    request = {
        # fold 0 at the fold key: a data module without that argument is refused here
        "config": spec.run_config(None, 0 if spec.runner.folds else None),
        "import_paths": list(spec.import_paths),
        "seed": seeds[0] if seeds else 0,
    }
    # No GPU for the check: building must not start CUDA or take a card's memory.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    try:
        child = subprocess.run(
            [sys.executable, "-m", "worker.check_build"],
            input=json.dumps(request, default=str),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return BuildCheck(
            (
                f"building the run took over {timeout_s:g} s; check with --fast, or look "
                "at what the model's constructor does",
            ),
            (),
        )
    try:
        answer = json.loads(child.stdout.strip().splitlines()[-1])
        return BuildCheck(tuple(answer["problems"]), tuple(answer["built"]))
    except (IndexError, ValueError, KeyError, TypeError):
        # The child died before it could answer (a crash in the user's import,
        # a signal): its last line of stderr is the best we have.
        tail = [line for line in child.stderr.splitlines() if line.strip()]
        last = tail[-1].strip() if tail else "no output"
        how = (
            f"exit status {child.returncode}"
            if child.returncode >= 0
            else (f"signal {-child.returncode}")
        )
        return BuildCheck((f"building the run failed ({how}): {last[:300]}",), ())
