"""Careless and hostile inputs against the real CLI, each with the answer it
must get: an exit status, one ``xorch: error:`` line on stderr naming what is
wrong (no traceback), and nothing written. Prints ``N passed, M failed`` and
each failure; exits 1 if any failed.

    PYTHONPATH=. .venv/bin/python scripts/hostile_inputs.py [-k SUBSTRING]

Children are the fake worker (``python -m tests.fake_xorch``): a case that gets
as far as starting a run costs a fraction of a second, and no torch.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One input: a config (a change to the base study, or raw text), the command
    run on it, and what the answer must hold."""

    name: str
    expect: str  # a piece of the one error line ("" for a case that must pass)
    runner: dict[str, Any] = field(default_factory=dict)  # experiments_runner keys
    top: dict[str, Any] = field(default_factory=dict)  # top-level keys (None: removed)
    text: str | bytes | None = None  # the config file's bytes instead
    command: tuple[str, ...] = ("validate", "--fast")
    code: int = 2
    config_name: str = "study.yaml"
    setup: Setup | None = None
    env: dict[str, str] = field(default_factory=dict)


def base_config(out: str) -> dict[str, Any]:
    return {
        "mode": "run-experiments",
        "experiments_runner": {"output_base_dir": out, "seeds": [1], "gpus": "none"},
        "model": {"class_path": "tests.fake_worker.Script", "init_args": {"steps": 1}},
    }


def hydra_model(**keys: Any) -> dict[str, Any]:
    return {"model": {"_target_": "tests.fake_worker.Script", "steps": 1, **keys}}


def _cycle(folder: Path) -> None:
    (folder / "other.yaml").write_text("defaults:\n  - study\n", encoding="utf-8")


def _script(mode: int) -> Setup:
    def make(folder: Path) -> None:
        script = folder / "train.sh"
        script.write_text("#!/bin/sh\necho '{\"score\": 1}'\n", encoding="utf-8")
        script.chmod(mode)

    return make


def _two_gpus(folder: Path) -> None:
    smi = folder / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n", encoding="utf-8")
    smi.chmod(0o755)


COMMAND = {"model": None, "command": ["./train.sh"]}

CASES: list[Case] = [
    # issue 23, config mistakes Hydra found only when a run was built
    Case("_recursive_: maybe", "model._recursive_ 'maybe' must be true or false",
         top=hydra_model(_recursive_="maybe")),
    Case("nested _args_ a string", "model.x._args_ must be a list",
         top=hydra_model(x={"_target_": "builtins.float", "_args_": "1"})),
    Case("nested _args_ a mapping", "model.x._args_ must be a list",
         top=hydra_model(x={"_target_": "builtins.float", "_args_": {"a": 1}})),
    Case("_partial_: 'yes' nested", "model.x._partial_ 'yes' must be true or false",
         top=hydra_model(x={"_target_": "builtins.float", "_partial_": "yes"})),
    Case("_convert_ unknown", "model._convert_ 'most' must be one of",
         top=hydra_model(_convert_="most")),
    Case("_recursive_ at launch", "model._recursive_ 'maybe' must be true or false",
         top=hydra_model(_recursive_="maybe"), command=("launch",)),
    Case("defaults cycle", "the defaults lists form a cycle",
         top={"defaults": ["other", "_self_"]}, setup=_cycle),
    Case("program not executable", "is not executable; run 'chmod +x",
         top=COMMAND, setup=_script(0o644)),
    Case("program not executable at launch", "is not executable",
         top=COMMAND, setup=_script(0o644), command=("launch",)),
    Case("gpus: [7] on two GPUs", "lists GPU 7, but only 2 are visible",
         runner={"gpus": [7]}, setup=_two_gpus, env={"PATH": "{folder}/bin:{PATH}"}),
    Case("config path with a newline", "config file not found:",
         command=("validate", "--fast", "{folder}/a\nb.yaml")),
    # experiments_runner keys of the wrong type or range
    Case("n_runs a word", "n_runs", runner={"seeds": None, "n_runs": "five"}),
    Case("n_runs negative", "n_runs", runner={"seeds": None, "n_runs": -3}),
    Case("n_runs zero", "n_runs", runner={"seeds": None, "n_runs": 0}),
    Case("n_runs true", "n_runs", runner={"seeds": None, "n_runs": True}),
    Case("n_runs 10**30", "n_runs", runner={"seeds": None, "n_runs": 10**30}),
    Case("n_runs .inf", "n_runs", runner={"seeds": None, "n_runs": float("inf")}),
    Case("seeds a string", "seeds", runner={"seeds": "1,2"}),
    Case("seeds with a word", "seeds", runner={"seeds": [1, "a"]}),
    Case("seeds empty", "seeds", runner={"seeds": []}),
    Case("seeds repeated", "seeds", runner={"seeds": [3, 3]}),
    Case("seed 2**80", "seeds", runner={"seeds": [2**80]}),
    Case("max_retries negative", "max_retries", runner={"max_retries": -1}),
    Case("max_retries a word", "max_retries", runner={"max_retries": "many"}),
    Case("hang_timeout nan", "hang_timeout", runner={"hang_timeout": float("nan")}),
    Case("hang_timeout a word", "hang_timeout", runner={"hang_timeout": "fast"}),
    Case("run_timeout negative", "run_timeout", runner={"run_timeout": -5}),
    Case("output_base_dir a number", "output_base_dir", runner={"output_base_dir": 5}),
    Case("output_base_dir empty", "output_base_dir", runner={"output_base_dir": ""}),
    Case("summary_metrics one name", "", code=0, runner={"summary_metrics": "val/loss"}),
    Case("summary_metrics numbers", "summary_metrics", runner={"summary_metrics": [1]}),
    Case("gpus a sentence", "gpus", runner={"gpus": "all of them"}),
    Case("gpus negative id", "gpus", runner={"gpus": [-1]}),
    Case("gpus_per_run zero", "gpus_per_run", runner={"gpus_per_run": 0}),
    Case("misspelled key", "n_run", runner={"seeds": None, "n_run": 3}),
    Case("unicode key", "séeds", runner={"séeds": [1]}),
    Case("experiments_runner a list", "experiments_runner", top={"experiments_runner": [1]}),
    Case("mode unknown", "mode", top={"mode": "run-everything"}),
    # files that are not a study config
    Case("empty file", "", text=""),
    Case("only a null", "", text="~\n"),
    Case("a YAML list", "", text="- 1\n- 2\n"),
    Case("not UTF-8", "", text=b"mode: \xff\xfe run\n"),
    Case("YAML syntax error", "", text="mode: [run-experiments\n"),
    Case("tab indentation", "", text="mode: run-experiments\nexperiments_runner:\n\tseeds: [1]\n"),
    # good inputs with odd names: accepted, nothing written by validate
    Case("unicode and quotes in the output folder", "", code=0,
         runner={"output_base_dir": "{folder}/résultats 'ü' \"q\" 🙂"}),
    Case("spaces in the config name", "", code=0, config_name="my study's config.yaml"),
]  # fmt: skip


