"""Every machine fault and bad input ends in one line, a documented exit code,
and no file that existed before changed (issue 10, section 4).

Faults are real where this machine allows them: a small tmpfs that a real study
fills, a read-only bind mount (as root, chmod does not stop a write). Where a
fault must hit one exact write, the parent runs with os.fsync patched to raise
ENOSPC for that one file, as a full disk reports it when the data is flushed.
The subject is the parent: the studies that run have fake workers for children
(tests.fake_xorch), and validate skips its Lightning build child (--fast) where
only the plan's lines are checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.config import load_study
from orchestrator.contract.atomic import atomic_write_bytes, atomic_write_text
from orchestrator.contract.paths import StudyPaths, run_dir_name
from orchestrator.errors import ConfigError, StateError
from orchestrator.runner_spec import MAX_RUNS
from orchestrator.seeds import random_seeds
from orchestrator.state import Attempt, AttemptClass, RunRecord, StudyState
from orchestrator.state_store import load_state, save_state
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import ROOT, snapshot, tiny_config, xorch

# ----------------------------------------------------------------------------- helpers


def one_error_line(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The command failed with ``code`` and exactly one stderr line holding ``needles``."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xorch: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.returncode == code, (result.returncode, result.stderr)
    return lines[0]


def unlocked(files: dict[str, bytes]) -> dict[str, bytes]:
    """A snapshot without the empty lock files a launch leaves (filelock never
    deletes them, on purpose: deleting a lock file races with its next user)."""
    return {k: v for k, v in files.items() if not (k.endswith(".lock") and v == b"")}


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def made_study(config: Path, completed: bool) -> StudyPaths:
    """The state a launch of ``config`` would have written, without training:
    all runs pending, or all completed with made-up metrics."""
    spec = load_study(config)
    seeds = spec.runner.seeds
    assert seeds is not None
    state = StudyState(
        config_fingerprint=spec.fingerprint,
        training_config=dict(spec.training),
        seeds=seeds,
        runs=tuple(
            RunRecord(index=i, seed=s, dir=run_dir_name(i, s, len(seeds)))
            for i, s in enumerate(seeds)
        ),
        summary_metrics=spec.runner.summary_metrics,
    )
    if completed:
        for i in range(len(seeds)):
            attempt = Attempt(number=1, started_at="t0", log="x")
            done = dataclasses.replace(
                attempt, attempt_class=AttemptClass.COMPLETED, ended_at="t1", duration_s=2.0
            )
            state = state.start_attempt(i, attempt).finish_attempt(
                i, done, {"val/loss": 0.5 + i / 10}
            )
    paths = StudyPaths(spec.output_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    save_state(paths, state)
    return paths


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or 'mount failed'})")


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A real, small filesystem: writes past ``size`` fail with ENOSPC."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def read_only_view(source: Path, folder: Path) -> Iterator[Path]:
    """``source`` seen read-only at ``folder`` (EROFS on every write, even for root)."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(source), str(folder))
    try:
        _mount("-o", "remount,bind,ro", str(folder))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write a filler file until the filesystem under ``folder`` is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


# The CLI in a real process whose os.fsync (or, for a file written without
# one, its rename) fails with ENOSPC for one file's temp file (argv[1]: its
# name), the way a full disk reports delayed writes; its children are fake
# workers (tests.fake_xorch), which the patch never reaches.
ENOSPC_AT = textwrap.dedent(
    """
    import errno, os, sys
    target = "." + sys.argv[1] + "."
    real_fsync, real_replace = os.fsync, os.replace
    def fsync(fd):
        try:
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            name = ""
        if name.startswith(target):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    def replace(source, destination):
        if os.path.basename(str(source)).startswith(target):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, destination)
    os.fsync, os.replace = fsync, replace
    from tests.fake_xorch import main
    main(sys.argv[2:])
    """
)


