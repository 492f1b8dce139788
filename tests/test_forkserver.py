"""launcher: forkserver: same results as spawn, same failure classes, nothing left
behind when the parent dies."""

from __future__ import annotations

import signal
import time

import psutil
import pytest
import yaml

from tests.helpers import (
    by_seed,
    faulty_config,
    read_state,
    running_attempt,
    wait_for,
    xorch,
    xorch_popen,
)

pytestmark = pytest.mark.lightning  # the fork server preloads torch and Lightning: its subject


def servers_for(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "worker.forkserver" in cmdline and marker in cmdline:
            found.append(process)
    return found


def test_forkserver_runs_give_the_same_metrics_as_spawned_runs(lightning_study, tmp_path):
    path, out, _ = lightning_study
    config = yaml.safe_load(path.read_text())
    config["experiments_runner"].update(
        seeds=[42, 101], launcher="forkserver", output_base_dir=str(tmp_path / "forked")
    )
    forked = tmp_path / "forked.yaml"
    forked.write_text(yaml.safe_dump(config))
    result = xorch("launch", str(forked), cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    spawned = {r["seed"]: r["metrics"] for r in read_state(out)["runs"]}
    for record in read_state(tmp_path / "forked")["runs"]:
        assert record["metrics"] == spawned[record["seed"]]  # bit-identical
    assert not servers_for(str(path.parent))  # the server went away with the study


def test_failure_classes_hold_for_forked_runs(workdir, write_config):
    faults = {1: "raise", 2: "sigkill", 3: "hang", 4: "segfault"}
    config = faulty_config(
        workdir,
        faults,
        seeds=[1, 2, 3, 4, 5],
        max_retries=0,
        hang_timeout=12,  # beats every 2 s, from before the torch import on
        grace_period=1,
        launcher="forkserver",
    )
    result = xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    runs = by_seed(workdir / "out")
    assert [runs[s]["failure"] for s in (1, 2, 3, 4)] == ["failed", "killed", "hang", "signal"]
    assert "boom on purpose" in runs[1]["attempts"][0]["reason"]
    assert runs[5]["status"] == "completed"
    assert "fork server" not in result.stdout  # no fallback to spawn was needed


def test_sigkill_of_the_parent_leaves_no_server_and_no_run(workdir, write_config):
    out = workdir / "out"
    config = faulty_config(workdir, {}, seeds=[1, 2], launcher="forkserver")
    config["pl_trainer"]["max_epochs"] = 20  # still training when the test acts
    path = write_config(config)
    parent = xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(
            lambda: (out / "run_00_seed1" / "heartbeat.json").exists() and running_attempt(out, 0),
            what="a forked run training",
        )
        child = running_attempt(out, 0)["pid"]
        assert servers_for(str(workdir))
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (servers_for(str(workdir)) or psutil.pid_exists(child)):
        time.sleep(0.2)
    assert not servers_for(str(workdir))
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    result = xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["status"] for r in read_state(out)["runs"]] == ["completed", "completed"]


def test_a_dead_fork_server_is_started_again(workdir, write_config):
    out = workdir / "out"
    config = faulty_config(workdir, {}, seeds=[1, 2], launcher="forkserver", max_retries=1)
    config["pl_trainer"]["max_epochs"] = 20  # still training when the test acts
    parent = xorch_popen("launch", str(write_config(config)), cwd=workdir)
    try:
        wait_for(
            lambda: (out / "run_00_seed1" / "heartbeat.json").exists() and running_attempt(out, 0),
            what="a forked run training",
        )
        for server in servers_for(str(workdir)):
            server.kill()
        stdout, _ = parent.communicate(timeout=400)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, stdout
    assert "the fork server died; starting it again" in stdout
    first, second = read_state(out)["runs"][0]["attempts"]
    assert first["outcome"] == "interrupted" and "fork server died" in first["reason"]
    assert second["outcome"] == "completed"


def test_forkserver_is_the_default_and_spawn_stays_available(tmp_path):
    from orchestrator.config import load_study
    from orchestrator.contract.paths import StudyPaths
    from orchestrator.launchers import ForkserverLauncher, LocalLauncher, make_launcher
    from tests.helpers import tiny_config

    def launcher_for(**runner: object) -> object:
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(tiny_config(tmp_path / "out", **runner)))
        spec = load_study(path)
        return make_launcher(spec, StudyPaths(spec.output_dir))

    assert isinstance(launcher_for(), ForkserverLauncher)
    assert isinstance(launcher_for(launcher="spawn"), LocalLauncher)


def test_where_forking_is_unsafe_runs_are_spawned_and_it_is_said_once(tmp_path, monkeypatch):
    from orchestrator.launchers import ForkserverLauncher, LocalLauncher

    monkeypatch.setattr("sys.platform", "darwin")
    spawned: list[object] = []
    monkeypatch.setattr(LocalLauncher, "start", lambda self, run, env: spawned.append(run))
    said: list[str] = []
    launcher = ForkserverLauncher({"modules": []}, tmp_path / "forkserver.log", said.append)
    launcher.start("run 0", {})
    launcher.start("run 1", {})
    assert spawned == ["run 0", "run 1"]
    assert len(said) == 1 and "starting runs with spawn instead" in said[0]
    assert not servers_for(str(tmp_path))
