"""What a Python process started under coverage does before the tracer starts.

scripts/setup.sh puts a line in the dev venv (``a0_xorch_coverage_children.pth``)
that runs this file in every process that inherits coverage's variables (``patch =
["subprocess"]`` in pyproject), before coverage's own ``a1_coverage.pth`` starts
the tracer there. Without coverage it is never read. By the process's command line:

- a training child (``worker.train_one``, ``worker.forkserver``,
  ``worker.check_build``; each imports torch and Lightning anyway) imports them
  here, untraced: traced, the same import costs 2-3 s more CPU per child, and
  none of it is code that is measured (orchestrator/, worker/ are imported later,
  and traced as before);
- the fake worker (``tests.fake_worker``) runs without coverage: it is the tests'
  stand-in for training, so the contract lines it runs are the tests' use of the
  contract, not the product's, and starting coverage cost ~0.15 s CPU in each of
  its ~900 starts.
"""

from __future__ import annotations

import os
import sys

TRAINING_ENTRIES = ("worker.train_one", "worker.forkserver", "worker.check_build")
UNMEASURED_ENTRIES = ("tests.fake_worker",)
COVERAGE_VARIABLES = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")


def _entry() -> str | None:
    """The module of ``python -m MODULE``, else None."""
    argv = sys.orig_argv[1:]
    return argv[1] if len(argv) >= 2 and argv[0] == "-m" else None


entry = _entry()
if entry in TRAINING_ENTRIES:
    import lightning.pytorch  # noqa: F401
    import pytorch_lightning  # noqa: F401
    import torch  # noqa: F401
elif entry in UNMEASURED_ENTRIES:
    for name in COVERAGE_VARIABLES:
        os.environ.pop(name, None)
