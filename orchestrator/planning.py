"""Planning a study's state at launch: a new study's runs and seeds, or a
resumed one checked against its config (a changed training config, seeds or
variants are refused; added seeds and variants are appended)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.adaptive import add_seeds
from orchestrator.config import StudySpec, changed_keys, training_fingerprint
from orchestrator.console import Reporter
from orchestrator.contract.paths import StudyPaths, run_dir_name
from orchestrator.errors import StateError, StudyExistsError
from orchestrator.seeds import adaptive_sequence, random_seeds, study_seeds
from orchestrator.state import AdaptiveSeeds, RunRecord, StudyState
from orchestrator.state_store import load_backup, load_state, save_state

__all__ = ["entries", "initial_state", "refuse_existing"]


def refuse_existing(paths: StudyPaths) -> None:
    state = load_state(paths) if paths.state.exists() else None
    if state is not None:
        raise StudyExistsError(
            f"{paths.root} already holds a study ({len(state.completed)} of {len(state.runs)} "
            "runs completed); resume it with --resume (or resume: true), "
            "or choose another output_base_dir"
        )
    if paths.state_backup.exists():
        # Starting over here would write a new state over the only record of
        # the finished runs; --resume recovers from the .bak instead.
        raise StudyExistsError(
            f"{paths.root} holds {paths.state_backup.name} but no {paths.state.name}; "
            "recover that study with: xorch launch <config> --resume, "
            "or choose another output_base_dir"
        )
    if paths.root.is_dir() and any(
        p.name.startswith("run_") or p == paths.summary for p in paths.root.iterdir()
    ):
        raise StudyExistsError(
            f"{paths.root} holds run folders but no runner_state.json; "
            "choose another output_base_dir or move those folders away"
        )


def entries(folder: Path) -> frozenset[str] | None:
    """The names in ``folder`` before this launch; None if it did not exist."""
    try:
        return frozenset(p.name for p in folder.iterdir())
    except FileNotFoundError:
        return None
    except OSError:  # not a folder, or unreadable: the launch itself will say so
        return frozenset()


def initial_state(spec: StudySpec, paths: StudyPaths, resume: bool) -> StudyState:
    existing = load_state(paths)
    recovered = False
    if existing is None and resume:
        # runner_state.json is gone (deleted, or moved aside as damaged) but the
        # previous good state is there: continue from it, never start over.
        # A run it still shows running is settled from its folder like any other.
        existing = load_backup(paths)
        recovered = existing is not None
    if spec.variants or (existing is not None and existing.variant_configs):
        return _initial_variant_state(spec, paths, resume, existing, recovered)
    if existing is None:
        adaptive, planned = _adaptive_seeds(spec, None)
        seeds = study_seeds(spec.runner) if planned is None else planned
        width = len(adaptive.sequence) if adaptive else len(seeds)
        state = StudyState(
            config_fingerprint=spec.fingerprint,
            training_config=dict(spec.training),
            seeds=seeds,
            runs=tuple(
                RunRecord(index=i, seed=s, dir=run_dir_name(i, s, width))
                for i, s in enumerate(seeds)
            ),
            summary_metrics=spec.runner.summary_metrics,
            adaptive=adaptive,
        )
        save_state(paths, state)  # random seeds are on disk before any run starts
        return state
    if not resume:  # another launch created it between our check and the lock
        refuse_existing(paths)
    if existing.config_fingerprint != spec.fingerprint:
        keys = changed_keys(existing.training_config, spec.training)
        raise StateError(
            f"the training config changed since this study started ({', '.join(keys)}); "
            "resume with the original config, or start a new output_base_dir"
        )
    runner = spec.runner
    if runner.seeds is not None and runner.seeds != existing.seeds:
        raise StateError(
            f"experiments_runner.seeds {list(runner.seeds)} differ from the study's "
            f"{list(existing.seeds)}; resume with the original seeds"
        )
    adaptive, planned = _adaptive_seeds(spec, existing)
    if adaptive is None and runner.seeds is None and runner.n_runs != len(existing.seeds):
        raise StateError(
            f"experiments_runner.n_runs is {runner.n_runs} but the study has "
            f"{len(existing.seeds)} runs; resume with n_runs: {len(existing.seeds)}"
        )
    updated = dataclasses.replace(
        existing, summary_metrics=runner.summary_metrics, adaptive=adaptive
    )
    if planned is not None and len(planned) > len(updated.seeds):  # a larger min: now
        updated, _ = add_seeds(updated, len(planned) - len(updated.seeds))
    if updated != existing or recovered:  # recovered: the .bak is left as it is
        save_state(paths, updated)
    existing = updated
    if recovered:
        Reporter(paths.log).say(
            f"{paths.state.name} was missing: recovered the study from "
            f"{paths.state_backup.name} ({len(existing.completed)} of {len(existing.runs)} "
            "runs completed)"
        )
    return existing


def _initial_variant_state(
    spec: StudySpec, paths: StudyPaths, resume: bool, existing: StudyState | None, recovered: bool
) -> StudyState:
    """A study of variants: every variant on every seed, interleaved seed by seed.

    On resume each variant's training config must be the one it started with;
    a variant or seeds added to the config add their runs (at the end, still
    seed by seed), and nothing that ran is trained again."""
    runner = spec.runner
    if existing is None:
        adaptive, planned = _adaptive_seeds(spec, None)
        seeds = study_seeds(runner) if planned is None else planned
        state = StudyState(
            config_fingerprint=spec.fingerprint,
            training_config=dict(spec.training),
            seeds=seeds,
            runs=(),
            summary_metrics=runner.summary_metrics,
        )
    else:
        if not resume:
            refuse_existing(paths)
        state = existing
        _check_variants_kept(spec, existing)
        adaptive, planned = _adaptive_seeds(spec, existing)
        seeds = _resumed_seeds(spec, existing) if planned is None else planned
    width = len(adaptive.sequence) if adaptive else len(seeds)
    configs = {**state.variant_configs, **{n: dict(c) for n, c in spec.variants.items()}}
    have = {(r.variant, r.seed) for r in state.runs}
    added = [
        (variant, position, seed)
        for position, seed in enumerate(seeds)
        for variant in spec.variants
        if (variant, seed) not in have
    ]
    runs = list(state.runs)
    for variant, position, seed in added:
        name = run_dir_name(position, seed, width, variant)
        runs.append(RunRecord(index=len(runs), seed=seed, dir=name, variant=variant))
    updated = dataclasses.replace(
        state,
        seeds=seeds,
        runs=tuple(runs),
        variant_configs=configs,
        compare_to=runner.compare_to,
        goal=dict(runner.goal),
        summary_metrics=runner.summary_metrics,
        adaptive=adaptive,
    )
    if updated != existing or recovered:
        save_state(paths, updated)  # random seeds are on disk before any run starts
    if recovered:
        Reporter(paths.log).say(
            f"{paths.state.name} was missing: recovered the study from "
            f"{paths.state_backup.name} ({len(updated.completed)} of {len(updated.runs)} "
            "runs completed)"
        )
    return updated


def _check_variants_kept(spec: StudySpec, existing: StudyState) -> None:
    """Refuse a resume that would mix runs of different training configs."""
    if not spec.variants:
        raise StateError(
            "this study has variants "
            f"({', '.join(existing.variant_configs)}); resume with its experiments_runner."
            "variants block, or start a new output_base_dir"
        )
    if not existing.variant_configs:
        raise StateError(
            "this study was started without variants; start the variants in a new "
            "output_base_dir (xorch compare A B compares two studies)"
        )
    dropped = [n for n in existing.variant_configs if n not in spec.variants]
    if dropped:
        raise StateError(
            f"variant {', '.join(dropped)} is in the study but not in the config; "
            "resume with every variant the study has (new ones may be added)"
        )
    for name, config in spec.variants.items():
        old = existing.variant_configs.get(name)
        if old is not None and training_fingerprint(old) != training_fingerprint(config):
            keys = ", ".join(changed_keys(old, config))
            raise StateError(
                f"variant {name}: its training config changed since the study started "
                f"({keys}); resume with the original, or add the change as a new variant"
            )


def _adaptive_seeds(
    spec: StudySpec, existing: StudyState | None
) -> tuple[AdaptiveSeeds | None, tuple[int, ...] | None]:
    """A study with adaptive seeds: its rule and sequence, and the seeds planned
    now (the ones already run, and at least ``min``). (None, None) otherwise.

    A new study draws all ``max`` seeds at once. A resume keeps the stored
    sequence (extended if ``max`` grew); the rule may change as any
    experiments_runner setting may, but not to fewer seeds than already ran."""
    rule = spec.runner.adaptive
    old = existing.adaptive if existing is not None else None
    if existing is not None and old is None and rule is not None:
        raise StateError(
            f"experiments_runner.n_runs: this study was started with {len(existing.seeds)} "
            f"fixed seeds; resume it with n_runs: {len(existing.seeds)}, or start adaptive "
            "seeds in a new output_base_dir"
        )
    if old is not None and rule is None:
        raise StateError(
            "experiments_runner.n_runs: this study adds seeds adaptively; resume it with its "
            f"n_runs mapping ({{min: {old.rule.min_seeds}, max: {old.rule.max_seeds}, until: "
            "...}), or start a new output_base_dir"
        )
    if rule is None:
        return None, None
    if existing is None or old is None:
        sequence = adaptive_sequence(rule.max_seeds)
        return AdaptiveSeeds(rule, sequence), sequence[: rule.min_seeds]
    ran = len(existing.seeds)
    if rule.max_seeds < ran:
        raise StateError(
            f"experiments_runner.n_runs.max is {rule.max_seeds} but the study has already "
            f"run {ran} seeds; resume with max: {ran} or more"
        )
    sequence = adaptive_sequence(rule.max_seeds, old.sequence)
    stopped = old.stopped if rule == old.rule else None  # a new rule is judged afresh
    return AdaptiveSeeds(rule, sequence, stopped), sequence[: max(ran, rule.min_seeds)]


def _resumed_seeds(spec: StudySpec, existing: StudyState) -> tuple[int, ...]:
    """The study's seeds, extended by the config's extra ones (never changed)."""
    old = existing.seeds
    runner = spec.runner
    if runner.seeds is not None:
        if runner.seeds[: len(old)] != old:
            raise StateError(
                f"experiments_runner.seeds {list(runner.seeds)} do not start with the study's "
                f"{list(old)}; keep those first (more may follow)"
            )
        return runner.seeds
    assert runner.n_runs is not None
    if runner.n_runs < len(old):
        raise StateError(
            f"experiments_runner.n_runs is {runner.n_runs} but the study has {len(old)} "
            f"seeds; resume with n_runs: {len(old)} or more"
        )
    extra = [s for s in random_seeds(runner.n_runs + len(old)) if s not in old]
    return old + tuple(extra[: runner.n_runs - len(old)])
