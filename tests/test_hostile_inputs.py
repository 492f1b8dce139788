"""The project's hostile-input list (scripts/hostile_inputs.py) holds: every
careless or hostile input gets its one-line answer, and nothing is written."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_every_hostile_input_gets_its_answer():
    done = subprocess.run(
        [sys.executable, "scripts/hostile_inputs.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].endswith(" passed, 0 failed"), done.stdout
