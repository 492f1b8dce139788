"""``xorch launch a.yaml b.yaml``: several studies, one after another or side by
side (``--together``); every config checked before any starts. Real parents
(``tests.fake_xorch``) and fake workers, each child logging its start and end
to one probes.jsonl."""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from orchestrator.commands.launch_many import split_configs
from orchestrator.contract.paths import StudyPaths
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import read_state, running_attempt, wait_for, wait_gone


def study(workdir: Path, name: str, seeds=(1, 2), acts=None, steps=3, **runner) -> Path:
    gpus = runner.pop("gpus", "none")
    config = fake_study_config(workdir / name, seeds=seeds, steps=steps, acts=acts, **runner)
    config["experiments_runner"]["gpus"] = gpus
    config["model"]["init_args"]["probe_log"] = str(workdir / "probes.jsonl")
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def spans(workdir: Path, name: str) -> list[tuple[float, float, str | None]]:
    """(start, end, CUDA_VISIBLE_DEVICES) of each attempt of study ``name``."""
    starts, found = {}, []
    for line in (workdir / "probes.jsonl").read_text().splitlines():
        event = json.loads(line)
        if Path(event["run_dir"]).parent.name != name:
            continue
        if event["event"] == "started":
            starts[event["pid"]] = event
        else:
            start = starts.pop(event["pid"])
            found.append((start["time"], event["time"], start["gpu"]))
    return found


@pytest.mark.parametrize(
    ("arguments", "configs", "overrides"),
    [
        ([], [], []),
        (["b.yaml"], ["b.yaml"], []),
        (["b.yaml", "conf/c.yml", "x=1"], ["b.yaml", "conf/c.yml"], ["x=1"]),
        (["pl_trainer.max_epochs=3", "b.yaml"], ["b.yaml"], ["pl_trainer.max_epochs=3"]),
        (["data.file=train.yaml"], [], ["data.file=train.yaml"]),  # a value, not a config
        (["~logger", "+extra=1"], [], ["~logger", "+extra=1"]),  # Hydra's grammar
    ],
)
def test_further_configs_are_told_from_overrides(arguments, configs, overrides):
    assert split_configs(arguments) == ([Path(c) for c in configs], overrides)


def test_studies_in_turn_one_after_another_the_exit_code_is_the_worst(workdir):
    first = study(workdir, "first")
    failing = study(workdir, "failing", acts={"2": {"*": {"do": "raise"}}}, max_retries=0)
    result = fake_xorch("launch", str(first), str(failing), "pl_trainer.max_epochs=2", cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr  # failed runs: 1, not 0
    assert "study 1 of 2" in result.stdout and "study 2 of 2" in result.stdout
    assert [r["status"] for r in read_state(workdir / "first")["runs"]] == ["completed"] * 2
    assert [r["status"] for r in read_state(workdir / "failing")["runs"]] == [
        "completed",
        "failed",
    ]
    # The override reached both studies.
    for name in ("first", "failing"):
        assert read_state(workdir / name)["training_config"]["pl_trainer"]["max_epochs"] == 2
    assert max(end for _, end, _ in spans(workdir, "first")) < min(
        start for start, _, _ in spans(workdir, "failing")
    )
    assert f"{workdir / 'first'}: exit 0" in result.stdout
    assert f"{workdir / 'failing'}: exit 1" in result.stdout


def test_a_bad_config_among_several_is_refused_before_any_starts(workdir):
    good = study(workdir, "good")
    typo = study(workdir, "typo")
    config = yaml.safe_load(typo.read_text())
    config["experiments_runner"]["max_retires"] = 1
    typo.write_text(yaml.safe_dump(config))
    twin = workdir / "twin.yaml"  # the same output folder as good.yaml
    twin.write_text(good.read_text())
    result = fake_xorch("launch", str(good), str(typo), str(twin), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "Traceback" not in result.stderr, lines
    assert lines[0].startswith(f"xorch: error: {typo}: ") and "max_retries" in lines[0]
    assert lines[1].startswith(f"xorch: error: {twin}: its output_base_dir")
    assert not (workdir / "good").exists() and not (workdir / "probes.jsonl").exists()


def test_together_the_studies_run_side_by_side_sharing_one_gpu(workdir):
    configs = [study(workdir, n, (1, 2), steps=10, gpus=[0], runs_per_gpu=1) for n in "ab"]
    result = fake_xorch("launch", *map(str, configs), "--together", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("[a] ") for line in lines)
    assert any(line.startswith("[b] ") for line in lines)
    a, b = spans(workdir, "a"), spans(workdir, "b")
    assert len(a) == len(b) == 2 and {gpu for *_, gpu in a + b} == {"0"}
    everything = sorted(a + b)
    for (_, end, _), (start, _, _) in itertools.pairwise(everything):
        assert end <= start  # never two runs on GPU 0 at once
    # Side by side: each study started a run before the other one's last ended.
    assert min(s for s, _, _ in b) < max(e for _, e, _ in a)
    assert min(s for s, _, _ in a) < max(e for _, e, _ in b)


def test_together_passes_a_stop_on_and_its_studies_stop_when_it_is_killed(workdir):
    outs = [workdir / "a", workdir / "b"]
    configs = [str(study(workdir, out.name, seeds=(1,), steps=20)) for out in outs]

    def both_on_attempt(number: int) -> bool:
        attempts = [running_attempt(out, 0) for out in outs]
        return all(a is not None and a["number"] == number for a in attempts)

    together = fake_xorch_popen("launch", *configs, "--together", cwd=workdir)
    wait_for(lambda: both_on_attempt(1), timeout=60, what="both studies running")
    together.send_signal(signal.SIGTERM)  # passed on: each stops as a launch does
    out = together.communicate(timeout=60)
    assert together.returncode == 143, out
    for folder in outs:
        assert read_state(folder)["runs"][0]["status"] == "interrupted"
    together = fake_xorch_popen("launch", *configs, "--together", "--resume", cwd=workdir)
    wait_for(lambda: both_on_attempt(2), timeout=60, what="both studies resumed")
    owners = [json.loads(StudyPaths(o).launcher_owner.read_text())["pid"] for o in outs]
    os.kill(together.pid, signal.SIGKILL)  # each study gets SIGTERM from its parent's death
    together.communicate(timeout=30)
    for pid in owners:
        wait_gone(pid, "a study of the killed --together")
    for folder in outs:
        assert read_state(folder)["runs"][0]["status"] == "interrupted"
    finished = fake_xorch("launch", *configs, "--resume", cwd=workdir)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    for folder in outs:
        assert read_state(folder)["runs"][0]["status"] == "completed"
