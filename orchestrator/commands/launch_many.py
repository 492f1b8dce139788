"""``xorch launch a.yaml b.yaml ...``: several studies, one after another, or side
by side with ``--together``.

Every config is loaded and checked before the first study starts (config,
GPUs, lease folder, an existing study without --resume, two studies in one
folder): a bad one is refused with one line each and nothing runs. In turn, the
studies run in this process one after another, each with its own folder, lock
and state; a stop signal ends the sequence (the rest do not start). Together,
each study is its own ``xorch launch`` process: the scheduler, its stop signals
and its progress line are one study's each, a study that fails cannot take the
others down, and the GPU leases (``orchestrator.gpu_leases``) already keep
separate xorch processes within every study's ``runs_per_gpu``. This process
prefixes their lines with the study's name, passes a stop signal on to each,
and takes them down (SIGTERM: a clean stop, resumable) if it dies. The exit
code is the worst of the studies' (the highest: a signal, a write failure, bad
input, failed runs, success).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from orchestrator.config import Mode, StudySpec, load_study
from orchestrator.errors import ENVIRONMENT_ERRNOS, ExitCode, XorchError, os_error_line

__all__ = [
    "PARENT_MODULE",
    "StudyOutcome",
    "check_studies",
    "launch_several",
    "run_in_turn",
    "run_together",
    "split_configs",
]

PARENT_MODULE = "orchestrator"  # `python -m orchestrator` is xorch (tests.fake_xorch in tests)
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Say = Callable[[str], None]


@dataclass(frozen=True)
class StudyOutcome:
    config: Path
    output_dir: Path
    exit_code: int  # a study that was not started has no outcome


def split_configs(arguments: Sequence[str]) -> tuple[list[Path], list[str]]:
    """``b.yaml c.yml pl_trainer.max_epochs=3`` -> the further configs and the
    overrides (which apply to every study): a config is a ``.yaml``/``.yml``
    path with no ``=`` in it; an override always has one (or is Hydra's ``~key``)."""
    configs, overrides = [], []
    for argument in arguments:
        if "=" not in argument and Path(argument).suffix in (".yaml", ".yml"):
            configs.append(Path(argument))
        else:
            overrides.append(argument)
    return configs, overrides


def check_studies(
    configs: Sequence[Path], overrides: Sequence[str], resume: bool
) -> tuple[list[StudySpec], list[str]]:
    """Every study loaded and checked before any starts: (the specs, the refusals
    as ``CONFIG: what is wrong`` lines)."""
    from orchestrator.study import refuse_unstartable

    specs, problems = [], []
    folders: dict[Path, Path] = {}
    for config in configs:
        try:
            spec = load_study(config, overrides)
            if spec.mode is not Mode.TRAIN:  # one run, no study folder: nothing to refuse
                refuse_unstartable(spec, resume)
        except XorchError as exc:
            problems.append(f"{config}: {exc}")
            continue
        other = folders.setdefault(spec.output_dir.resolve(), config)
        if other != config:
            problems.append(
                f"{config}: its output_base_dir {spec.output_dir} is also {other}'s; "
                "give each study its own output_base_dir"
            )
            continue
        specs.append(spec)
    return specs, problems


def run_in_turn(
    specs: Sequence[StudySpec], resume: bool, cancel_jobs: bool, say: Say, error: Say
) -> list[StudyOutcome]:
    """One study after another in this process; a stop signal ends the sequence."""
    from orchestrator.study import launch_spec

    outcomes = []
    for number, spec in enumerate(specs, start=1):
        say(f"xorch: study {number} of {len(specs)}: {spec.config_path} -> {spec.output_dir}")
        try:
            code = int(launch_spec(spec, resume=resume, cancel_jobs=cancel_jobs).exit_code)
        except XorchError as exc:  # locked by another launch since the check, say
            error(f"xorch: error: {spec.config_path}: {exc}")
            code = int(exc.exit_code)
        except OSError as exc:
            if exc.errno not in ENVIRONMENT_ERRNOS:
                raise
            error(f"xorch: error: {os_error_line(exc)}; fix it, then --resume")
            code = int(ExitCode.STATE_WRITE)
        outcomes.append(StudyOutcome(spec.config_path, spec.output_dir, code))
        if code > 128:
            rest = len(specs) - number
            if rest:
                say(f"xorch: stopped by a signal: {rest} more studies were not started")
            break
    return outcomes


def run_together(
    specs: Sequence[StudySpec],
    overrides: Sequence[str],
    resume: bool,
    cancel_jobs: bool,
    say: Say,
    error: Say,
) -> list[StudyOutcome]:
    """Every study at once, one ``xorch launch`` process each; their lines prefixed."""
    flags = [*(["--resume"] if resume else []), *(["--cancel-jobs"] if cancel_jobs else [])]
    names = _names(specs)
    children = []
    for spec in specs:
        command = [sys.executable, "-m", PARENT_MODULE, "launch", str(spec.config_path)]
        children.append(
            subprocess.Popen(
                [*command, *overrides, *flags],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # a terminal's Ctrl-C reaches them once, through us
                preexec_fn=_stop_with_parent,
            )
        )
    copiers = [
        threading.Thread(target=_copy, args=(stream, f"[{name}] ", write), daemon=True)
        for child, name in zip(children, names, strict=True)
        for stream, write in ((child.stdout, say), (child.stderr, error))
    ]
    for copier in copiers:
        copier.start()
    with _forward_signals(children):
        codes = [_exit_code(child.wait()) for child in children]
    for copier in copiers:
        copier.join()
    return [StudyOutcome(s.config_path, s.output_dir, c) for s, c in zip(specs, codes, strict=True)]


def launch_several(
    configs: Sequence[Path],
    overrides: Sequence[str],
    *,
    resume: bool,
    cancel_jobs: bool,
    together: bool,
    say: Say,
    error: Say,
) -> int:
    """The whole command: check all, run them, one closing line per study; the exit code."""
    specs, problems = check_studies(configs, overrides, resume)
    for problem in problems:
        error(f"xorch: error: {problem}")
    if problems:
        return int(ExitCode.USAGE)
    if together:  # each study's own process says its warnings
        outcomes = run_together(specs, overrides, resume, cancel_jobs, say, error)
    else:
        for spec in specs:
            for warning in spec.warnings:
                error(f"xorch: warning: {spec.config_path}: {warning}")
        outcomes = run_in_turn(specs, resume, cancel_jobs, say, error)
    for outcome in outcomes:
        say(f"xorch: {outcome.output_dir}: exit {outcome.exit_code}")
    return max((outcome.exit_code for outcome in outcomes), default=int(ExitCode.OK))


def _names(specs: Sequence[StudySpec]) -> list[str]:
    """Each study's line prefix: its folder's name, numbered where two are alike."""
    names = [spec.output_dir.name for spec in specs]
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def _copy(stream: IO[str] | None, prefix: str, write: Say) -> None:
    assert stream is not None
    with stream:
        for line in stream:
            write(prefix + line.rstrip("\n"))


def _exit_code(returncode: int) -> int:
    """A child killed by signal N (returncode -N) counts as 128 + N, as a shell says."""
    return 128 - returncode if returncode < 0 else returncode


def _stop_with_parent() -> None:
    """In each study's process before it starts: SIGTERM when this process dies
    (Linux), so a killed ``--together`` leaves no study running unwatched."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def _forward_signals(children: Sequence[subprocess.Popen[str]]) -> Iterator[None]:
    """A stop signal to this process goes to every study (each stops as a launch does)."""

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    # A signal ignored here (SIGHUP under nohup) stays ignored, as in a launch.
    wanted = [s for s in _FORWARDED if signal.getsignal(s) != signal.SIG_IGN]
    before = {s: signal.signal(s, forward) for s in wanted}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
