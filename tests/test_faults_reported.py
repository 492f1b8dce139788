"""Faults that were swallowed by a broad ``except`` are now told, and only a
checkpoint that is really damaged is moved aside."""

from __future__ import annotations

import sys
import warnings
from datetime import datetime, timezone

import pytest

from orchestrator.config import load_study
from orchestrator.contract.paths import StudyPaths, run_dir_name
from orchestrator.state import Attempt, AttemptClass, RunRecord, StudyState
from orchestrator.state_store import save_state
from tests.helpers import read_state, tiny_config, xorch


@pytest.mark.parametrize("damage", ["truncated", "cut short", "empty", "garbage"])
def test_a_damaged_checkpoint_is_moved_aside(tmp_path, damage):
    import torch

    from worker.checkpoints import usable_checkpoint

    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(4)}}, path)
    data = path.read_bytes()
    # "cut short": a few bytes missing at the end, as a full disk leaves it;
    # torch's reader raises OSError (EINVAL) for that one.
    path.write_bytes(
        {
            "truncated": data[: len(data) // 2],
            "cut short": data[:-10],
            "empty": b"",
            "garbage": bytes(range(256)) * 4,
        }[damage]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert usable_checkpoint(path) is None
    assert not path.exists() and (tmp_path / "last.ckpt.damaged-1").is_file()
    assert "starting this run from scratch" in str(caught[0].message)


@pytest.mark.parametrize("change", ["module gone", "class renamed"])
def test_a_checkpoint_whose_class_no_longer_imports_is_a_config_error_and_kept(
    tmp_path, monkeypatch, change
):
    """A user's class pickled in the checkpoint that does not import now is the
    code's fault, not the file's: the checkpoint stays where it is."""
    import torch

    from worker.build import BuildError
    from worker.checkpoints import usable_checkpoint

    module_dir = tmp_path / "code"
    module_dir.mkdir()
    (module_dir / "user_hparams.py").write_text("class Schedule:\n    pass\n")
    monkeypatch.syspath_prepend(str(module_dir))
    import user_hparams

    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"schedule": user_hparams.Schedule()}}, path)
    del sys.modules["user_hparams"]
    if change == "module gone":
        (module_dir / "user_hparams.py").unlink()
    else:
        (module_dir / "user_hparams.py").write_text("class Renamed:\n    pass\n")
    with pytest.raises(BuildError, match="does not import now"):
        usable_checkpoint(path)
    assert path.is_file() and not list(tmp_path.glob("*.damaged-*"))
    sys.modules.pop("user_hparams", None)


FLAKY = """
import pathlib
marker = pathlib.Path(__file__).with_name("imported-once")
if not marker.exists():
    marker.write_text("x")
    raise RuntimeError("first import fails on purpose")
from worker.tasks.quick import QuickClassifier as FlakyClassifier
"""


@pytest.mark.lightning
def test_a_module_the_fork_server_cannot_preload_is_reported(workdir, write_config):
    """The fork server's import fails (the runs' own imports succeed): the parent
    says so on the terminal, the server's log has the traceback, the study runs."""
    (workdir / "flaky_model.py").write_text(FLAKY)
    out = workdir / "out"
    config = tiny_config(out, seeds=(3,), launcher="forkserver")
    config["pl_trainer"]["max_epochs"] = 1
    config["model"]["class_path"] = "flaky_model.FlakyClassifier"
    result = xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    # A warning on stderr, not a progress line.
    assert "could not preload" not in result.stdout
    said = [line for line in result.stderr.splitlines() if "could not preload" in line]
    assert len(said) == 1, result.stderr
    assert said[0].startswith("xorch: warning: launcher forkserver: could not preload")
    assert "flaky_model (RuntimeError: first import fails on purpose" in said[0]
    log = (out / "forkserver.log").read_text()
    assert "Traceback" in log and "first import fails on purpose" in log
    assert read_state(out)["runs"][0]["status"] == "completed"


def test_a_failed_final_summary_write_is_one_line(workdir, write_config):
    out = workdir / "out"
    config_path = write_config(tiny_config(out, seeds=(5,)))
    spec = load_study(config_path)
    paths = StudyPaths(out)
    paths.root.mkdir(parents=True)
    now = datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")
    attempt = Attempt(number=1, started_at=now, log="x/train.log")
    done = Attempt(
        number=1,
        started_at=now,
        log="x/train.log",
        attempt_class=AttemptClass.COMPLETED,
        ended_at=now,
        duration_s=1.0,
    )
    state = StudyState(
        spec.fingerprint,
        dict(spec.training),
        (5,),
        (RunRecord(index=0, seed=5, dir=run_dir_name(0, 5, 1)),),
    )
    state = state.start_attempt(0, attempt).finish_attempt(0, done, {"val/loss": 0.5})
    save_state(paths, state)
    paths.summary.mkdir()  # summary.csv cannot be replaced: it is a folder
    result = xorch("launch", str(config_path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stdout.splitlines() if "could not write" in x]
    assert str(paths.summary) in line and "--resume" in line
    assert f"summary: {paths.summary}" not in result.stdout
