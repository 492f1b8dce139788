"""The fake worker behaves as its docstring says, as a real child of the real
launcher inside a whole study (``launch_spec(launcher=...)``)."""

from __future__ import annotations

import json
import time

import yaml

from orchestrator.config import load_study
from orchestrator.console import Reporter
from orchestrator.contract.paths import StudyPaths
from orchestrator.launchers.local import LocalLauncher
from orchestrator.state import RunStatus
from orchestrator.state_store import load_state
from orchestrator.study import launch_spec
from tests.fakes import fake_study_config


def test_a_study_of_fake_children_completes_retries_and_resumes(tmp_path):
    acts = {"1": {"1": {"do": "raise", "message": "boom", "at_step": 1}}}
    config = fake_study_config(tmp_path / "out", seeds=(0, 1), steps=3, acts=acts, max_retries=1)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    spec = load_study(tmp_path / "s.yaml")
    began = time.monotonic()
    launch_spec(spec, reporter=Reporter(), launcher=LocalLauncher(entry="tests.fake_worker"))
    assert time.monotonic() - began < 20
    state = load_state(StudyPaths(spec.output_dir))
    assert state is not None
    assert [r.status for r in state.runs] == [RunStatus.COMPLETED] * 2
    assert len(state.runs[1].attempts) == 2
    # attempt 2 resumed from attempt 1's saved step and trained only the rest
    metrics = json.loads((StudyPaths(spec.output_dir).run(state.runs[1].dir).metrics).read_text())
    assert metrics["resumed_from"] and metrics["metrics"]["steps_done"] == 2
    summary = StudyPaths(spec.output_dir).summary.read_text()
    assert "1.5" in summary and "0.5" in summary


def test_a_hung_run_is_stopped_with_the_grandchild_it_started(tmp_path):
    """The hang verdict stops the child's whole process group: a process the
    training started (a DataLoader worker, say) does not outlive the attempt."""
    import re

    import psutil

    acts = {"0": {"*": {"do": "grandchild_hang"}}}
    config = fake_study_config(
        tmp_path / "out", seeds=(0,), acts=acts, max_retries=0, hang_timeout=1, grace_period=1
    )
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    spec = load_study(tmp_path / "s.yaml")
    launch_spec(spec, reporter=Reporter(), launcher=LocalLauncher(entry="tests.fake_worker"))
    state = load_state(StudyPaths(spec.output_dir))
    assert state is not None and state.runs[0].attempts[0].attempt_class.value == "hang"
    log = StudyPaths(spec.output_dir).run(state.runs[0].dir).log.read_text()
    found = re.search(r"grandchild pid (\d+)", log)
    assert found, log
    pid = int(found.group(1))
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
