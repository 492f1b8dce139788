"""One run, start to finish, inside the child process.

The order matters: tie our life to the parent's, set the cuBLAS variable, then
import torch; seed before the model and data are built; capture the fit
metrics before ``trainer.test`` resets them; write metrics.json (or error.json)
atomically as the very last step.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.contract.child import BUILD_ERROR_TYPE, ChildExit, run_variable, with_run_dir
from orchestrator.contract.failure_text import exception_line
from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import ErrorReport, Heartbeat, HeartbeatPhase, RunResult, RunSpec
from orchestrator.contract.tracking import run_identity
from worker.lifeline import follow_parent
from worker.ranks import (
    lead_ranks,
    own_ranks_in_one_task,
    process_rank,
    settle_failed_ranks,
    take_over_rank_watch,
    write_first_error,
)

__all__ = ["BUILD_ERROR_TYPE", "main", "run"]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m worker.train_one RUN_SPEC_JSON", file=sys.stderr)
        return ChildExit.CONFIG_ERROR
    spec = RunSpec.load(Path(argv[0]))
    # Stop this run when the parent dies, so ``kill -9`` of xorch leaves no
    # training behind (the kernel's signal, and a watcher thread for the window
    # before it was set and for other systems).
    follow_parent(watch=True)
    paths = RunPaths(Path(spec.run_dir))
    # DDP ranks other than 0 (started by Lightning from rank 0) write no
    # heartbeat and no metrics.json (see worker.ranks).
    rank = process_rank()
    startup = None
    if rank == 0:
        lead_ranks()
        for stale in (paths.error, paths.rank_exit):  # not this attempt's: none has failed yet
            stale.unlink(missing_ok=True)
        startup = _StartupBeats(paths.heartbeat, spec.heartbeat_interval_s)
    try:
        result = run(spec, startup, rank)
    except BaseException as exc:  # every way out leaves its record
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        if rank == 0:
            settle_failed_ranks()  # another rank's death first: end as it did
        report = _error_report(exc)
        if report.type == BUILD_ERROR_TYPE:  # every mistake of the config at once
            report = replace(report, message="\n".join(_every_problem(spec, report.message)))
        write_first_error(report, paths.error, rank)
        if report.type == BUILD_ERROR_TYPE:  # a config mistake: one line each, no traceback
            for line in report.message.splitlines():
                print(f"xorch: config error: {line}", file=sys.stderr)
            return ChildExit.CONFIG_ERROR
        traceback.print_exc()
        return ChildExit.FAILED
    if rank == 0:
        result.write(paths.metrics)
    return ChildExit.OK


class _StartupBeats:
    """Heartbeats from a thread while the run starts up: importing torch and
    Lightning can take longer than a short hang_timeout on a loaded machine.
    It stops when training begins; from then on only the training loop's own
    hooks beat, so a stuck DataLoader or a deadlock is still seen as a hang
    (in a run of several ranks, rank 0 beats on until the ranks it starts have
    met: ``worker.ranks.RankWatch``)."""

    def __init__(self, path: Path, interval_s: float) -> None:
        self._path = path
        self._interval = interval_s
        self._stop = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="xorch-startup", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        beat = Heartbeat(pid=os.getpid(), time=time.time(), phase=HeartbeatPhase.STARTING)
        beat.write_if_possible(self._path)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(spec: RunSpec, startup: _StartupBeats | None = None, rank: int = 0) -> RunResult:
    config = with_run_dir(spec.config, spec.run_dir)  # ${hydra:runtime.output_dir} and kin
    paths = RunPaths(Path(spec.run_dir))
    run_dir = paths.root
    run_dir.mkdir(parents=True, exist_ok=True)
    deterministic = bool(config.get("deterministic_cudnn", False))
    _set_up_process(spec, deterministic)

    from worker.build import build_data, build_model, choose_package
    from worker.seed_shape import as_lightning
    from worker.trainer_parts import build_trainer_parts

    config = as_lightning(config)  # the seed's shape: a plain network and its blocks
    from worker.callbacks import callbacks_for, scalar_metrics
    from worker.checkpoints import usable_checkpoint
    from worker.seeding import set_determinism, set_training_seed
    from worker.trackers import closing_loggers

    pkg = choose_package(config)  # lightning.pytorch or pytorch_lightning, from the classes
    own = callbacks_for(pkg)
    set_training_seed(spec.seed, pkg)
    set_determinism(deterministic)
    data = build_data(config, pkg)
    model = build_model(config, pkg)

    resume_state = own.resume_state()
    heartbeat = own.heartbeat(paths.heartbeat, spec.heartbeat_interval_s, None)
    progress = own.rank_progress(paths.rank_progress)  # DDP runs only
    at_once = own.error_at_once(
        lambda exc: write_first_error(_error_report(exc), paths.error, rank)
    )
    ours: list[Any] = [heartbeat, progress, at_once] if rank == 0 else [progress, at_once]
    identity = run_identity(spec)
    parts = build_trainer_parts(config, run_dir, ours, pkg, identity)
    # First of all callbacks: its epoch-start hook puts the RNG states back (see there).
    parts.kwargs["callbacks"] = [resume_state, *parts.kwargs["callbacks"]]
    resumed_from = None
    if spec.resume_from_checkpoint and parts.last_checkpoint is not None:
        resumed_from = usable_checkpoint(parts.last_checkpoint)
    heartbeat.resumed_from = resumed_from
    _export_run_values(spec, resumed_from)
    if rank == 0:
        heartbeat.beat(None, HeartbeatPhase.SETUP, force=True)
        # For the ranks trainer.fit may start; rank 0 beats on while they start up.
        take_over_rank_watch(
            paths.rank_exit, pkg.__name__, lambda: heartbeat.beat(None, HeartbeatPhase.SETUP)
        )

    own_ranks_in_one_task(parts.kwargs, pkg.__name__)
    # Every way out of this block closes the loggers; rank 0 opens MLflow's run.
    with closing_loggers(parts.kwargs["logger"], identity, lead=rank == 0) as outcome:
        trainer = pkg.Trainer(**parts.kwargs)
        # weights_only=False: the checkpoint is this run's own (see worker.checkpoints).
        if startup is not None:
            startup.stop()  # from here on, only training hooks beat
        trainer.fit(model, datamodule=data, ckpt_path=resumed_from, weights_only=False)
        fit_metrics, skipped = scalar_metrics(trainer.callback_metrics)
        # A run resumed from a checkpoint of its final epoch trains nothing more;
        # the metrics of that epoch travel in the checkpoint.
        metrics = {**resume_state.restored_metrics, **fit_metrics}
        skipped = [*skipped, *_test_stage(config, trainer, model, data, metrics)]
        outcome.metrics, outcome.hparams = metrics, dict(getattr(model, "hparams", {}))
    return _result(metrics, skipped, resumed_from, _trained(trainer, parts.last_checkpoint))


def _export_run_values(spec: RunSpec, resumed_from: str | None) -> None:
    """The ``XORCH_*`` variables a ``command:`` program gets, for the user's own
    code in a config run too: a callback that breaks or logs by run index,
    attempt or folder needs no other way in (tests/fixtures/first_attempt_faults.py)."""
    values: dict[str, object] = {"seed": spec.seed, "run_dir": spec.run_dir,
                                 "run_index": spec.run_index, "attempt": spec.attempt,
                                 "resume_from": resumed_from or ""}  # fmt: skip
    if spec.fold is not None:
        values["fold"] = spec.fold
    os.environ.update({run_variable(name): str(value) for name, value in values.items()})


def _set_up_process(spec: RunSpec, deterministic: bool) -> None:
    """The spec's import paths first on sys.path, cuBLAS's workspace set before torch
    loads, and torch's threads the parent's share of the cores."""
    for extra in reversed(spec.import_paths):
        if extra not in sys.path:
            sys.path.insert(0, extra)
    from worker.seeding import cublas_env

    cublas_env(deterministic)

    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:  # the parent's share of the cores for us
        torch.set_num_threads(int(threads))


def _test_stage(
    config: Mapping[str, Any], trainer: Any, model: Any, data: Any, metrics: dict[str, float]
) -> list[str]:
    """Test when the config asks: its ``test*`` metrics into ``metrics``; the names
    of the metrics it skipped (not scalars) returned."""
    from worker.callbacks import scalar_metrics

    # ``test: True`` is lightning-hydra-template's spelling of run_test.
    if not (
        config.get("run_test")
        or config.get("test") is True
        or config.get("test_dataset") is not None
    ):
        return []
    # Lightning empties callback_metrics when test starts: fit's are kept by the caller.
    trainer.test(model, datamodule=data, verbose=False)
    test_metrics, test_skipped = scalar_metrics(trainer.callback_metrics)
    metrics.update({k: v for k, v in test_metrics.items() if k.startswith("test")})
    return list(test_skipped)


def _trained(trainer: Any, last: Path | None) -> tuple[int, str | None]:
    """The epochs the run has trained (a resumed run's earlier ones included) and
    its best checkpoint: the best of the first ModelCheckpoint the user gave a
    ``monitor``, else last.ckpt (None when neither was written)."""
    for callback in getattr(trainer, "checkpoint_callbacks", []):
        best = getattr(callback, "best_model_path", "")
        if getattr(callback, "monitor", None) is not None and best:
            return int(trainer.current_epoch), str(best)
    return int(trainer.current_epoch), str(last) if last is not None and last.is_file() else None


def _result(
    metrics: Mapping[str, float],
    skipped: list[str],
    resumed_from: str | None,
    trained: tuple[int, str | None] = (0, None),
) -> RunResult:
    """The run's result: its metrics by name, and the peak GPU memory when CUDA was used."""
    import torch

    peak = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return RunResult(
        metrics=dict(sorted(metrics.items())),
        skipped_metrics=tuple(skipped),
        resumed_from=resumed_from,
        peak_gpu_mem_mb=peak,
        epochs_trained=trained[0],
        best_checkpoint_path=trained[1],
    )


def _every_problem(spec: RunSpec, first: str) -> list[str]:
    """Every problem building this run's config (as ``xorch validate`` finds
    them), the one that stopped it first, so a person fixes them in one go."""
    from worker.check_build import check_build

    try:
        problems, _ = check_build(with_run_dir(spec.config, spec.run_dir), spec.seed)
    except Exception:  # the first problem alone is still the truth
        return [first]
    # The run's line may say more than validate's (the import's cause): one of the two.
    return [first, *(p for p in problems if not (first.startswith(p) or p.startswith(first)))]


def _error_report(exc: BaseException) -> ErrorReport:
    text = str(exc)
    cuda_oom = type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text
    # torch's CPU allocator reports a failed malloc as a RuntimeError, not MemoryError.
    host_oom = not cuda_oom and (isinstance(exc, MemoryError) or "can't allocate memory" in text)
    return ErrorReport(
        type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        message=exception_line(exc),
        traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:],
        cuda_oom=cuda_oom,
        host_oom=host_oom,
    )