def fake_xorch_with_enospc_at(
    file_name: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENOSPC_AT, file_name, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


# ----------------------------------------------------------------------------- disk full


def test_a_study_that_fills_a_real_disk_stops_with_exit_3_then_resumes(workdir):
    disk = workdir / "small disk"
    out = disk / "out"
    config = write_yaml(workdir / "study.yaml", fake_study_config(out, seeds=(0, 1)))
    # 28k (7 pages): the state, its .bak and the log fit; the first run's own files
    # (spec, heartbeat, progress) fill the disk, then a state write fails. From 20k
    # to 32k it fails in the first run; from 36k the first run is recorded first.
    with tmpfs(disk, "28k"):
        result = fake_xorch("launch", str(config), cwd=workdir)
        line = one_error_line(result, 3, "No space left on device", str(out))
        state = load_state(StudyPaths(out))  # what was written before is intact
        assert state is not None and not state.completed
        assert not [p for p in out.rglob("*.tmp")]
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        resumed = fake_xorch("launch", str(config), "--resume", cwd=workdir)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        final = load_state(StudyPaths(out))
        assert final is not None and len(final.completed) == 2
    print(line)


def test_a_full_disk_at_the_state_write_leaves_every_file_as_it_was(workdir):
    disk = workdir / "full disk"
    out = disk / "out"
    config = write_yaml(workdir / "study.yaml", tiny_config(out, seeds=(0, 1)))
    with tmpfs(disk, "64k"):
        made_study(config, completed=False)
        fill(disk)
        before = snapshot(disk)
        # A resume that changes summary_metrics rewrites the state before any run.
        result = xorch(
            "launch",
            str(config),
            "--resume",
            "experiments_runner.summary_metrics=[val/acc]",
            cwd=workdir,
        )
        one_error_line(
            result,
            3,
            f"{out / 'runner_state.json'}",
            "No space left on device",
            "previous state is intact",
            "--resume",
        )
        assert unlocked(snapshot(disk)) == unlocked(before)


def test_a_failed_summary_write_stops_with_exit_3_and_keeps_the_recorded_run(workdir):
    out = workdir / "out"
    config = write_yaml(workdir / "study.yaml", fake_study_config(out, seeds=(5,)))
    result = fake_xorch_with_enospc_at("summary.csv", "launch", str(config), cwd=workdir)
    one_error_line(result, 3, str(out / "summary.csv"), "No space left on device", "--resume")
    state = load_state(StudyPaths(out))
    assert state is not None and len(state.completed) == 1  # recorded before the summary
    assert not (out / "summary.csv").exists()
    assert not [p for p in out.rglob("*.tmp")]


def test_a_failed_state_write_at_an_attempt_start_stops_the_child(workdir):
    out = workdir / "out"
    # 5 s of steps: the child cannot finish before the parent stops it.
    config = write_yaml(workdir / "study.yaml", fake_study_config(out, seeds=(5, 6), steps=50))
    paths = made_study(config, completed=False)
    before = snapshot(out)
    result = fake_xorch_with_enospc_at(
        "runner_state.json", "launch", str(config), "--resume", cwd=workdir
    )
    one_error_line(result, 3, str(paths.state), "No space left on device", "previous state")
    after = snapshot(out)
    assert {name: after.get(name) for name in before} == before
    assert not (paths.run("run_0_seed5").metrics).exists()
    assert not [p for p in out.rglob("*.tmp")]


# ----------------------------------------------------------------------------- output folder


@pytest.mark.parametrize("command", ["launch", "validate"])
def test_an_output_base_dir_that_is_a_file_is_refused(workdir, command):
    target = workdir / "results"
    target.write_text("my notes\n")
    config = write_yaml(workdir / "study.yaml", tiny_config(target))
    before = snapshot(workdir)
    result = xorch(command, str(config), cwd=workdir)
    one_error_line(result, 2, "output_base_dir", str(target), "is a file, not a folder")
    assert snapshot(workdir) == before


def test_an_output_base_dir_inside_a_file_is_refused(workdir):
    (workdir / "results").write_text("my notes\n")
    config = write_yaml(workdir / "study.yaml", tiny_config(workdir / "results" / "study"))
    before = snapshot(workdir)
    result = xorch("launch", str(config), cwd=workdir)
    one_error_line(result, 2, "output_base_dir", f"{workdir / 'results'} is a file")
    assert snapshot(workdir) == before


def test_an_output_base_dir_through_a_symlink_loop_is_refused(workdir):
    (workdir / "a").symlink_to(workdir / "b")
    (workdir / "b").symlink_to(workdir / "a")
    config = write_yaml(workdir / "study.yaml", tiny_config(workdir / "a" / "out"))
    before = snapshot(workdir)
    for command in ("launch", "validate"):
        result = xorch(command, str(config), cwd=workdir)
        one_error_line(result, 2, "output_base_dir", "symlink", "points back to itself")
    assert snapshot(workdir) == before


def test_a_read_only_folder_fails_launch_and_resume_with_exit_3(workdir):
    source = workdir / "shared"
    made_study(write_yaml(workdir / "rw.yaml", tiny_config(source / "old study")), False)
    ro = workdir / "ro view"
    fresh = write_yaml(workdir / "fresh.yaml", tiny_config(ro / "new study"))
    existing = write_yaml(workdir / "existing.yaml", tiny_config(ro / "old study"))
    with read_only_view(source, ro):
        before = snapshot(ro)
        result = xorch("launch", str(fresh), cwd=workdir)
        one_error_line(result, 3, str(ro / "new study"), "Read-only file system", "writable")
        plan = xorch("validate", "--fast", str(fresh), cwd=workdir)  # the plan's warning
        assert f"warning: {ro} is not writable; launch would stop with exit 3" in plan.stdout
        result = xorch("launch", str(existing), "--resume", cwd=workdir)
        one_error_line(result, 3, str(ro / "old study"), "Read-only file system")
        assert snapshot(ro) == before


def test_plot_into_a_read_only_study_fails_with_exit_3(workdir):
    out = workdir / "out"
    config = fake_study_config(out, seeds=(42, 101, 28), summary_metrics=["val/loss", "val/acc"])
    result = fake_xorch("launch", str(write_yaml(workdir / "study.yaml", config)), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    source = workdir / "copy"
    shutil.copytree(out, source)
    shutil.rmtree(source / "plots", ignore_errors=True)
    ro = workdir / "ro view"
    with read_only_view(source, ro):
        before = snapshot(ro)
        result = xorch("plot", str(ro), cwd=workdir)
        one_error_line(result, 3, str(ro), "Read-only file system")
        assert snapshot(ro) == before


@pytest.mark.parametrize("command", ["status", "summary", "plot", "replay"])
def test_a_study_folder_argument_that_cannot_be_one_is_refused(workdir, command):
    (workdir / "a").symlink_to(workdir / "b")
    (workdir / "b").symlink_to(workdir / "a")
    (workdir / "notes.txt").write_text("hi\n")
    before = snapshot(workdir)
    extra = ["0"] if command == "replay" else []
    result = xorch(command, str(workdir / "a"), *extra, cwd=workdir)
    one_error_line(result, 2, str(workdir / "a"), "points back to itself")
    result = xorch(command, str(workdir / "notes.txt"), *extra, cwd=workdir)
    one_error_line(result, 2, "notes.txt is a file, not a study folder")
    assert snapshot(workdir) == before


# ----------------------------------------------------------------------------- bad state


@pytest.mark.parametrize(
    "command",
    [
        ("launch", "{config}"),
        ("launch", "{config}", "--resume"),
        ("validate", "{config}"),
        ("status", "{out}"),
        ("summary", "{out}"),
    ],
)
def test_a_state_file_of_binary_garbage_is_one_line_and_left_alone(workdir, command):
    out = workdir / "out"
    out.mkdir()
    (out / "runner_state.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage" * 50)
    config = write_yaml(workdir / "study.yaml", tiny_config(out))
    before = snapshot(workdir)
    args = [a.format(config=config, out=out) for a in command]
    result = xorch(*args, cwd=workdir)
    one_error_line(result, 2, str(out / "runner_state.json"), "damaged", "binary")
    assert unlocked(snapshot(workdir)) == unlocked(before)


@pytest.mark.parametrize(
    ("damage", "key"),
    [
        (lambda s: s["runs"][1].update(seed="eleven"), 'runs[1].seed is "eleven", not an integer'),
        (lambda s: s["runs"][0].update(attempts=5), "runs[0].attempts is 5, not a list"),
        (lambda s: s["runs"][2].update(status="exploded"), 'runs[2].status is "exploded"'),
        (lambda s: s["runs"][0].update(metrics={"val/loss": "low"}), "runs[0].metrics.val/loss"),
        (lambda s: s["runs"][0].update(duration_s=True), "runs[0].duration_s is true"),
        (lambda s: s.update(seeds={"a": 1}), "seeds is {"),
        (lambda s: s.update(runs="none"), 'runs is "none", not a list'),
        (lambda s: s.update(training_config=[1]), "training_config is [1], not an object"),
        (lambda s: s["runs"][1].update(colour="red"), "runs[1] has an unknown key 'colour'"),
        (lambda s: s["runs"][1].pop("dir"), "runs[1].dir is missing"),
        (lambda s: s.update(schema_version="1"), "schema_version is missing or not an integer"),
    ],
)
def test_a_state_file_with_wrong_types_names_the_key(workdir, damage, key):
    out = workdir / "out"
    paths = made_study(write_yaml(workdir / "study.yaml", tiny_config(out)), completed=True)
    payload = json.loads(paths.state.read_text())
    damage(payload)
    paths.state.write_text(json.dumps(payload))
    with pytest.raises(StateError) as info:
        load_state(paths)
    assert key in str(info.value)
    before = snapshot(workdir)
    result = xorch("status", str(out), cwd=workdir)
    one_error_line(result, 2, str(paths.state), key)
    assert snapshot(workdir) == before


# ----------------------------------------------------------------------------- only the .bak


def _only_backup(workdir: Path) -> tuple[Path, StudyPaths]:
    out = workdir / "out"
    config = write_yaml(workdir / "study.yaml", tiny_config(out))
    paths = made_study(config, completed=True)
    save_state(paths, load_state(paths))  # type: ignore[arg-type]  # now a .bak exists
    paths.state.unlink()
    return config, paths


def test_resume_with_only_the_backup_recovers_and_retrains_nothing(workdir):
    config, paths = _only_backup(workdir)
    backup = paths.state_backup.read_bytes()
    result = xorch("launch", str(config), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recovered the study from runner_state.json.bak (3 of 3 runs completed)" in result.stdout
    assert "starting attempt" not in result.stdout
    assert paths.state_backup.read_bytes() == backup
    recovered = load_state(paths)
    assert recovered is not None and len(recovered.completed) == 3
    assert [r.metrics for r in recovered.runs] == [{"val/loss": 0.5 + i / 10} for i in range(3)]


def test_launch_without_resume_with_only_the_backup_is_refused(workdir):
    config, _ = _only_backup(workdir)
    before = snapshot(workdir)
    result = xorch("launch", str(config), cwd=workdir)
    one_error_line(result, 2, "runner_state.json.bak but no runner_state.json", "--resume")
    plan = xorch("validate", "--fast", str(config), cwd=workdir)  # the plan's warning
    assert "found runner_state.json.bak without runner_state.json" in plan.stdout
    assert snapshot(workdir) == before


def test_resume_with_only_a_damaged_backup_is_refused(workdir):
    config, paths = _only_backup(workdir)
    paths.state_backup.write_bytes(b"{not json")
    before = snapshot(workdir)
    result = xorch("launch", str(config), "--resume", cwd=workdir)
    one_error_line(result, 2, str(paths.state_backup), "damaged")
    assert unlocked(snapshot(workdir)) == unlocked(before)


# ----------------------------------------------------------------------------- size limits


@pytest.mark.parametrize("command", ["validate", "launch"])
def test_a_billion_runs_is_refused_at_once(workdir, command):
    config = write_yaml(
        workdir / "study.yaml", tiny_config(workdir / "out", seeds=None, n_runs=1_000_000_000)
    )
    before = snapshot(workdir)
    result = xorch(command, str(config), cwd=workdir, timeout=60)  # a hang fails here
    one_error_line(result, 2, "n_runs is 1,000,000,000", f"limit is {MAX_RUNS:,}")
    assert snapshot(workdir) == before


def test_too_many_seeds_are_refused_and_duplicates_named(write_config, workdir):
    config = tiny_config(workdir / "out", seeds=tuple(range(MAX_RUNS + 1)))
    with pytest.raises(ConfigError, match="seeds lists 100,001 seeds; the limit is 100,000"):
        load_study(write_config(config))
    config = tiny_config(workdir / "out", seeds=(*range(50_000), 7))
    with pytest.raises(ConfigError, match=r"has 7 more than once \(again at seeds\[50000\]\)"):
        load_study(write_config(config))


def test_random_seeds_are_distinct_at_the_limit():
    seeds = random_seeds(MAX_RUNS)
    assert len(seeds) == len(set(seeds)) == MAX_RUNS
    assert all(0 <= s < 2**31 for s in seeds)


def test_validate_summarises_a_long_plan(write_config, workdir):
    config = write_config(tiny_config(workdir / "out", seeds=tuple(range(5000))))
    result = xorch("validate", "--fast", str(config), cwd=workdir)  # the plan, no build child
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) < 25
    assert "  run 0: seed 0 -> run_0000_seed0" in lines
    assert "  ... 4987 more runs ..." in lines
    assert "  run 4999: seed 4999 -> run_4999_seed4999" in lines
    assert lines[-2] == "5000 runs"
    assert lines[-1].startswith("not built (--fast)")  # never a bare pass it did not check


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            )
            + "model: {class_path: a.B}\n",
            "expands to over 2,000,000 values",
        ),
        ("a: &a [1, *a]\n", "alias refers to a block that contains it"),
    ],
)
def test_a_yaml_alias_bomb_is_refused_before_it_expands(workdir, text, needle):
    config = workdir / "bomb.yaml"
    config.write_text(text)
    for command in ("validate", "launch"):
        result = xorch(command, str(config), cwd=workdir, timeout=60)  # a hang fails here
        one_error_line(result, 2, str(config), needle)
    assert not (workdir / "outputs").exists()


