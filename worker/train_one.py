"""The child entry point: ``python -m worker.train_one RUN_SPEC_JSON``.

One process trains one run and exits. Everything it learns goes into files in
the run directory (see ``orchestrator.contract.records``); the exit status is 0 when
metrics.json was written, 1 when error.json was, 2 when error.json says the
config could not be built (``worker.build.BuildError``).
"""

from __future__ import annotations

import sys

from worker.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
