"""``xorch validate``: every check of launch, then the plan, with nothing run or written."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from orchestrator.adaptive import describe_rule
from orchestrator.commands.train import single_run_dir
from orchestrator.config import Mode, StudySpec, load_study
from orchestrator.contract.paths import StudyPaths, run_dir_name
from orchestrator.launchers.factory import SPAWN_FOR_DDP, ddp_runs
from orchestrator.ranks import cpu_only
from orchestrator.runner_spec import Executor, LauncherKind
from orchestrator.slots import study_slots
from orchestrator.state_store import load_state

__all__ = ["describe_plan"]

# A plan longer than this shows its first and last runs and the count between,
# so validating 100,000 runs prints a screenful, not 100,000 lines.
PLAN_HEAD = 10
PLAN_TAIL = 3


def describe_plan(config_path: Path | str, overrides: Iterable[str] = ()) -> list[str]:
    spec = load_study(config_path, overrides)
    warnings = [f"warning: {w}" for w in spec.warnings]
    if spec.mode is Mode.TRAIN:
        return [*warnings, f"mode train: seed {spec.train_seed} in {single_run_dir(spec)}"]
    runner = spec.runner
    paths = StudyPaths(spec.output_dir)
    state = load_state(paths)
    warnings += _unwritable(paths.root)
    lines = [
        *warnings,
        f"config ok: {config_path}",
        f"output: {paths.root}",
        *_where_runs_go(spec),
    ]
    if spec.search is not None:  # its trials and seed study are studies of their own
        from orchestrator.search.driver import describe_search

        return [*lines, *describe_search(spec)]
    if state is not None:
        lines.append(
            f"existing study: {len(state.completed)} of {len(state.runs)} runs completed "
            "(launch with --resume to continue it)"
        )
        seeds: tuple[int | None, ...] = state.seeds
    elif paths.state_backup.exists():
        lines.append(
            f"found {paths.state_backup.name} without {paths.state.name}: launch with --resume "
            "to recover that study (a launch without it is refused)"
        )
        seeds = runner.seeds if runner.seeds is not None else (None,) * runner.run_count
    elif runner.seeds is not None:
        seeds = runner.seeds
    else:
        seeds = (None,) * runner.run_count
        drawn = runner.adaptive.max_seeds if runner.adaptive else runner.run_count
        lines.append(f"{drawn} random seeds, drawn when the study starts")
    if runner.adaptive is not None:
        lines.append(f"{describe_rule(runner.adaptive)}: the first {runner.run_count} planned")
    lines += _variant_lines(spec)
    # Every variant on every seed (and fold), seed by seed (one config: variant None).
    variants: list[str | None] = [*spec.variants] or [None]
    folds: list[int | None] = list(range(runner.folds.n)) if runner.folds else [None]
    if runner.folds is not None:
        lines.append(f"{runner.folds.n} folds x {len(seeds)} seeds: every seed runs every fold")
    runs = [(p, f, v) for p in range(len(seeds)) for f in folds for v in variants]
    hidden = len(runs) - PLAN_HEAD - PLAN_TAIL
    for i in range(len(runs)) if hidden <= 1 else [*range(PLAN_HEAD), *range(-PLAN_TAIL, 0)]:
        if i == -PLAN_TAIL:
            lines.append(f"  ... {hidden} more runs ...")
        i %= len(runs)
        position, fold, variant = runs[i]
        lines.append(_plan_line(i, seeds[position], position, fold, variant, len(seeds), folds))
    lines.append(f"{len(runs)} runs")
    return lines


def _plan_line(
    i: int,
    seed: int | None,
    position: int,
    fold: int | None,
    variant: str | None,
    n_seeds: int,
    folds: list[int | None],
) -> str:
    """``  run 3: seed 101 -> run_03_fold1_seed101`` (``seed?`` before it is drawn)."""
    at = position * len(folds) + (fold or 0)  # the folder's NN, as planning names it
    if seed is not None:
        name = run_dir_name(at, seed, n_seeds * len(folds), variant, fold)
    else:
        fold_part = "" if fold is None else f"_fold{fold}"
        name = f"{variant + '/' if variant else ''}run_{at:02d}{fold_part}_seed?"
    shown = f"seed {seed if seed is not None else '?'}"
    return f"  run {i}: {shown}{'' if fold is None else f' fold {fold}'} -> {name}"


def _variant_lines(spec: StudySpec) -> list[str]:
    """Each variant's changes to the base config, and the reference."""
    runner = spec.runner
    if not runner.variants:
        return []
    lines = [f"{len(runner.variants)} variants on the same seeds, compared to {runner.compare_to}:"]
    for name, changes in runner.variants.items():
        text = ", ".join(f"{k}={v!r}" for k, v in changes.items()) or "the base config"
        lines.append(f"  {name}: {text}")
    return lines


def _unwritable(root: Path) -> list[str]:
    """A warning when launch could not write the output folder (read-only, no
    permission): launch would stop at its first write with exit 3."""
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is None or os.access(existing, os.W_OK):
        return []
    return [f"warning: {existing} is not writable; launch would stop with exit 3 there"]


def _where_runs_go(spec: StudySpec) -> list[str]:
    """The executor and launcher launch will really use, and how many runs at once."""
    runner = spec.runner
    if runner.executor is Executor.SLURM:
        slurm = runner.slurm
        parts = [f"partition {slurm.partition}" if slurm.partition else "default partition"]
        parts.append(f"{slurm.time_min} min per job")
        ddp_gpus = 0 if cpu_only([spec.training, *spec.variants.values()]) else runner.gpus_per_run
        if slurm.gpus_per_task or ddp_gpus > 1:  # as launchers.factory asks for them
            gpus = slurm.gpus_per_task or ddp_gpus
            parts.append(f"{gpus} GPU(s) per job, one task")
        return [
            f"executor: slurm, one job per run, up to {slurm.max_concurrent} in the queue "
            f"at once ({', '.join(parts)}; requeue {'on' if slurm.requeue else 'off'})",
            # A command study's jobs run the same wrapper as local command runs.
            "launcher: submitit (sbatch, command)"
            if spec.shape.is_command
            else "launcher: submitit (sbatch)",
        ]
    slots = study_slots(spec)
    where = ", ".join(slot.label for slot in slots[:8]) + (", ..." if len(slots) > 8 else "")
    if spec.shape.is_command:
        # A command study's program is always spawned (orchestrator.launchers.factory).
        launcher = "launcher: spawn (command)"
    elif runner.launcher is LauncherKind.FORKSERVER and ddp_runs(spec):
        launcher = SPAWN_FOR_DDP
    else:
        launcher = f"launcher: {runner.launcher.value}"
    lines = [f"executor: local, {len(slots)} runs at a time ({where})", launcher]
    if runner.gpus_per_run > 1:
        groups = [slot.gpu for slot in slots if slot.gpu is not None]
        n = runner.gpus_per_run
        lines.append(
            f"{n} GPUs per run: " + "; ".join(f"CUDA_VISIBLE_DEVICES={g}" for g in groups)
            if groups
            else f"{n} CPU processes per run (accelerator: cpu, no GPU here)"
        )
    return lines
