"""Planning a study's state at launch: a new study's runs and seeds, or a
resumed one checked against its config (a changed training config, seeds or
variants are refused; added seeds and variants are appended)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.config import StudySpec, changed_keys, training_fingerprint
from orchestrator.contract.paths import StudyPaths, run_dir_name
from orchestrator.errors import StateError, StudyExistsError
from orchestrator.seeds import adaptive_sequence, random_seeds, study_seeds
from orchestrator.state import AdaptiveSeeds, FoldSpec, RunRecord, StudyState
from orchestrator.state_store import load_state

__all__ = ["Plan", "entries", "plan_study", "refuse_existing"]


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


@dataclasses.dataclass(frozen=True)
class Plan:
    """The state a launch starts from; ``save``: it differs from the file (or
    came from the .bak) and is written before any run starts."""

    state: StudyState
    save: bool
    recovered: bool  # runner_state.json was missing: planned from the .bak


def plan_study(
    spec: StudySpec, existing: StudyState | None, backup: StudyState | None, *, resume: bool
) -> Plan:
    """The initial state of a launch, or a refusal (StateError, StudyExistsError).

    Pure: ``existing`` is runner_state.json as loaded (None if absent), ``backup``
    its .bak. A plain study is the one-variant case: every variant on every seed,
    interleaved seed by seed; seeds or variants added on resume add their runs at
    the end, and nothing that ran is planned again."""
    recovered = False
    if existing is None and resume and backup is not None:
        # runner_state.json is gone (deleted, or moved aside as damaged) but the
        # previous good state is there: continue from it, never start over.
        existing, recovered = backup, True
    if existing is not None and not resume:  # created between our check and the lock
        raise _exists_error(spec.output_dir, existing)
    with_variants = bool(spec.variants or (existing is not None and existing.variant_configs))
    if existing is not None:
        if with_variants:
            _check_variants_kept(spec, existing)
        else:
            _check_plain_kept(spec, existing)
    adaptive, planned = _adaptive_seeds(spec, existing)
    if planned is not None:
        seeds = planned
    elif existing is None:
        seeds = study_seeds(spec.runner)
    elif with_variants:
        seeds = _resumed_seeds(spec, existing)
    else:
        seeds = _kept_seeds(spec, existing)
    base = existing or StudyState(
        config_fingerprint=spec.fingerprint,
        training_config=dict(spec.training),
        seeds=(),
        runs=(),
        summary_metrics=spec.runner.summary_metrics,
    )
    folds, width = _kept_folds(spec, existing), len(adaptive.sequence) if adaptive else len(seeds)
    updated = dataclasses.replace(
        base,
        seeds=seeds,
        runs=_with_runs(base.runs, seeds, [*spec.variants] or [None], width, folds),
        summary_metrics=spec.runner.summary_metrics,
        adaptive=adaptive,
        representative_metric=spec.runner.representative_metric,
        goal=dict(spec.runner.goal),
        folds=folds,
    )
    if with_variants:
        updated = dataclasses.replace(
            updated,
            variant_configs={
                **base.variant_configs,
                **{n: dict(c) for n, c in spec.variants.items()},
            },
            compare_to=spec.runner.compare_to,
        )
    return Plan(updated, save=updated != existing or recovered, recovered=recovered)


def _with_runs(
    runs: tuple[RunRecord, ...],
    seeds: tuple[int, ...],
    variants: list[str | None],
    width: int,
    folds: FoldSpec | None = None,
) -> tuple[RunRecord, ...]:
    """``runs`` and, after them, one run per (seed, fold, variant) not yet planned:
    seed by seed, each seed's folds in order, each fold's variants in order."""
    have = {(r.variant, r.fold, r.seed) for r in runs}
    planned = list(runs)
    fold_list: list[int | None] = list(range(folds.n)) if folds is not None else [None]
    for position, seed in enumerate(seeds):
        for offset, fold in enumerate(fold_list):
            for variant in variants:
                if (variant, fold, seed) not in have:
                    at = position * len(fold_list) + offset  # the folder's NN
                    name = run_dir_name(at, seed, width * len(fold_list), variant, fold)
                    planned.append(RunRecord(len(planned), seed, name, variant=variant, fold=fold))
    return tuple(planned)


def _kept_folds(spec: StudySpec, existing: StudyState | None) -> FoldSpec | None:
    """The config's folds; a resume must keep the study's (their number and key)."""
    folds = spec.runner.folds
    if existing is None or existing.folds == folds:
        return folds

    def said(f: FoldSpec | None) -> str:
        return "none" if f is None else f"{{n: {f.n}, key: {f.key}}}"

    raise StateError(
        f"experiments_runner.folds is {said(folds)} but the study was started with "
        f"{said(existing.folds)}; resume with the study's folds, or start a new output_base_dir"
    )


def _exists_error(root: Path, state: StudyState) -> StudyExistsError:
    return StudyExistsError(
        f"{root} already holds a study ({len(state.completed)} of {len(state.runs)} "
        "runs completed); resume it with --resume (or resume: true), "
        "or choose another output_base_dir"
    )


def _check_plain_kept(spec: StudySpec, existing: StudyState) -> None:
    """Refuse a resume of a study without variants under another training config or seeds."""
    if existing.config_fingerprint != spec.fingerprint:
        keys = changed_keys(existing.training_config, spec.training)
        raise StateError(
            f"the training config changed since this study started ({', '.join(keys)}); "
            "resume with the original config, or start a new output_base_dir"
        )
    if spec.runner.seeds is not None and spec.runner.seeds != existing.seeds:
        raise StateError(
            f"experiments_runner.seeds {list(spec.runner.seeds)} differ from the study's "
            f"{list(existing.seeds)}; resume with the original seeds"
        )


def _kept_seeds(spec: StudySpec, existing: StudyState) -> tuple[int, ...]:
    """A study without variants keeps its fixed seeds: n_runs may not change."""
    runner = spec.runner
    if runner.seeds is None and runner.n_runs != len(existing.seeds):
        raise StateError(
            f"experiments_runner.n_runs is {runner.n_runs} but the study has "
            f"{len(existing.seeds)} runs; resume with n_runs: {len(existing.seeds)}"
        )
    return existing.seeds


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
