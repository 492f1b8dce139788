"""``xorch report``: one self-contained HTML page, written atomically, on finished and running
studies, rewritten by --watch, and loaded by a real headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from orchestrator.commands.report_page import write_report
from orchestrator.contract.paths import StudyPaths
from orchestrator.inference import describe_sample
from orchestrator.state import Attempt, AttemptClass, RunRecord, RunStatus, StudyState
from orchestrator.state_store import save_state
from orchestrator.tables import human_cell
from tests.fakes import fake_study_config, fake_xorch, finished_fake_study, write_csv_logs
from tests.helpers import TORCH_WATCH, saved_variant_study, snapshot, xorch, xorch_popen

PNG = b"\x89PNG\r\n\x1a\n"


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([^']+)'", page)]


def running_state(completed: int) -> StudyState:
    """Four seeds: ``completed`` done, then one running, one that ran out of GPU memory,
    the rest pending; no CSV logs on disk."""
    runs = []
    for i, seed in enumerate((42, 101, 28, 7)):
        attempt = Attempt(number=1, started_at="2026-01-01T00:00:00", log="train.log")
        if i < completed:
            record = RunRecord(index=i, seed=seed, dir=f"run_{i:02d}_seed{seed}",
                               status=RunStatus.COMPLETED, metrics={"val/loss": 0.5 + i / 10},
                               attempts=(attempt,))  # fmt: skip
        elif i == completed:
            record = RunRecord(index=i, seed=seed, dir=f"run_{i:02d}_seed{seed}",
                               status=RunStatus.RUNNING, attempts=(attempt,))  # fmt: skip
        elif i == completed + 1:
            oom = Attempt(number=1, started_at="2026-01-01T00:00:00", log="train.log",
                          attempt_class=AttemptClass.CUDA_OOM,
                          reason="CUDA out of memory <at> batch 3")  # fmt: skip
            record = RunRecord(index=i, seed=seed, dir=f"run_{i:02d}_seed{seed}",
                               status=RunStatus.FAILED, attempts=(oom,))  # fmt: skip
        else:
            record = RunRecord(index=i, seed=seed, dir=f"run_{i:02d}_seed{seed}")
        runs.append(record)
    return StudyState(config_fingerprint="f", training_config={"model": {"lr": 0.05}},
                      seeds=(42, 101, 28, 7), runs=tuple(runs))  # fmt: skip


@pytest.fixture(scope="module")
def fake_study(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """A finished 3-seed study of fake workers, with the CSV logs Lightning would
    have written (the fake worker writes none), for the tests of the page."""
    path, out, result = finished_fake_study(tmp_path_factory.mktemp("report-fake"))
    write_csv_logs(out)
    return path, out, result


def test_report_of_a_finished_study_has_every_section_and_no_torch(fake_study, tmp_path):
    _, out, launched = fake_study
    assert launched.returncode == 0, launched.stderr
    target = tmp_path / "my report's page.html"
    result = subprocess.run(
        [sys.executable, "-c", TORCH_WATCH, "report", str(out), "--out", str(target)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "PARENT-IMPORTED False False" in result.stderr  # the parent never imports torch
    assert result.stdout.strip() == str(target)
    page = target.read_text(encoding="utf-8")
    assert (target.stat().st_mode & 0o777) == 0o644
    for heading in ("Progress", "Learning curves", "Statistics over seeds", "Power",
                    "Runs that did not complete", "Environment", "Training config"):  # fmt: skip
        assert f"<h2>{heading}" in page
    images = embedded_pngs(page)
    assert len(images) == 2 and all(png.startswith(PNG) for png in images)
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    # The statistics are the inference module's, for the study's own values.
    state = json.loads((out / "runner_state.json").read_text())
    losses = [r["metrics"]["val/loss"] for r in state["runs"]]
    stats = describe_sample(losses).summary
    assert f"<td class=num>{human_cell(stats.mean)}</td>" in page
    assert f"[{human_cell(stats.ci_low)}, {human_cell(stats.ci_high)}]" in page
    assert "Every run completed." in page and "completed: 3" in page
    assert "pytorch-lightning" in page and "tests.fake_worker.Script" in page
    # val/loss = seed + 0.5: the mean 57.5 is nearest seed 42's; seed 28's is the lowest.
    assert (
        "<p class='standout'>representative run 0 (seed 42, val/loss 42.5); "
        "best run 2 (seed 28, val/loss 28.5, lower is better)</p>"
    ) in page


def test_report_of_a_running_study_shows_what_exists_so_far(tmp_path):
    paths = StudyPaths(tmp_path / "running study")
    paths.root.mkdir()
    save_state(paths, running_state(completed=2))
    target = write_report(paths.root)
    assert target == paths.root / "report.html"
    page = target.read_text(encoding="utf-8")
    # No CSV logs yet: no learning curves, but the final metrics are drawn.
    assert "alt='spread of final metrics'" in page and "alt='learning curves'" not in page
    assert "completed: 2" in page and "running: 1" in page and "failed: 1" in page
    assert "<td>cuda_oom</td>" in page
    assert "CUDA out of memory &lt;at&gt; batch 3" in page  # escaped, not markup
    assert "<td>run_02_seed28</td><td>running</td>" in page.replace(" class=num", "")
    assert not [p.name for p in paths.root.iterdir() if p.name.endswith(".tmp")]


def test_report_of_a_study_with_nothing_completed(tmp_path):
    paths = StudyPaths(tmp_path / "fresh")
    paths.root.mkdir()
    save_state(paths, running_state(completed=0))
    page = write_report(paths.root).read_text(encoding="utf-8")
    assert page.count("No completed run") == 2 and "No figures yet" in page


def test_bad_out_folder_is_one_line_and_exit_2(tmp_path):
    paths = StudyPaths(tmp_path / "s")
    paths.root.mkdir()
    save_state(paths, running_state(completed=1))
    before = snapshot(tmp_path)
    result = xorch("report", str(paths.root), "--out", str(tmp_path / "no such dir" / "r.html"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    missing = xorch("report", str(tmp_path / "nothing here"))
    assert missing.returncode == 2 and "no runner_state.json" in missing.stderr
    assert snapshot(tmp_path) == before


def test_watch_rewrites_the_page_as_runs_finish_and_stops_on_ctrl_c(tmp_path):
    paths = StudyPaths(tmp_path / "watched study")
    paths.root.mkdir()
    save_state(paths, running_state(completed=1))
    target = tmp_path / "page.html"
    proc = xorch_popen("report", str(paths.root), "--out", str(target), "--watch",
                       "--interval", "0.2")  # fmt: skip
    try:
        page = _wait_for(target, "completed: 1")
        assert "running: 1" in page
        time.sleep(0.05)  # a new mtime even on coarse-clock file systems
        save_state(paths, running_state(completed=2))
        _wait_for(target, "completed: 2")
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    # The rewrite is proven by the page; its "wrote" line may be cut by the Ctrl-C
    # that follows at once.
    assert stdout.count("wrote") >= 1


def _wait_for(path: Path, text: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            page = path.read_text(encoding="utf-8")
            if text in page:
                return page
        time.sleep(0.1)
    raise AssertionError(f"{path} never showed {text!r}")


# --------------------------------------------------------------------------- a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    # --no-sandbox: the sandbox cannot start as root in a container; the page is our own.
    return subprocess.run(
        [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--hide-scrollbars", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")},
    )  # fmt: skip


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium package (apt-get install chromium)"
)
def test_headless_chromium_loads_the_page_with_its_tables_and_images(fake_study, tmp_path):
    from PIL import Image

    _, out, launched = fake_study
    assert launched.returncode == 0, launched.stderr
    target = write_report(out, tmp_path / "report.html")
    dom = chromium("--dump-dom", target.as_uri())
    assert dom.returncode == 0, dom.stderr
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None
    assert 'data-images-loaded="2"' in body.group(0)  # both PNGs decoded in the browser
    assert 'data-images-broken="0"' in body.group(0) and "data-errors" not in body.group(0)
    assert dom.stdout.count("<table>") == 3  # statistics, power, environment
    shot = tmp_path / "report.png"
    taken = chromium("--window-size=1280,3000", f"--screenshot={shot}", target.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    with Image.open(shot) as image:
        assert image.size == (1280, 3000)
        # A page of text, tables and plots has many colours; a blank or error page few.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 200
    kept = os.environ.get("XORCH_REPORT_SCREENSHOT")
    if kept:  # to look at it: XORCH_REPORT_SCREENSHOT=/tmp/report.png pytest ...
        shutil.copyfile(shot, kept)


def test_a_failed_write_keeps_the_previous_page_and_exits_3(tmp_path, monkeypatch):
    import errno

    from orchestrator.commands.report_page import ReportWriteError
    from orchestrator.contract import atomic
    from orchestrator.errors import ExitCode

    paths = StudyPaths(tmp_path / "full disk")
    paths.root.mkdir()
    save_state(paths, running_state(completed=1))
    target = write_report(paths.root)
    previous = target.read_bytes()
    save_state(paths, running_state(completed=2))

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", disk_full)
    with pytest.raises(ReportWriteError, match="No space left on device") as caught:
        write_report(paths.root)
    assert caught.value.exit_code is ExitCode.STATE_WRITE
    assert target.read_bytes() == previous
    assert not [p.name for p in paths.root.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- variants

VARIANT_LOSSES: dict[str, list[float | None]] = {
    "baseline": [0.50, 0.55, 0.48, 0.52],
    "wide": [0.49, 0.53, 0.49, 0.50],
    "tiny_lr": [1.10, 1.08, 1.12, None],  # the last one still pending
}


def variant_report(tmp_path: Path, values=VARIANT_LOSSES) -> tuple[StudyState, str]:
    paths = StudyPaths(tmp_path / "variants study")
    seeds = tuple(range(1, len(next(iter(values.values()))) + 1))
    state = saved_variant_study(paths.root, values, seeds)
    return state, write_report(paths.root).read_text(encoding="utf-8")


def cells(page: str) -> str:
    return page.replace(" class=num", "")


def test_report_of_a_variants_study_compares_the_variants_paired(tmp_path):
    from orchestrator.commands.compare import compare_variants

    state, page = variant_report(tmp_path)
    for heading in ("Progress", "Learning curves", "Statistics over seeds, per variant",
                    "Paired differences: each variant minus baseline",
                    "Comparison table: each variant against baseline", "Power",
                    "Runs that did not complete", "Environment", "Training config"):  # fmt: skip
        assert f"<h2>{heading}" in page, heading
    images = embedded_pngs(page)  # curves, spread, paired differences
    assert len(images) == 3 and all(png.startswith(PNG) for png in images)
    assert "alt='paired differences'" in page
    # Progress per variant; the pending run is listed with its variant.
    assert "<tr><td>tiny_lr</td><td>4</td><td>3</td><td>1</td></tr>" in cells(page)
    assert "<td>11</td><td>tiny_lr</td><td>4</td><td>tiny_lr/run_03_seed4</td><td>pending" in (
        cells(page)
    )
    # Statistics: each variant over its own seeds, never pooled.
    for variant, losses in VARIANT_LOSSES.items():
        s = describe_sample([x for x in losses if x is not None]).summary
        row = f"<td>val/loss</td><td>{variant}</td><td>{s.n}</td><td>{human_cell(s.mean)}</td>"
        assert row in cells(page), variant
    # Paired differences and the comparison table are compare_variants' numbers.
    table = compare_variants(state, ["val/loss", "val/acc"])
    bad = table.contrast_of("tiny_lr", "val/loss")
    assert bad is not None and bad.n == 3 and bad.better == "no"
    assert (f"<td>val/loss</td><td>tiny_lr</td><td>baseline</td><td>3</td>"
            f"<td>{bad.diff:.4g}</td><td>[{bad.diff_ci_low:.4g}, {bad.diff_ci_high:.4g}]</td>"
            "<td>no (min is better)</td>") in cells(page)  # fmt: skip
    assert f"<td>{bad.p_value:.3g} ({bad.p_holm:.3g})</td>" in cells(page)
    # Power: paired, per variant, from the spread of the differences.
    assert "<th>std of diffs</th>" in cells(page) and "<th>40 pairs</th>" in cells(page)
    assert "<td>val/loss</td><td>tiny_lr</td><td>baseline</td><td>3</td>" in cells(page)
    # The config: each variant's change to the base.
    assert "<td>wide</td><td>model.lr=0.005</td>" in page


def test_report_of_a_variants_study_before_the_reference_completed(tmp_path):
    values: dict[str, list[float | None]] = {"baseline": [None, None], "wide": [0.5, None]}
    state, page = variant_report(tmp_path, values)
    assert "No comparison yet: the reference variant baseline has no completed run" in page
    assert "No power figures yet" in page
    assert "<tr><td>baseline</td><td>2</td><td>0</td><td>2</td></tr>" in cells(page)
    # A run that failed is listed with its variant and failure class.
    oom = Attempt(number=1, started_at="2026-01-01T00:00:00", log="train.log",
                  attempt_class=AttemptClass.CUDA_OOM, reason="CUDA out of memory")  # fmt: skip
    failed = replace(state.runs[0], status=RunStatus.FAILED, attempts=(oom,))  # fmt: skip
    paths = StudyPaths(tmp_path / "variants study")
    save_state(paths, replace(state, runs=(failed, *state.runs[1:])))
    page = write_report(paths.root).read_text(encoding="utf-8")
    assert ("<td>0</td><td>baseline</td><td>1</td><td>baseline/run_00_seed1</td><td>failed</td>"
            "<td>cuda_oom</td><td>1</td><td>CUDA out of memory</td>") in cells(page)  # fmt: skip
    assert "<th>failed</th>" in cells(page)  # the progress table counts it
    nothing: dict[str, list[float | None]] = {"baseline": [None], "wide": [None]}
    _, empty = variant_report(tmp_path / "fresh", nothing)
    assert "No completed run yet" in empty and "<h2>Comparison table" not in empty


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium package (apt-get install chromium)"
)
def test_headless_chromium_loads_a_variants_report(tmp_path):
    from PIL import Image

    variant_report(tmp_path)
    target = tmp_path / "variants study" / "report.html"
    dom = chromium("--dump-dom", target.as_uri())
    assert dom.returncode == 0, dom.stderr
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None
    assert 'data-images-loaded="3"' in body.group(0)
    assert 'data-images-broken="0"' in body.group(0) and "data-errors" not in body.group(0)
    # progress, statistics, differences, comparison (one table per metric: val/loss and
    # val/acc), power, unfinished, environment, variants
    assert dom.stdout.count("<table>") == 9
    shot = tmp_path / "variants.png"
    taken = chromium("--window-size=1200,4000", f"--screenshot={shot}", target.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    with Image.open(shot) as image:
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 200


def test_a_study_without_learning_curves_gets_no_such_heading(tmp_path):
    """Runs that logged no curves (no CSV logs): the figures' heading names what is there."""
    out = tmp_path / "out"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(fake_study_config(out, seeds=(1, 2))))
    launched = fake_xorch("launch", str(path), cwd=tmp_path)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    result = xorch("report", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Spread of final metrics</h2>" in page
    assert "Learning curves" not in page
