"""How the local launcher starts a ``command:`` run's program: through setpriv
and a shell's check of its parent (``launchers.local._start_program``), so the
program dies with xorch without a hook between fork and exec; a file the kernel
would not exec goes through the wrapper, which reports why as the run's error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.launchers.local import _lifeline_argv, _lifeline_tools
from tests.helpers import read_state, xorch

TOOLS = _lifeline_tools()
needs_setpriv = pytest.mark.skipif(TOOLS is None, reason="no setpriv --pdeathsig here")

# Writes its argv as JSON to the file named by its first argument.
ECHO = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


@needs_setpriv
def test_the_program_gets_its_words_verbatim(tmp_path):
    seen = tmp_path / "seen.json"
    words = ["a b", "$HOME", "*", "'q'", '"d"', "-c", "", "; exit 3"]
    argv = _lifeline_argv(TOOLS, os.getpid(), [sys.executable, "-c", ECHO, str(seen), *words])
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(seen.read_text()) == words


@needs_setpriv
def test_a_program_whose_parent_is_not_xorch_is_not_started(tmp_path):
    """The parent died before setpriv asked for its death signal: the shell
    sees another parent and exits before the program runs."""
    seen = tmp_path / "seen.json"
    other = os.getppid()  # alive, but not the program's parent
    argv = _lifeline_argv(TOOLS, other, [sys.executable, "-c", ECHO, str(seen)])
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode == 1 and not seen.exists()


def test_an_executable_file_the_kernel_cannot_exec_is_the_runs_error(workdir):
    """A script without a #! line: the shell would run it as a shell script;
    the wrapper's execve fails instead, and its error is the run's."""
    script = workdir / "train"
    script.write_text("print('not a shell script')\n", encoding="utf-8")
    script.chmod(0o755)
    out = workdir / "out"
    block = {"output_base_dir": str(out), "seeds": [1], "max_retries": 0}
    config = {"mode": "run-experiments", "experiments_runner": block, "command": ["./train"]}
    path = Path(workdir / "study.yaml")
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode != 0
    (attempt,) = read_state(out)["runs"][0]["attempts"]
    assert attempt["outcome"] == "failed" and attempt["exit_code"] == 127
    assert "Exec format error" in attempt["reason"]
    assert "not a shell script" not in (out / "run_00_seed1" / "train.log").read_text()


def test_variables_the_shell_would_drop_reach_the_program(workdir):
    """An exported bash function (Lmod's ``module``) or a dotted name is not a
    shell variable: the lifeline's shell would drop it, so such a run starts
    without the shell, and the program sees its whole environment."""
    script = """
import json, os
names = ("BASH_FUNC_module%%", "spark.conf", "PLAIN_NAME")
out = os.environ["XORCH_RUN_DIR"]
with open(os.path.join(out, "seen.json"), "w") as handle:
    json.dump({name: os.environ.get(name) for name in names}, handle)
with open(os.path.join(out, "metrics.json"), "w") as handle:
    json.dump({"score": 1.0}, handle)
"""
    (workdir / "train.py").write_text(script, encoding="utf-8")
    out = workdir / "out"
    block = {"output_base_dir": str(out), "seeds": [1], "max_retries": 0}
    command = ["python", "train.py"]
    config = {"mode": "run-experiments", "experiments_runner": block, "command": command}
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    odd = {"BASH_FUNC_module%%": "() {  eval x\n}", "spark.conf": "a=b", "PLAIN_NAME": "1"}
    result = xorch("launch", str(path), cwd=workdir, env=odd)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((out / "run_00_seed1" / "seen.json").read_text()) == odd