def _fill(value: str, folder: Path) -> str:
    return value.replace("{folder}", str(folder)).replace("{PATH}", os.environ.get("PATH", ""))


def _config_bytes(case: Case, folder: Path) -> bytes:
    if case.text is not None:
        return case.text.encode("utf-8") if isinstance(case.text, str) else case.text
    config = base_config(str(folder / "out"))
    runner = config["experiments_runner"]
    for key, value in copy.deepcopy(case.runner).items():
        if value is None:
            runner.pop(key, None)
        else:
            runner[key] = _fill(value, folder) if isinstance(value, str) else value
    for key, value in copy.deepcopy(case.top).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    if "defaults" in config:  # a defaults list comes first, as Hydra writes it
        config = {"defaults": config.pop("defaults"), **config}
    return yaml.dump(config, sort_keys=False, allow_unicode=True).encode("utf-8")


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else ""
        for p in sorted(folder.rglob("*"))
    }


def check(case: Case) -> list[str]:
    """What is wrong with the answer to ``case``: [] when it held."""
    with tempfile.TemporaryDirectory(prefix="xorch hostile 'q' ") as scratch:
        folder = Path(scratch)
        config = folder / case.config_name
        config.write_bytes(_config_bytes(case, folder))
        if case.setup is not None:
            case.setup(folder)
        args = [_fill(a, folder) for a in case.command]
        if not any(a.endswith(".yaml") for a in args):
            args.append(str(config))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.update({k: _fill(v, folder) for k, v in case.env.items()})
        env.pop("CUDA_VISIBLE_DEVICES", None)
        before = _snapshot(folder)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "tests.fake_xorch", *args],
                cwd=folder, capture_output=True, text=True, timeout=60, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return ["no answer in 60 s"]
        return _judge(case, done, before == _snapshot(folder))


def _judge(case: Case, done: subprocess.CompletedProcess[str], untouched: bool) -> list[str]:
    problems = []
    said = done.stdout + done.stderr
    if done.returncode != case.code:
        problems.append(f"exit {done.returncode}, wanted {case.code}")
    if "Traceback" in said:
        problems.append("a traceback")
    if not untouched:
        problems.append("files were written")
    errors = done.stderr.splitlines()
    if case.code == 2 and (len(errors) != 1 or not errors[0].startswith("xorch: error: ")):
        problems.append(f"{len(errors)} lines on stderr, wanted one 'xorch: error:' line")
    if case.expect and case.expect not in done.stderr:
        problems.append(f"no {case.expect!r} in the error")
    if problems:
        problems.append(f"stderr: {done.stderr.strip()[-400:]!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only the cases whose name holds this")
    chosen = [c for c in CASES if parser.parse_args(argv).k in c.name]
    failed = [(case, problems) for case in chosen if (problems := check(case))]
    for case, problems in failed:
        print(f"FAILED {case.name}: " + "; ".join(problems))
    print(f"{len(chosen) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
