"""Preparing an attempt: its run folder, its run_spec.json and its environment
(the slot's devices and, for a run that starts DDP ranks, its own rendezvous port)."""

from __future__ import annotations

from orchestrator.config import StudySpec
from orchestrator.contract.command import resume_checkpoint
from orchestrator.contract.paths import RunPaths, StudyPaths, study_relative
from orchestrator.contract.records import RunSpec
from orchestrator.gpus import Slot, slot_env
from orchestrator.ranks import free_port, starts_ranks
from orchestrator.state import RunRecord

__all__ = ["PortBook", "attempt_env", "given_checkpoint", "prepare_attempt"]


def prepare_attempt(spec: StudySpec, paths: StudyPaths, record: RunRecord, number: int) -> RunPaths:
    """The run folder ready for attempt ``number`` of ``record``, its run_spec.json written."""
    run = paths.run(record.dir)
    _prepare_run_dir(run, number)
    RunSpec(
        run_index=record.index,
        seed=record.seed,
        run_dir=str(run.root),
        config=spec.run_config(record.variant, record.fold),
        import_paths=spec.import_paths,
        heartbeat_interval_s=spec.runner.heartbeat_interval_s,
        attempt=number,
        fold=record.fold,
    ).write(run.run_spec, durable=False)  # written afresh before every attempt
    return run


def given_checkpoint(spec: StudySpec, paths: StudyPaths, run: RunPaths) -> str | None:
    """The checkpoint a ``command:`` attempt starts with (``{resume_from}``),
    study-relative, read before it starts: a program of the user's own (a
    LightningCLI given ``--ckpt_path``) never says that it resumed, and once it
    runs it writes last.ckpt itself. None for a Lightning run, whose worker
    chooses a usable checkpoint and says which in its records."""
    if not spec.shape.is_command:
        return None
    return study_relative(resume_checkpoint(run.root), paths.root)


class PortBook:
    """The MASTER_PORT last given on each slot."""

    def __init__(self) -> None:
        self._ports: dict[Slot, int] = {}

    def allocate(self, slot: Slot) -> int:
        # Each DDP run its own rendezvous port, also apart from the ports of
        # runs still starting (they may not have bound theirs yet).
        taken = [port for other, port in self._ports.items() if other != slot]
        self._ports[slot] = free_port(taken)
        return self._ports[slot]


def attempt_env(
    spec: StudySpec, record: RunRecord, slot: Slot, slots: int, ports: PortBook
) -> dict[str, str]:
    """The environment variables an attempt of ``record`` on ``slot`` starts with."""
    env = slot_env(slot, slots, processes=spec.runner.gpus_per_run)
    if not slot.cluster and starts_ranks(spec.training_for(record.variant)):
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports.allocate(slot)))
    return env


def _prepare_run_dir(run: RunPaths, number: int) -> None:
    """Make the folder; keep an earlier attempt's final files as evidence under
    another name, so this attempt's verdict reads only its own."""
    run.root.mkdir(parents=True, exist_ok=True)
    for path in (run.metrics, run.error, run.rank_exit):
        if path.exists():
            path.replace(run.previous_attempt_file(path, number - 1))
    run.heartbeat.unlink(missing_ok=True)
    for progress in run.rank_progress_files():  # DDP ranks' places: this attempt's only
        progress.unlink(missing_ok=True)
    if number > 1:
        with open(run.log, "a", encoding="utf-8") as log:
            log.write(f"\n===== xorch: attempt {number} =====\n")
