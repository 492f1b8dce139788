"""Config mistakes that Hydra (or the shell) would only find once a run starts,
refused before anything is written (issue 23): one line naming the key and the
fix, exit 2, no "config ok", no traceback. The one Hydra refusal that only the
child can see (a blocklisted nested ``_target_``) is a config error there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import snapshot, tiny_config, xorch


def hydra_config(out: Path, **model_keys) -> dict:
    """tiny_config with its model written in Hydra's style, plus ``model_keys``."""
    config = tiny_config(out, seeds=(1, 2), max_retries=2)
    config["model"] = {
        "_target_": "worker.tasks.quick.QuickClassifier",
        **config["model"]["init_args"],
        **model_keys,
    }
    return config


SHAPES = {
    "_recursive_ that is not a bool": (
        {"_recursive_": "maybe"},
        "model._recursive_ 'maybe' must be true or false",
    ),
    "nested _args_ that is a string": (
        {"lr": {"_target_": "builtins.float", "_args_": "0.1"}},
        "model.lr._args_ must be a list of positional arguments, not a string",
    ),
    "nested _args_ that is a mapping": (
        {"lr": {"_target_": "builtins.float", "_args_": {"x": 0.1}}},
        "model.lr._args_ must be a list of positional arguments, not a mapping",
    ),
    "nested _partial_ that is not a bool": (
        {"lr": {"_target_": "builtins.float", "_args_": [0.1], "_partial_": "yes"}},
        "model.lr._partial_ 'yes' must be true or false",
    ),
    "nested _convert_ that Hydra does not know": (
        {"lr": {"_target_": "builtins.float", "_convert_": "sometimes"}},
        "model.lr._convert_ 'sometimes' must be one of none, partial, object, all",
    ),
}


@pytest.mark.parametrize("command", ["validate", "launch"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_malformed_hydra_key_is_refused_at_loading(workdir, write_config, shape, command):
    keys, line = SHAPES[shape]
    out = workdir / "out"
    path = write_config(hydra_config(out, **keys))
    before = snapshot(workdir)
    result = xorch(command, str(path), cwd=workdir, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"xorch: error: {line}"), result.stderr
    assert "config ok" not in result.stdout
    assert snapshot(workdir) == before


def test_a_defaults_cycle_is_one_line_not_a_recursion_traceback(workdir, write_config):
    config = tiny_config(workdir / "out", seeds=(1,))
    path = write_config({"defaults": ["other", "_self_"], **config}, "study.yaml")
    (workdir / "other.yaml").write_text("defaults:\n  - study\n", encoding="utf-8")
    before = snapshot(workdir)
    result = xorch("validate", "--fast", str(path), cwd=workdir, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"xorch: error: {path}: the defaults lists form a cycle (a file's defaults lead "
        "back to itself); remove the entry that closes the loop"
    ]
    assert snapshot(workdir) == before


def test_a_program_that_is_not_executable_is_refused_at_loading(workdir, write_config):
    script = workdir / "train.sh"
    script.write_text("#!/bin/sh\necho val/loss=1\n", encoding="utf-8")
    script.chmod(0o644)
    config = {
        "mode": "run-experiments",
        "experiments_runner": {"output_base_dir": str(workdir / "out"), "seeds": [1]},
        "command": ["./train.sh"],
    }
    path = write_config(config)
    before = snapshot(workdir)
    for command in ("validate", "launch"):
        result = xorch(command, str(path), cwd=workdir, timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.splitlines() == [
            f"xorch: error: command[0] './train.sh': {script} is not executable; run "
            f"'chmod +x {script}', or name its interpreter first (command: [bash, ./train.sh])"
        ]
        assert snapshot(workdir) == before


@pytest.mark.lightning  # the refusal is Hydra's own, inside a real build child
def test_hydras_own_refusal_in_the_child_is_a_config_error_in_whole_words(workdir, write_config):
    """A blocklisted nested _target_ was `failed` and retried, its line cut
    mid-sentence, and validate printed "config ok" above it."""
    out = workdir / "out"
    evil = {"_target_": "builtins.eval", "_args_": ["1"]}
    path = write_config(hydra_config(out, lr=evil))
    line = (
        "model.lr: hydra refused it: Target 'builtins.eval' is blocklisted because it "
        "allows config data to control executable behavior or belongs to an "
        "execution-capable target family. It cannot be authorized with "
        "HYDRA_INSTANTIATE_ALLOWLIST_OVERRIDE. full_key: lr"
    )
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "config_error" in result.stdout
    assert result.stdout.count("starting attempt") == 1, result.stdout
    assert f"a run could not be built from the config: {line}" in result.stderr
    assert not out.exists()
    result = xorch("validate", str(path), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "config ok" not in result.stdout
    assert f"xorch: error: {line}" in result.stderr.splitlines()
    assert "Traceback" not in result.stdout + result.stderr
