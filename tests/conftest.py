"""Fixtures shared by the tests: folders with awkward names, config writing, and
one real 3-seed study that the tests which only read it share. Helpers that test
modules import are in tests/helpers.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import TORCH_WATCH, slurm_up, tiny_config

TORCH_GUARD = Path(__file__).parent / "torch_guard"


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background (``cmd &``, nohup) inherits SIGINT or
    SIGHUP ignored, and so would every child it starts; the tests that send
    them need what a terminal gives, so the defaults are put back."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n 3 --dist loadgroup``, as CI runs): the tests of
    the shared real study go to one worker, so it trains once, not once per
    worker; and the Slurm tests go to one worker too, one at a time, since the
    one-node Slurm has two CPUs and their jobs would queue behind each other's
    while the tests wait on timers. The DDP tests (two ranks each) go to one
    worker as well: three of them side by side put six training processes on
    two cores (the three took 116, 94 and 86 s in CI that way).

    The tests keep the files' order: putting the longest first (``slow``, then
    ``lightning``) was tried and made CI slower (pytest 901 s against 823 s),
    as every Lightning child then starts at once and the two cores are shared
    by all of them."""
    if not hasattr(config, "workerinput"):  # not an xdist worker
        return
    if config.getvalue("loadgroup"):
        for item in items:
            if "lightning_study" in getattr(item, "fixturenames", ()):
                _join_group(item, "lightning_study")
            elif item.get_closest_marker("slurm"):
                _join_group(item, "slurm")
            elif item.path.name == "test_ddp.py":
                _join_group(item, "ddp")


def _join_group(item: pytest.Item, group: str) -> None:
    """Put ``item`` in loadgroup's ``group``: the ``@group`` suffix of its id is
    what the scheduler goes by. xdist adds it for an ``xdist_group`` mark from
    its own worker-side collection hook, which a mark added by this hook may
    come after (pytest-xdist#1241), and from pytest 9.2 on to no effect: it
    sets ``_nodeid``, which the id is no longer read from (pytest-xdist#1386).
    The groups above were never formed that way (each Slurm test on any worker,
    the shared study trained on several); the suffix is set here, and a pytest
    that keeps the id elsewhere again fails here rather than silently."""
    nodeid = f"{item.nodeid}@{group}"
    if hasattr(item, "_id"):  # pytest >= 9.2: a structured id, parsed back whole
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(nodeid)
    else:
        item._nodeid = nodeid
    assert item.nodeid == nodeid, f"this pytest keeps the test's id elsewhere: {nodeid}"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``slurm`` needs the local one-node Slurm: skipped without it,
    except in CI, which starts it (a missing Slurm there is a failure). Asked
    only when such a test runs: ``sinfo`` waits about 10 s for a controller
    that is not there, which every test process paid at collection before."""
    if item.get_closest_marker("slurm") and not os.environ.get("CI") and not slurm_up():
        pytest.skip("no local Slurm: run scripts/slurm_local.sh")


@pytest.fixture(autouse=True)
def _no_torch_in_the_children_of_fast_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test not marked ``lightning`` or ``slurm`` gets children that cannot
    import torch (tests/torch_guard/sitecustomize.py): the marker is then the
    truth about which tests pay for a Lightning child."""
    if any(request.node.get_closest_marker(m) for m in ("lightning", "slurm")):
        return
    if "lightning_study" in request.fixturenames:  # real, and started before this
        pytest.fail("a test of the shared `lightning_study` must be marked @pytest.mark.lightning")
    paths = [str(TORCH_GUARD), *filter(None, [os.environ.get("PYTHONPATH", "")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("XORCH_TESTS_NO_TORCH", "1")


@pytest.fixture(autouse=True)
def _own_gpu_lease_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own machine-wide GPU lease folder (``XORCH_GPU_LEASES``): tests
    that run at once on fake GPU ids 0 and 1 are not one machine, and must not
    wait for each other's leases (the studies of one test share it)."""
    monkeypatch.setenv("XORCH_GPU_LEASES", str(tmp_path / "gpu-leases"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder whose name has a space and a quote, as users' folders sometimes do."""
    folder = tmp_path / "my study's dir"
    folder.mkdir()
    return folder


@pytest.fixture
def write_config(workdir: Path) -> Callable[..., Path]:
    def write(config: dict, name: str = "study.yaml") -> Path:
        path = workdir / name
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def lightning_study(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """One real 3-seed study, shared by the tests that only read it."""
    workdir = tmp_path_factory.mktemp("e2e") / "a study's folder"
    workdir.mkdir()
    out = workdir / "outputs" / "my_study"
    config = tiny_config(out, seeds=(42, 101, 28), summary_metrics=["val/loss", "val/acc"])
    config["test_dataset"] = {"size": 32}
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-c", TORCH_WATCH, "launch", str(path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return path, out, result