# ----------------------------------------------------------------------------- config keys


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("max_epoch", "did you mean 'pl_trainer.max_epochs'?"),
        ("pl_trainer2", "did you mean 'pl_trainer'?"),
        ("experiment_runner", "did you mean 'experiments_runner'?"),
        ("n_runs", "did you mean 'experiments_runner.n_runs'?"),
    ],
)
def test_a_top_level_key_close_to_a_known_one_is_an_error(workdir, key, hint):
    config = tiny_config(workdir / "out")
    config[key] = config.pop("experiments_runner") if key == "experiment_runner" else 3
    path = write_yaml(workdir / "study.yaml", config)
    before = snapshot(workdir)
    one_error_line(xorch("launch", str(path), cwd=workdir), 2, repr(key), hint)
    assert snapshot(workdir) == before


# validate's build child (Lightning) must accept the block too: exit 0 says so.
@pytest.mark.lightning
def test_any_other_unknown_top_level_block_is_a_warning(workdir):
    config = tiny_config(workdir / "out")
    config["hyperparameters"] = {"lr": 0.1}
    path = write_yaml(workdir / "study.yaml", config)
    result = xorch("validate", str(path), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "warning: top-level key 'hyperparameters' is not one xorch knows"
    )
    assert load_study(path).training["hyperparameters"] == {"lr": 0.1}
    made_study(path, completed=True)  # launch says it too, on stderr, and goes on
    result = xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.startswith("xorch: warning: top-level key 'hyperparameters'")


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("hang_timeout", 0, "hang_timeout must be a number of seconds > 0 (null for no limit)"),
        ("run_timeout", 0, "run_timeout must be a number of seconds > 0"),
        ("run_timeout", -5, "run_timeout must be a number of seconds > 0"),
        ("hang_timeout", -0.5, "hang_timeout must be a number of seconds > 0"),
        ("grace_period", -1, "grace_period must be a number of seconds >= 0"),
        ("run_timeout", float("nan"), "run_timeout must be a number of seconds > 0"),
        ("hang_timeout", float("inf"), "hang_timeout must be a number of seconds > 0"),
        ("max_parallel", 10**9, "max_parallel is 1,000,000,000; the limit is 10,000"),
    ],
)
def test_zero_negative_and_endless_durations_are_refused(workdir, key, value, needle):
    path = write_yaml(workdir / "study.yaml", tiny_config(workdir / "out", **{key: value}))
    before = snapshot(workdir)
    one_error_line(xorch("validate", str(path), cwd=workdir), 2, needle)
    assert snapshot(workdir) == before


