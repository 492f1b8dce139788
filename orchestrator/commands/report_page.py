"""``xorch report``: one self-contained HTML page about a study.

The page needs no network and no other file: CSS is inline, figures are PNGs
drawn on matplotlib's Agg canvas (the same figures ``xorch plot`` saves) and
embedded as base64 ``data:`` URLs. It shows what exists when it is written, so
it works on a study that is still running; ``watch_report`` rewrites it each
time runner_state.json changes (every run that starts or ends rewrites that
file). The page is replaced atomically, so a browser never loads half of it.

Sections: progress, config, environment, learning curves, spread of the final
metrics, descriptive statistics per metric (``orchestrator.inference``), power
figures per summary metric (``orchestrator.commands.power``), the runs that did not
complete with their failure classes.

The environment is that of the machine writing the report (package versions
from ``importlib.metadata``, so torch is never imported here) next to what the
runs recorded: the hosts and GPUs of their attempts.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import yaml

from orchestrator.commands.compare import state_groups, variant_groups
from orchestrator.commands.output_file import OutputKind, check_output
from orchestrator.commands.power import Design, PowerAsk, power_for_study
from orchestrator.commands.report_parts import esc, figure_html, html_table
from orchestrator.commands.report_tables import power_table, statistics_table
from orchestrator.contract.atomic import atomic_write_text
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import ExitCode, XorchError
from orchestrator.sample_stats import describe_sample
from orchestrator.state import RunStatus, StudyState
from orchestrator.state_journal import state_version
from orchestrator.state_store import load_study_state
from orchestrator.tables import human_cell

__all__ = ["REPORT_NAME", "ReportWriteError", "render_report", "watch_report", "write_report"]

REPORT_NAME = StudyPaths(Path()).report.name
_TITLE = "xorch report: "
# What the page may be written over: a file ending in .html that begins like this page.
REPORT = OutputKind(
    option="--out",
    what="the report is an HTML page",
    suffixes=(".html", ".htm"),
    own_name=REPORT_NAME,
    mark=f"<title>{_TITLE}".encode(),
)
PACKAGES: tuple[str, ...] = (
    "torch", "pytorch-lightning", "lightning", "numpy", "scipy", "statsmodels", "matplotlib",
)  # fmt: skip


class ReportWriteError(XorchError):
    """The report file could not be written (disk full, permissions)."""

    exit_code = ExitCode.STATE_WRITE


def write_report(study_dir: Path, out: Path | None = None, force: bool = False) -> Path:
    """Write the page (default ``DIR/report.html``) atomically; return its path.
    ``out`` is checked first (``output_file``): never a study file, never an
    existing file that is not a report, unless ``force`` (for the latter)."""
    paths = StudyPaths(Path(study_dir).resolve())
    target = check_output(out if out is not None else paths.report, paths.root, REPORT, force)
    if out is not None and not target.parent.is_dir():  # no study folder: render_report says so
        raise XorchError(f"--out {out}: folder {target.parent} does not exist; create it first")
    page = render_report(paths)
    try:
        atomic_write_text(target, page)
        os.chmod(target, 0o644)  # the temp file was private; a report is meant to be shared
    except OSError as exc:
        raise ReportWriteError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def watch_report(
    study_dir: Path,
    out: Path | None = None,
    interval: float = 2.0,
    say: Callable[[str], None] = print,
    force: bool = False,
) -> None:
    """Rewrite the page whenever the saved state changes, until Ctrl-C."""
    paths = StudyPaths(Path(study_dir).resolve())
    seen: tuple[int | None, int | None] | None = None
    try:
        while True:
            mtime = state_version(paths)
            if mtime[0] is not None and mtime != seen:
                seen = mtime
                target = write_report(study_dir, out, force)
                say(f"{datetime.now().strftime('%H:%M:%S')} wrote {target}")
            time.sleep(interval)
    except KeyboardInterrupt:
        return


# --------------------------------------------------------------------------- the page


def render_report(paths: StudyPaths) -> str:
    """The whole HTML page for the study in ``paths``."""
    state = load_study_state(paths)
    title = f"{_TITLE}{paths.root.name}"
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if state.variant_configs:
        sections = _variant_sections(paths, state)
    else:
        sections = [
            _section("Progress", _progress(state) + _standouts(state)),
            _figures_section(paths, state),
            _section("Statistics over seeds (completed runs)", _statistics(state)),
            _section("Power: how many seeds are enough", _power(state)),
        ]
    sections += [
        _section("Runs that did not complete", _unfinished(state)),
        _section("Environment", environment_section(state)),
        _section("Training config", _config(state)),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1><p class='meta'>{esc(str(paths.root))} · written {written}</p>"
        + "".join(sections)
        + f"</main><script>{_SELF_CHECK}</script></body></html>\n"
    )


def _variant_sections(paths: StudyPaths, state: StudyState) -> list[str]:
    from orchestrator.commands import report_variants as v

    reference = v.reference_of(state)
    groups = variant_groups(state)
    logged = {m: None for values in groups.values() for m in values}
    metrics = _ordered_metrics(state, logged)
    if not metrics:
        empty = "<p class='empty'>No completed run yet.</p>"
        return [_section("Progress", v.variant_progress(state)),
                _section("Figures", empty)]  # fmt: skip
    return [
        _section("Progress", v.variant_progress(state) + _standouts(state)),
        _figures_section(paths, state),
        _section("Statistics over seeds, per variant", v.variant_statistics(state, metrics)),
        _section(
            f"Paired differences: each variant minus {reference}",
            v.variant_differences(state, metrics),
        ),
        _section(
            f"Comparison table: each variant against {reference}",
            v.variant_comparison(state, metrics),
        ),
        _section("Power: how many seeds are enough", v.variant_power(state)),
    ]


def _section(heading: str, body: str) -> str:
    anchor = heading.split(":")[0].lower().replace(" ", "-")
    return f"<section id='{esc(anchor)}'><h2>{esc(heading)}</h2>{body}</section>"


def _standouts(state: StudyState) -> str:
    """The representative and the best run (per variant), as ``xorch status`` says them."""
    from orchestrator.representative import standout_lines

    return "".join(f"<p class='standout'>{esc(line)}</p>" for line in standout_lines(state))


def _progress(state: StudyState) -> str:
    counts = {status: len(state.with_status(status)) for status in RunStatus}
    cells = "".join(
        f"<span class='pill {status.value}'>{esc(status.value)}: {count}</span>"
        for status, count in counts.items()
        if count
    )
    return f"<p>{len(state.runs)} runs planned. {cells}</p>"


def _figures_section(paths: StudyPaths, state: StudyState) -> str:
    """The figures, under a heading that names the ones there are (no "Learning
    curves" heading over a study whose runs logged no curves)."""
    from orchestrator.commands.plot import study_figures

    try:
        figures = study_figures(paths.root)
    except XorchError as exc:
        return _section("Figures", f"<p class='empty'>No figures yet: {esc(str(exc))}.</p>")
    notes = _VARIANT_FIGURE_NOTES if state.variant_configs else _FIGURE_NOTES
    images, shown = [], []
    for target, figure in figures:
        alt = "learning curves" if target == paths.curves_plot else "spread of final metrics"
        images.append(figure_html(figure, alt, notes[alt]))
        shown.append(alt)
    heading = " and ".join(shown).capitalize() if shown else "Figures"
    return _section(heading, "".join(images))


_FIGURE_NOTES = {
    "learning curves": "Per epoch: each seed as a faint line, the mean in bold, "
    "the band is mean ± std across seeds.",
    "spread of final metrics": "Each seed's final value as a point over a box plot.",
}
_VARIANT_FIGURE_NOTES = {
    "learning curves": "Per epoch and variant (one colour each): its seeds as faint lines, "
    "its mean in bold, the band is its mean ± std across seeds.",
    "spread of final metrics": "Per variant, each seed's final value as a point over a box "
    "plot (the black line is the median); n counts the variant's completed seeds.",
}


def _statistics(state: StudyState) -> str:
    values = state_groups(state)
    if not values:
        return "<p class='empty'>No completed run yet.</p>"
    metrics = _ordered_metrics(state, values)
    rows = [([metric], describe_sample(values[metric])) for metric in metrics]
    note = (
        "<p class='note'>IQM: interquartile mean (the mean after dropping the lowest and "
        "highest quarter of the seeds). Bootstrap: 9999 resamples, seed 0; BCa where it is "
        "defined, else percentile.</p>"
    )
    return statistics_table(["metric"], rows) + note


def _power(state: StudyState) -> str:
    values = state_groups(state)
    rows = power_for_study(state, None, PowerAsk()) if values else []
    rows = [r for r in rows if r.design is Design.TWO_SAMPLE]
    if not rows:
        return "<p class='empty'>No completed run of a summary metric yet.</p>"
    header = ["metric", "seeds now", "std", "detectable now"]
    explain = (
        "<p class='note'>The smallest difference between this config and another one, run "
        "on as many independent seeds each, that Student's two-sample t-test detects with "
        "power 0.8 at alpha 0.05 (two-sided), from the std observed here. Pairing the seeds "
        "usually needs fewer; <code>xorch power</code> gives paired figures and the seeds "
        "needed for a given effect.</p>"
    )
    return power_table(header, "with {} seeds", rows, human_cell, explain)


def _unfinished(state: StudyState) -> str:
    runs = [r for r in state.runs if r.status is not RunStatus.COMPLETED]
    if not runs:
        return "<p>Every run completed.</p>"
    named = bool(state.variant_configs)
    rows = []
    for r in runs:
        last = r.attempts[-1] if r.attempts else None
        failure = r.failure.value if r.failure is not None else ""
        reason = last.reason if last is not None else ""
        rows.append([str(r.index), *([r.variant or ""] if named else []), str(r.seed), r.dir,
                     r.status.value, failure, str(len(r.attempts)), reason])  # fmt: skip
    header = ["run", *(["variant"] if named else []), "seed", "folder", "status", "class",
              "attempts", "reason"]  # fmt: skip
    shift = 1 if named else 0
    return html_table(header, rows, numeric=(0, 1 + shift, 5 + shift))


def environment_section(state: StudyState) -> str:
    rows = [
        ["python", f"{platform.python_version()} ({sys.executable})"],
        ["platform", platform.platform()],
        ["report written on", socket.gethostname()],
    ]
    for package in PACKAGES:
        rows.append([package, _version(package)])
    from orchestrator.gpus import nvidia_smi_rows

    gpus = [" ".join(row) for row in nvidia_smi_rows("index", "name", "memory.total")]
    rows.append(["GPUs here (nvidia-smi)", "; ".join(gpus) or "none found"])
    attempts = [a for r in state.runs for a in r.attempts]
    hosts = sorted({a.host for a in attempts})
    # Each slot's GPUs ("0,1" for a run on two) with the runs that used them.
    used: dict[str, list[int]] = {}
    for record in state.runs:
        for gpu in dict.fromkeys(a.gpu for a in record.attempts if a.gpu):
            used.setdefault(gpu, []).append(record.index)
    shown = [f"{gpu} (runs {', '.join(map(str, runs))})" for gpu, runs in sorted(used.items())]
    rows.append(["runs' hosts", ", ".join(hosts) or "no attempt yet"])
    rows.append(["runs' GPUs (CUDA_VISIBLE_DEVICES)", "; ".join(shown) or "none (CPU)"])
    return html_table(["", "value"], rows, numeric=())


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _config(state: StudyState) -> str:
    text = f"<pre>{esc(_config_text(state))}</pre>"
    if not state.variant_configs:
        return text
    from orchestrator.commands.report_variants import variant_configs

    return variant_configs(state) + "<p class='note'>The base config:</p>" + text


def _config_text(state: StudyState) -> str:
    return yaml.safe_dump(dict(state.training_config), sort_keys=False, default_flow_style=False)


def _ordered_metrics(state: StudyState, values: Mapping[str, object]) -> list[str]:
    """The summary metrics first, in their order, then the rest sorted."""
    first = [m for m in state.summary_metrics if m in values]
    return first + sorted(m for m in values if m not in first)


# Marks on <body> what the browser made of the page, for a headless check (--dump-dom):
# how many images decoded, how many did not, and any script error. Needs no network.
_SELF_CHECK = """
window.addEventListener("error", function (e) {
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + ";";
});
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  document.body.dataset.imagesLoaded = images.filter(i => i.naturalWidth > 0).length;
  document.body.dataset.imagesBroken = images.filter(i => i.naturalWidth === 0).length;
});
"""

_CSS = """
body { margin: 0; background: #f6f7f9; color: #1d232b;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 20px 60px; }
h1 { font-size: 26px; margin: 0 0 2px; }
h2 { font-size: 19px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 2px solid #dde2e8; }
section { background: #fff; border: 1px solid #e1e5ea; border-radius: 8px;
  padding: 16px 16px; margin: 18px 0; }
.meta { color: #5b6573; margin: 0; font-size: 13px; }
.note, figcaption { color: #5b6573; font-size: 13px; margin: 8px 0 0; }
.empty { color: #8a5a00; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { padding: 4px 9px; border-bottom: 1px solid #e6e9ee; text-align: left;
  vertical-align: top; }
td:first-child { white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 0 0 18px; }
img { max-width: 100%; height: auto; border: 1px solid #eceff3; border-radius: 4px; }
pre { background: #f3f5f8; padding: 12px; border-radius: 6px; overflow-x: auto;
  font-size: 13px; margin: 0; }
code { background: #f3f5f8; padding: 0 4px; border-radius: 3px; }
.pill { display: inline-block; padding: 1px 10px; margin: 0 6px 4px 0; border-radius: 12px;
  background: #e8ecf1; font-size: 13px; }
.pill.completed { background: #dcf3e3; } .pill.failed { background: #fbe0e0; }
.pill.running { background: #e0ecfb; } .pill.interrupted { background: #fdf0d5; }
"""
