"""Config mistakes that only the worker can see: found when a run is built (or
by ``xorch validate``), reported as one line naming the key, exit 2, no retry,
and nothing left behind that blocks the corrected config."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import TORCH_WATCH, read_state, snapshot, tiny_config, xorch


def set_key(config: dict, dotted: str, value) -> None:
    node = config
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value


MISTAKES = {
    "class_path that does not import": (
        "model.class_path",
        "no_such_package.Model",
        "model.class_path 'no_such_package.Model': cannot import 'no_such_package'",
    ),
    "class that is not a LightningModule": (
        "data.class_path",
        "worker.tasks.quick.QuickClassifier",
        "data.class_path 'worker.tasks.quick.QuickClassifier': QuickClassifier is not a "
        "LightningDataModule",
    ),
    "unknown init_args key": (
        "model.init_args.hiddn",
        4,
        "model.init_args.hiddn: QuickClassifier takes no argument 'hiddn' (did you mean 'hidden'?)",
    ),
    "unknown Trainer argument": (
        "pl_trainer.max_epoch",
        3,
        "pl_trainer.max_epoch: Trainer takes no argument 'max_epoch' (did you mean 'max_epochs'?)",
    ),
}


def test_a_config_error_from_a_child_exits_2_at_once_without_retry(workdir, write_config):
    """The parent's half, with a fake worker's build error: exit 2, one attempt, no
    retry, the child's line, nothing left (the worker's own lines: the next test)."""
    out = workdir / "out"
    line = "model.init_args.hiddn: a fake build error"
    acts = {"*": {"*": {"do": "config_error", "message": line}}}
    config = fake_study_config(out, seeds=(1, 2), acts=acts, max_retries=2)
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "run 0 seed 1: config_error after" in result.stdout
    assert result.stdout.count("starting attempt") == 1  # no retry, no second run
    assert "retrying" not in result.stdout
    assert f"xorch: error: a run could not be built from the config: {line}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists()  # a new study that only met config errors leaves nothing


# The lines are the worker's, found by building real Lightning classes.
@pytest.mark.lightning
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_config_mistake_found_by_the_worker_exits_2_at_once_without_retry(
    workdir, write_config, mistake
):
    key, value, line = MISTAKES[mistake]
    out = workdir / "out"
    config = tiny_config(out, seeds=(1, 2), max_retries=2)
    set_key(config, key, value)
    result = xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "run 0 seed 1: config_error after" in result.stdout
    assert result.stdout.count("starting attempt") == 1  # no retry, no second run
    assert "retrying" not in result.stdout
    assert f"xorch: error: a run could not be built from the config: {line}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists()  # a new study that only met config errors leaves nothing


@pytest.mark.lightning  # worker.build in this process: a Lightning import
def test_class_path_must_name_a_class_of_the_expected_kind_before_anything_is_called(
    tmp_path,
):
    """``os.system`` and friends are refused before they are called: nothing runs."""
    import pytorch_lightning as pl

    from worker.build import BuildError, instantiate

    marker = tmp_path / "ran"
    dangerous = [
        (
            {"class_path": "os.system", "init_args": {"command": f"touch '{marker}'"}},
            "model.class_path 'os.system' names a function, not a class; "
            "name a LightningModule subclass",
        ),
        (
            {"class_path": "subprocess.call", "init_args": {"args": ["touch", str(marker)]}},
            "model.class_path 'subprocess.call' names a function",
        ),
        ({"class_path": "builtins.eval", "init_args": {}}, "names a function"),
        (
            {"class_path": "subprocess.Popen", "init_args": {"args": ["touch", str(marker)]}},
            "model.class_path 'subprocess.Popen': Popen is not a LightningModule",
        ),
    ]
    for entry, message in dangerous:
        with pytest.raises(BuildError, match=message.replace("(", r"\(").replace(")", r"\)")):
            instantiate(entry, "model", pl.LightningModule)
    assert not marker.exists()
    with pytest.raises(
        BuildError,
        match=r"callbacks\[0\]\.class_path 'collections.OrderedDict':"
        " OrderedDict is not a Callback",
    ):
        instantiate({"class_path": "collections.OrderedDict"}, "callbacks[0]", pl.Callback)
    with pytest.raises(
        BuildError,
        match=r"callbacks\[0\]\.init_args: EarlyStopping needs "
        r"argument 'monitor'; set callbacks\[0\]\.init_args",
    ):
        instantiate(
            {"class_path": "pytorch_lightning.callbacks.EarlyStopping"}, "callbacks[0]", pl.Callback
        )


@pytest.mark.lightning  # worker.build in this process: a Lightning import
def test_a_users_module_that_fails_to_import_is_a_config_error(tmp_path, monkeypatch):
    import pytorch_lightning as pl

    from worker.build import BuildError, instantiate

    (tmp_path / "needs_dep.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "broken_syntax.py").write_text("class Model(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        BuildError,
        match=r"^model.class_path 'needs_dep.Model': cannot import "
        r"'no_such_dependency_xyz' \(imported by needs_dep\)$",
    ):
        instantiate({"class_path": "needs_dep.Model"}, "model", pl.LightningModule)
    with pytest.raises(
        BuildError,
        match=r"^model.class_path 'broken_syntax.Model': importing "
        r"broken_syntax failed: SyntaxError: ",
    ):
        instantiate({"class_path": "broken_syntax.Model"}, "model", pl.LightningModule)
    with pytest.raises(
        BuildError,
        match=r"worker.tasks.quick has no 'QuickClasifier' "
        r"\(did you mean 'QuickClassifier'\?\)",
    ):
        instantiate(
            {"class_path": "worker.tasks.quick.QuickClasifier"}, "model", pl.LightningModule
        )


@pytest.mark.lightning  # the build child builds real Lightning classes
def test_validate_builds_the_run_in_one_child_and_names_every_mistake(workdir, write_config):
    out = workdir / "out"
    marker = workdir / "ran"
    config = tiny_config(out, seeds=(1, 2))
    config["data"] = {
        "class_path": "subprocess.call",
        "init_args": {"args": ["touch", str(marker)]},
    }
    config["model"]["init_args"]["hiddn"] = 4
    config["pl_trainer"]["max_epoch"] = 3
    config["callbacks"] = [
        {
            "class_path": "pytorch_lightning.callbacks.EarlyStopping",
            "init_args": {"monitor": "val/loss", "patiense": 2},
        },
    ]
    path = write_config(config)
    before = snapshot(workdir)
    result = subprocess.run(
        [sys.executable, "-c", TORCH_WATCH, "validate", str(path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("xorch: error:")]
    assert errors == [
        "xorch: error: data.class_path 'subprocess.call' names a function, not a class; "
        "name a LightningDataModule subclass",
        "xorch: error: model.init_args.hiddn: QuickClassifier takes no argument 'hiddn' "
        "(did you mean 'hidden'?)",
        "xorch: error: pl_trainer.max_epoch: Trainer takes no argument 'max_epoch' "
        "(did you mean 'max_epochs'?)",
        "xorch: error: callbacks[0].init_args.patiense: EarlyStopping takes no argument "
        "'patiense' (did you mean 'patience'?)",
    ]
    assert "PARENT-IMPORTED False False" in result.stderr  # the build ran in a child
    assert "Traceback" not in result.stderr
    assert snapshot(workdir) == before and not marker.exists()

    fast = xorch("validate", "--fast", str(path), cwd=workdir)
    assert fast.returncode == 0 and "built in a child process" not in fast.stdout

    good = write_config(tiny_config(out, seeds=(1, 2)), "good.yaml")
    ok = xorch("validate", str(good), cwd=workdir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (
        "built in a child process: data QuickDataModule, model QuickClassifier, Trainer"
        in ok.stdout
    )
    assert snapshot(workdir) == before | {"good.yaml": good.read_bytes()}


_HIDDN = MISTAKES["unknown init_args key"][2]


def test_after_fixing_the_typo_the_same_launch_just_works(workdir, write_config):
    """A typo'd first launch leaves nothing that blocks the corrected one: what it
    created is removed, what was in the folder before stays."""
    out = workdir / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    # The fake worker's build error stands in for the worker's: the typo is the act.
    typo = {"do": "config_error", "message": _HIDDN}
    config = fake_study_config(out, seeds=(1, 2), acts={"*": {"*": typo}})
    path = write_config(config)
    first = fake_xorch("launch", str(path), cwd=workdir)
    assert first.returncode == 2, first.stdout + first.stderr
    assert f"a run could not be built from the config: {_HIDDN}" in first.stderr
    assert f"what this launch created in {out} is removed" in first.stderr
    assert {p.name for p in out.iterdir()} <= {"notes.txt", ".xorch-launch.lock"}

    write_config(fake_study_config(out, seeds=(1, 2)))  # the typo fixed
    second = fake_xorch("launch", str(path), cwd=workdir)  # the same command, no --resume
    assert second.returncode == 0, second.stdout + second.stderr
    runs = read_state(out)["runs"]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert [len(r["attempts"]) for r in runs] == [1, 1]  # no trace of the failed launch
    assert (out / "notes.txt").read_text() == "mine"


# The build child is always worker.check_build (it imports Lightning before the
# user's module); no fake stands in for it as tests.fake_worker does for a run.
@pytest.mark.lightning
def test_validate_says_so_when_the_build_child_dies(workdir, write_config):
    """A user's module that ends the process while it is imported: one line, exit 2."""
    (workdir / "crashy.py").write_text(
        "import os, sys\nprint('bye', file=sys.stderr)\nos._exit(3)\n"
    )
    config = tiny_config(workdir / "out", seeds=(1,))
    config["data"]["class_path"] = "crashy.Data"
    result = xorch("validate", str(write_config(config)), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "xorch: error: building the run failed (exit status 3): bye" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.lightning  # the worker's build finds them
def test_every_mistake_a_run_finds_is_said_at_once_one_line_each(workdir, write_config):
    out = workdir / "out"
    config = tiny_config(out, seeds=(1, 2), max_retries=2)
    for key, value, _ in MISTAKES.values():
        if not key.startswith("model.class_path"):  # one that stops the model's build
            set_key(config, key, value)
    result = xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    expected = [
        line for key, _, line in MISTAKES.values() if not key.startswith("model.class_path")
    ]
    lines = result.stderr.strip().splitlines()
    assert (
        f"xorch: error: a run could not be built from the config: {len(expected)} problems" in lines
    )
    for line in expected:
        assert f"xorch: error: {line}" in lines, result.stderr
    assert result.stdout.count("starting attempt") == 1
    assert not out.exists()
