"""``xorch validate``: every check of launch, then the plan, with nothing run or written."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orchestrator.config import Mode, load_study
from orchestrator.paths import StudyPaths, run_dir_name
from orchestrator.scheduler import study_slots
from orchestrator.single import single_run_dir
from orchestrator.state_store import load_state

__all__ = ["describe_plan"]


def describe_plan(config_path: Path | str, overrides: Iterable[str] = ()) -> list[str]:
    spec = load_study(config_path, overrides)
    if spec.mode is Mode.TRAIN:
        return [f"mode train: seed {spec.train_seed} in {single_run_dir(spec)}"]
    runner = spec.runner
    paths = StudyPaths(spec.output_dir)
    state = load_state(paths)
    slots = study_slots(spec)
    where = ", ".join(slot.label for slot in slots)
    lines = [
        f"config ok: {config_path}",
        f"output: {paths.root}",
        f"executor: local, {len(slots)} runs at a time ({where})",
    ]
    if state is not None:
        lines.append(
            f"existing study: {len(state.completed)} of {len(state.runs)} runs completed "
            "(launch with --resume to continue it)"
        )
        seeds: tuple[int | None, ...] = state.seeds
    elif runner.seeds is not None:
        seeds = runner.seeds
    else:
        seeds = (None,) * runner.run_count
        lines.append(f"{runner.run_count} random seeds, drawn when the study starts")
    for i, seed in enumerate(seeds):
        name = run_dir_name(i, seed, len(seeds)) if seed is not None else f"run_{i:02d}_seed?"
        lines.append(f"  run {i}: seed {seed if seed is not None else '?'} -> {name}")
    return lines
