"""Files a careless or hostile hand left where xorch reads: JSON nested deeper
than the parser goes, files that never end or are too big, and paths that are
not regular files or folders. Each is read within a limit or refused with one
line; none is a traceback or a hang (issue 23)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.contract.limits import MAX_CONFIG_BYTES, MAX_CSV_TAIL_BYTES, MAX_STATE_BYTES, mib
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import read_state, tiny_config, xorch

DEEP_FILES = {"0": "metrics", "1": "error", "2": "heartbeat", "3": "rank_exit"}


def _deep_study(tmp_path: Path) -> tuple[Path, Path]:
    """Four runs, each leaving one record 200,000 ``[`` deep (metrics.json after
    exit 0; error.json, heartbeat.json held a moment, rank_exit.json after exit 1)."""
    out = tmp_path / "out"
    acts = {
        seed: {
            "1": {
                "do": "deep_json",
                "file": name,
                "code": 0 if name == "metrics" else 1,
                "hold_s": 0.6 if name == "heartbeat" else 0,
            }
        }
        for seed, name in DEEP_FILES.items()
    }
    config = fake_study_config(out, seeds=(0, 1, 2, 3), acts=acts, max_retries=1)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, out


def test_records_nested_too_deep_are_no_word_and_the_study_goes_on(tmp_path):
    path, out = _deep_study(tmp_path)
    launched = fake_xorch("launch", str(path), cwd=tmp_path, timeout=120)
    assert "Traceback" not in launched.stderr, launched.stderr
    runs = {r["seed"]: r for r in read_state(out)["runs"]}
    assert {r["status"] for r in runs.values()} <= {"completed", "failed", "no_metrics"}
    first = {seed: r["attempts"][0] for seed, r in runs.items()}
    assert first[0]["outcome"] == "no_metrics" and "metrics.json" in first[0]["reason"]
    assert "nested too deeply" in first[0]["reason"]
    assert all(first[seed]["outcome"] == "failed" for seed in (1, 2, 3)), first
    assert all(r["status"] == "completed" for seed, r in runs.items() if seed), runs
    resumed = fake_xorch("launch", str(path), "--resume", cwd=tmp_path, timeout=120)
    assert "Traceback" not in resumed.stderr, resumed.stderr
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def test_a_deep_metrics_json_left_running_is_classified_by_resume(tmp_path):
    """The state says running (a launch killed mid-run) and the run left a deep
    metrics.json: ``--resume`` reads it as no word and goes on."""
    path, out = _deep_study(tmp_path)
    fake_xorch("launch", str(path), cwd=tmp_path, timeout=120)
    state_path = out / "runner_state.json"
    state = read_state(out)
    run = state["runs"][0]
    run["status"] = "running"
    run["attempts"][-1].update(
        {"outcome": None, "reason": "", "ended_at": None, "exit_code": None, "duration_s": None}
    )
    run.update({"ended_at": None, "duration_s": None, "metrics": {}, "exit_code": None})
    (out / run["dir"] / "metrics.json").write_text("[" * 200_000)
    state_path.write_text(__import__("json").dumps(state))
    resumed = fake_xorch("launch", str(path), "--resume", cwd=tmp_path, timeout=120)
    assert "Traceback" not in resumed.stderr, resumed.stderr
    assert resumed.returncode in (0, 1), resumed.stdout + resumed.stderr
    assert all(r["status"] != "running" for r in read_state(out)["runs"])


@pytest.mark.parametrize("content", ["[" * 200_000, '{"schema_version": 1, "runs": ' + "[" * 5000])
def test_a_state_file_nested_too_deep_is_one_line_exit_2(tmp_path, content):
    out = tmp_path / "out"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(fake_study_config(out, seeds=(0,))))
    assert fake_xorch("launch", str(path), cwd=tmp_path, timeout=120).returncode == 0
    (out / "runner_state.json").write_text(content)
    for args in (("launch", str(path), "--resume"), ("status", str(out))):
        result = fake_xorch(*args, cwd=tmp_path, timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert "runner_state.json" in result.stderr and ".bak" in result.stderr


def _one_line_refusal(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("command", ["validate", "launch"])
def test_a_fifo_as_config_is_refused_not_waited_on(tmp_path, command):
    fifo = tmp_path / "study.yaml"
    os.mkfifo(fifo)
    result = xorch(command, str(fifo), cwd=tmp_path, timeout=30)
    _one_line_refusal(result, str(fifo), "not a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


@pytest.mark.parametrize("endless", ["/dev/zero", "/dev/urandom"])
def test_an_endless_config_is_refused_promptly(tmp_path, endless):
    started = time.monotonic()
    result = xorch("validate", endless, cwd=tmp_path, timeout=60)
    _one_line_refusal(result, endless)
    assert time.monotonic() - started < 60


def test_a_config_past_the_size_limit_is_refused_naming_the_limit(tmp_path):
    big = tmp_path / "study.yaml"
    with big.open("wb") as handle:  # sparse: the size without the disk
        handle.write(b"# a comment\n")
        handle.truncate(MAX_CONFIG_BYTES + 1)
    result = xorch("validate", str(big), cwd=tmp_path, timeout=60)
    _one_line_refusal(result, str(big), mib(MAX_CONFIG_BYTES))


@pytest.mark.parametrize("kind", ["fifo", "too big", "link to /dev/zero"])
def test_a_file_hydra_would_compose_is_checked_first(tmp_path, kind):
    """A Hydra folder whose defaults list names ``model/net.yaml``: Hydra opens
    that file itself, so xorch checks the folder's YAML files before composing."""
    (tmp_path / "model").mkdir()
    net = tmp_path / "model" / "net.yaml"
    if kind == "fifo":
        os.mkfifo(net)
    elif kind == "too big":
        with net.open("wb") as handle:
            handle.truncate(MAX_CONFIG_BYTES + 1)
    else:
        net.symlink_to("/dev/zero")
    config = tiny_config(tmp_path / "out")
    config.pop("model")  # it comes from model/net.yaml
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"defaults": ["_self_", {"model": "net"}], **config}))
    before = sorted(p.name for p in tmp_path.iterdir())
    for command in ("validate", "launch"):
        result = xorch(command, str(path), cwd=tmp_path, timeout=30)
        _one_line_refusal(result, str(net))
        assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_state_file_past_the_size_limit_is_refused(tmp_path):
    out = tmp_path / "out"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(fake_study_config(out, seeds=(0,))))
    assert fake_xorch("launch", str(path), cwd=tmp_path, timeout=120).returncode == 0
    with (out / "runner_state.json").open("r+b") as handle:
        handle.truncate(MAX_STATE_BYTES + 1)
    result = fake_xorch("status", str(out), cwd=tmp_path, timeout=60)
    _one_line_refusal(result, "runner_state.json", mib(MAX_STATE_BYTES))


