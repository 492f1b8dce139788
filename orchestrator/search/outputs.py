"""What a search leaves beside its trials: ``trials.csv`` (one row per trial),
``best_config.yaml`` (the training config of the best trial), the parameter
importances (``importances.csv``, and said on the terminal) and
``search_history.png`` (each trial's value and the best so far)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from orchestrator.commands.figures import new_figure, save_png
from orchestrator.console import Reporter
from orchestrator.contract.atomic import atomic_write_text
from orchestrator.contract.paths import StudyPaths
from orchestrator.contract.search_paths import SearchPaths
from orchestrator.errors import XorchError
from orchestrator.search.space import trial_training
from orchestrator.search.spec import Direction, SearchSpec
from orchestrator.state_store import load_state

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

__all__ = [
    "TrialRow",
    "best_config_text",
    "history_figure",
    "importance_rows",
    "trial_rows",
    "trials_csv_text",
    "write_outputs",
]


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete, fail, running
    value: float | None
    duration_s: float | None
    params: Mapping[str, Any]  # Optuna's values (a block by its name)
    reason: str  # why a trial failed, from its run's record


def trial_rows(study: optuna.Study, paths: SearchPaths) -> list[TrialRow]:
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        state = t.state.name.lower()
        duration = t.duration.total_seconds() if t.duration is not None else None
        rows.append(
            TrialRow(
                number=t.number,
                state=state,
                value=t.value if state == "complete" else None,
                duration_s=duration,
                params=dict(t.params),
                reason=_failure_reason(paths, t.number) if state == "fail" else "",
            )
        )
    return rows


def _failure_reason(paths: SearchPaths, number: int) -> str:
    """The reason its run gave (the trial's own runner_state.json), if it can be read."""
    try:
        state = load_state(StudyPaths(paths.trial(number)))
    except XorchError:
        return "its runner_state.json cannot be read"
    if state is None or not state.runs:
        return "not run (a config error removes what it made)"
    run = state.runs[0]
    attempt = run.current_attempt
    what = run.failure.value if run.failure else run.status.value
    return f"{what}: {attempt.reason}" if attempt is not None and attempt.reason else what


def trials_csv_text(rows: Sequence[TrialRow], search: SearchSpec) -> str:
    """``trial,state,<metric>,duration_s,<params...>,reason``; pure."""
    keys = [p.key for p in search.space]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "state", search.metric, "duration_s", *keys, "reason"])
    for r in rows:
        writer.writerow(
            [
                r.number,
                r.state,
                "" if r.value is None else repr(r.value),
                "" if r.duration_s is None else f"{r.duration_s:.2f}",
                *(r.params.get(k, "") for k in keys),
                r.reason,
            ]
        )
    return out.getvalue()


def best_config_text(
    number: int,
    value: float,
    sampled: Mapping[str, Any],
    search: SearchSpec,
    training: Mapping[str, Any],
) -> str:
    """The best trial's whole training config as YAML, its values in a header."""
    head = [
        f"# best trial {number} of the search: {search.metric} = {value!r} "
        f"({search.direction.value}) on seed {search.seed}",
        "# its values:",
        *(f"#   {k}: {v!r}" for k, v in sampled.items()),
    ]
    body = yaml.safe_dump(
        trial_training(training, search.space, sampled), sort_keys=False, allow_unicode=True
    )
    return "\n".join(head) + "\n" + body


def importance_rows(study: optuna.Study) -> list[tuple[str, float]] | str:
    """Optuna's PED-ANOVA parameter importances (deterministic, and without
    scikit-learn, which fANOVA needs), largest first; or why there are none."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator

    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < 2:
        return f"{len(completed)} completed trial(s); importances need 2 or more"
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator()
        )
    except (RuntimeError, ValueError) as exc:  # e.g. every trial had the same values
        return f"no importances ({exc})"
    return sorted(found.items(), key=lambda kv: -kv[1])


def history_figure(rows: Sequence[TrialRow], search: SearchSpec) -> Figure:
    """Each completed trial's value by its number, and the best so far as a step line."""
    figure = new_figure(1, 1, (7.0, 4.0))
    axes = figure.axes[0]
    done = [(r.number, r.value) for r in rows if r.value is not None and math.isfinite(r.value)]
    pick = min if search.direction is Direction.MINIMIZE else max
    best: list[float] = []
    for _, value in done:
        best.append(value if not best else pick(best[-1], value))
    axes.plot([n for n, _ in done], [v for _, v in done], "o", label="trial")
    axes.step([n for n, _ in done], best, where="post", label="best so far")
    failed = [r.number for r in rows if r.state == "fail"]
    if failed:
        axes.plot(failed, [best[-1] if best else 0.0] * len(failed), "x", label="failed")
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{search.metric} (seed {search.seed})")
    axes.set_title(f"search: {search.metric}, {search.direction.value}")
    axes.legend()
    return figure


def write_outputs(
    study: optuna.Study,
    search: SearchSpec,
    training: Mapping[str, Any],
    paths: SearchPaths,
    reporter: Reporter,
    complete: bool = True,
) -> None:
    """The outputs of the search, rebuilt from the storage (so also after a
    resume); trials.csv only unless ``complete``."""
    rows = trial_rows(study, paths)
    atomic_write_text(paths.trials_csv, trials_csv_text(rows, search), durable=False)
    done = [r for r in rows if r.value is not None]
    reporter.say(f"search: {len(done)} of {len(rows)} trials completed; trials: {paths.trials_csv}")
    if not complete:
        return
    if done:
        best = study.best_trial
        assert best.value is not None
        text = best_config_text(best.number, best.value, best.params, search, training)
        atomic_write_text(paths.best_config, text, durable=False)
        said = ", ".join(f"{k}={v!r}" for k, v in best.params.items())
        reporter.say(f"best trial {best.number}: {search.metric} {best.value:.6g} ({said})")
        reporter.say(f"best config: {paths.best_config}")
    found = importance_rows(study)
    if isinstance(found, str):
        reporter.say(f"parameter importances: {found}")
    else:
        lines = ["parameter,importance", *(f"{k},{v:.6g}" for k, v in found)]
        atomic_write_text(paths.importances, "\n".join(lines) + "\n", durable=False)
        said = ", ".join(f"{k} {v:.2f}" for k, v in found)
        reporter.say(f"parameter importances (PED-ANOVA): {said}")
    save_png(history_figure(rows, search), paths.history_plot)
