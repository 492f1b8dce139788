"""Scripts run as they are: arguments that exist only on a resume."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import yaml

from tests.helpers import read_state, xorch

# Refuses an empty --ckpt_path as LightningCLI does; the first attempt leaves
# a checkpoint and fails, the retry must be given it.
SCRIPT = """
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--ckpt_path", default=None)
args = parser.parse_args()
out = os.environ["XORCH_RUN_DIR"]
if args.ckpt_path is not None and not args.ckpt_path:
    sys.exit("ckpt_path is empty")
with open(os.path.join(out, "argv_" + os.environ["XORCH_ATTEMPT"] + ".json"), "w") as f:
    json.dump(sys.argv[1:], f)
if args.ckpt_path is None:
    open(os.path.join(out, "last.ckpt"), "w").write("state")
    raise RuntimeError("first attempt stops")
with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump({"score": 1.0}, f)
"""


def study(folder: Path, **extra: object) -> Path:
    (folder / "train.py").write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    config = {
        "experiments_runner": {
            "output_base_dir": str(folder / "out"),
            "seeds": [3],
            "summary_metrics": ["score"],
            "max_retries": 1,
        },
        "command": ["python", "train.py", "--seed", "{seed}"],
        **extra,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_resume_args_are_given_only_when_there_is_a_checkpoint(workdir):
    path = study(workdir, resume_args=["--ckpt_path", "{resume_from}"])
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    run = workdir / "out" / "run_00_seed3"
    assert json.loads((run / "argv_1.json").read_text()) == ["--seed", "3"]
    assert json.loads((run / "argv_2.json").read_text()) == [
        "--seed",
        "3",
        "--ckpt_path",
        str(run / "last.ckpt"),
    ]
    attempts = read_state(workdir / "out")["runs"][0]["attempts"]
    assert [a["outcome"] for a in attempts] == ["failed", "completed"]


def test_resume_args_with_an_unknown_placeholder_exit_2_naming_the_key(workdir):
    path = study(workdir, resume_args=["--ckpt_path", "{checkpoint}"])
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2
    assert "resume_args[1]" in result.stdout + result.stderr
    assert not (workdir / "out").exists()