@pytest.mark.parametrize("base", ["/proc/self", "/proc/self/xorch-study"])
@pytest.mark.parametrize("command", ["validate", "launch"])
def test_an_output_folder_under_proc_is_refused(tmp_path, base, command):
    config = tiny_config(Path(base), seeds=(0,))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = xorch(command, str(path), cwd=tmp_path, timeout=60)
    _one_line_refusal(result, "output_base_dir")
    assert "in use by another" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_a_huge_metrics_csv_is_read_by_its_tail(tmp_path):
    """A command run's metrics.csv far past the limit: the last values come from
    its tail. The bulk is NUL bytes (a sparse file, as a crashed writer on some
    filesystems leaves one), which a read of the whole file stops at."""
    from orchestrator.command import command_metrics
    from orchestrator.contract.paths import RunPaths

    run = RunPaths(tmp_path / "run")
    csv_path = run.root / "lightning_logs" / "version_0" / "metrics.csv"
    csv_path.parent.mkdir(parents=True)
    with csv_path.open("wb") as handle:
        handle.write(b"epoch,step,val/loss,val/acc\n0,1,2.5,0.1\n")
        handle.truncate(4 * MAX_CSV_TAIL_BYTES)
        handle.seek(0, 2)
        handle.write(b"\n" + b"".join(b"%d,%d,%d.5,\n" % (e, e, e) for e in range(5000)))
        handle.write(b"4999,5000,,0.875\n")
    assert command_metrics(run)[0] == {"val/loss": 4999.5, "val/acc": 0.875}