def test_validate_shows_the_executor_and_launcher_the_study_will_use(workdir):
    slurm = tiny_config(
        workdir / "out", executor="slurm", slurm={"partition": "gpu", "max_concurrent": 6}
    )
    # --fast: the executor and launcher lines are the plan's; no build child is needed.
    result = xorch(
        "validate", "--fast", str(write_yaml(workdir / "slurm.yaml", slurm)), cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert "executor: slurm, one job per run, up to 6 in the queue at once" in result.stdout
    assert "partition gpu" in result.stdout and "executor: local" not in result.stdout
    local = tiny_config(workdir / "out", launcher="forkserver", gpus="none", max_parallel=2)
    result = xorch(
        "validate", "--fast", str(write_yaml(workdir / "local.yaml", local)), cwd=workdir
    )
    assert "executor: local, 2 runs at a time (cpu#0, cpu#1)" in result.stdout
    assert "launcher: forkserver" in result.stdout


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p.write_text(""), "is empty"),
        (lambda p: p.write_text("# just a comment\n\n"), "holds only comments"),
        (lambda p: p.mkdir(), "is a folder, not a config file"),
        (lambda p: None, "config file not found"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00binary"), "is not UTF-8 text"),
    ],
)
def test_an_empty_missing_or_folder_config_says_so(workdir, make, needle):
    path = workdir / "study.yaml"
    make(path)
    before = snapshot(workdir)
    for command in ("validate", "launch"):
        one_error_line(xorch(command, str(path), cwd=workdir), 2, str(path), needle)
    assert snapshot(workdir) == before


# ----------------------------------------------------------------------------- permissions


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "summary.csv", "a\n")
        atomic_write_text(tmp_path / "summary.csv", "b\n", keep_previous_as=tmp_path / "s.bak")
        atomic_write_bytes(tmp_path / "curves.png", b"\x89PNG")
    finally:
        os.umask(old)
    for name in ("summary.csv", "s.bak", "curves.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_a_real_launch_writes_state_and_summary_with_the_umask(workdir, umask, mode):
    out = workdir / "out"
    config = write_yaml(workdir / "study.yaml", tiny_config(out))
    made_study(config, completed=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "launch",
            str(config),
            "--resume",
            "experiments_runner.summary_metrics=[val/acc]",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        umask=umask,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # (the .bak is the file made_study wrote, kept by a hard link with its own mode)
    for name in ("runner_state.json", "summary.csv", "xorch.log"):
        assert stat.S_IMODE((out / name).stat().st_mode) == mode, name
