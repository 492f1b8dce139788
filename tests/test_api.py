"""The Python API (``orchestrator.api``) on studies of fake workers: its numbers are
the CLI's and the study files', it reads a study whose state is being replaced,
it changes nothing in the folder, it imports no torch, and the worked example
(scripts/api_example.py) runs on a study of variants."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestrator.api import CURVE_COLUMNS, RUN_COLUMNS, Study, load_study
from orchestrator.cli import app
from orchestrator.errors import StateError, XorchError
from tests.fakes import fake_study_config, fake_xorch, finished_fake_study, write_csv_logs
from tests.helpers import ROOT, snapshot

SEEDS = (1, 2, 3, 4)
VARIANTS = {
    "base": {},
    # worse by 0.3 plus a seed's share of a wider spread (tests/fake_worker.py)
    "shifted": {"model.init_args.offset": 0.3, "model.init_args.spread": 0.5},
}


def seed_share(seed: int) -> float:
    """The fixed fraction of ``spread`` the fake worker adds to a seed's val/loss."""
    return ((seed * 7919) % 13) / 13


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 3-seed study of one config, with each run's CSVLogger log."""
    _, out, _ = finished_fake_study(tmp_path_factory.mktemp("api-plain"))
    write_csv_logs(out)
    return out


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished study of two variants on 4 seeds (summary.csv, comparison.csv), with logs."""
    workdir = tmp_path_factory.mktemp("api variants")
    out = workdir / "out"
    config = fake_study_config(out, seeds=SEEDS, variants=VARIANTS, goal={"val/loss": "min"},
                               summary_metrics=["val/loss", "val/acc"])  # fmt: skip
    config["model"]["init_args"]["spread"] = 0.2  # seeds differ by more than their offset
    path = workdir / "study.yaml"
    path.write_text(json.dumps(config))
    result = fake_xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    write_csv_logs(out)
    return out


def cli_json(*args: str) -> list[dict[str, object]]:
    """``xorch ARGS --format json``, in-process, parsed."""
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def as_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The frame's rows as the CLI's JSON spells them: nan is null."""
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


# --------------------------------------------------------------------------- the same numbers


def test_runs_are_summary_csvs_rows_with_status_and_attempts(plain: Path) -> None:
    runs = load_study(plain).runs()
    assert list(runs.columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
    assert list(runs["seed"]) == [42, 101, 28] and set(runs["status"]) == {"completed"}
    assert list(runs["attempts"]) == [1, 1, 1] and runs["variant"].isna().all()
    written = pd.read_csv(plain / "summary.csv")
    per_run = written[~written["run"].isin(["mean", "std"])].astype({"run": int})
    for column in ("val/loss", "val/acc", "steps_done", "duration_s"):
        assert runs[column].to_numpy() == pytest.approx(per_run[column].to_numpy(), abs=0.006)


def test_summary_is_xorch_summarys_and_summary_csvs_numbers(plain: Path) -> None:
    summary = load_study(plain).summary()
    assert as_records(summary) == cli_json("summary", str(plain))
    written = pd.read_csv(plain / "summary.csv").set_index("run")
    by_metric = summary.set_index("metric")
    for metric in ("val/loss", "val/acc"):
        assert by_metric.loc[metric, "mean"] == pytest.approx(written.loc["mean", metric], abs=5e-7)
        assert by_metric.loc[metric, "std"] == pytest.approx(written.loc["std", metric], abs=5e-7)
    (only,) = as_records(load_study(plain).summary("val/acc"))
    assert only == cli_json("summary", str(plain), "-m", "val/acc")[0]


def test_a_variant_studys_summary_compare_and_power_are_the_clis(variants: Path) -> None:
    study = load_study(variants)
    assert study.variants == ("base", "shifted")
    summary = study.summary()
    assert as_records(summary) == cli_json("summary", str(variants))
    written = pd.read_csv(variants / "summary.csv")
    for variant in study.variants:
        mean_row = written[(written["run"] == "mean") & (written["variant"] == variant)]
        mine = summary[(summary["variant"] == variant) & (summary["metric"] == "val/loss")]
        assert float(mine["mean"].iloc[0]) == pytest.approx(
            float(mean_row["val/loss"].iloc[0]), abs=5e-7
        )
    compared = study.compare()
    assert as_records(compared) == cli_json("compare", str(variants))
    on_disk = pd.read_csv(variants / "comparison.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(
        compared.replace("", math.nan).astype(object),
        on_disk.astype(object),
        check_dtype=False,
    )
    shifted = compared[(compared["group"] == "shifted") & (compared["metric"] == "val/loss")]
    expected = sum(0.3 + (0.5 - 0.2) * seed_share(seed) for seed in SEEDS) / len(SEEDS)
    assert shifted["diff"].iloc[0] == pytest.approx(expected)
    power = study.power("val/loss", effect=0.1)
    assert as_records(power) == cli_json(
        "power", str(variants), "-m", "val/loss", "--effect", "0.1"
    )


def test_curves_are_each_runs_csv_log_in_long_format(variants: Path) -> None:
    study = load_study(variants)
    curves = study.curves()
    assert list(curves.columns) == list(CURVE_COLUMNS)
    # write_csv_logs: 3 epochs of val/loss and val/acc for each of the 8 runs
    assert len(curves) == 8 * 3 * 2
    runs = study.runs().set_index("run")
    last = curves[curves["epoch"] == 2].set_index(["run", "metric"])["value"]
    for run, row in runs.iterrows():
        assert last[(run, "val/loss")] == pytest.approx(row["val/loss"])
        first = curves[(curves["run"] == run) & (curves["epoch"] == 0)]
        assert first.set_index("metric").loc["val/loss", "value"] == pytest.approx(
            row["val/loss"] + 0.6
        )
        assert set(curves[curves["run"] == run]["variant"]) == {row["variant"]}


# --------------------------------------------------------------------------- reading only


def test_reading_while_the_state_file_is_replaced_never_fails(plain: Path, tmp_path: Path) -> None:
    """A launch holds the study's lock and saves runner_state.json after every start and
    end of an attempt; a notebook reading meanwhile (another process) takes no lock and
    sees the old state or the new one."""
    copy = tmp_path / "running study"
    shutil.copytree(plain, copy)
    saver = (
        "import sys\n"
        "from pathlib import Path\n"
        "from orchestrator.contract.paths import StudyPaths\n"
        "from orchestrator.locks import launcher_lock\n"
        "from orchestrator.state_store import load_state, save_state\n"
        "paths = StudyPaths(Path(sys.argv[1]))\n"
        "state = load_state(paths)\n"
        "with launcher_lock(paths):\n"
        "    for _ in range(300):\n"
        "        save_state(paths, state)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", saver, str(copy)], cwd=ROOT)
    files_seen, reads = set(), 0
    try:
        while writer.poll() is None:
            files_seen.add((copy / "runner_state.json").stat().st_ino)
            assert len(load_study(copy).runs()) == 3
            reads += 1
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert reads > 0 and len(files_seen) > 1  # the reads overlapped replacements of the file


def test_reading_everything_changes_nothing_in_the_folder(plain: Path, variants: Path) -> None:
    before = {folder: snapshot(folder) for folder in (plain, variants)}
    names = {folder: sorted(folder.rglob("*")) for folder in (plain, variants)}
    for folder in (plain, variants):
        study = load_study(folder)
        study.runs(), study.curves(), study.summary(), study.power(effect=0.1)
        if study.variants:
            study.compare()
    assert {folder: snapshot(folder) for folder in (plain, variants)} == before
    assert {folder: sorted(folder.rglob("*")) for folder in (plain, variants)} == names


def test_a_folder_that_is_no_study_gets_the_clis_error(plain: Path, tmp_path: Path) -> None:
    for not_a_study in (tmp_path, plain / "summary.csv"):
        with pytest.raises(StateError) as refused:
            load_study(not_a_study)
        said = CliRunner().invoke(app, ["summary", str(not_a_study)])
        assert said.exit_code == 2 and str(refused.value) in said.output
    with pytest.raises(XorchError, match="this study has no variants"):
        load_study(plain).compare()


def test_a_study_is_frozen(plain: Path) -> None:
    study = load_study(plain)
    with pytest.raises(AttributeError):
        study.root = plain.parent  # type: ignore[misc]
    assert isinstance(study, Study)


def test_the_api_never_imports_torch(variants: Path) -> None:
    code = (
        "import sys\n"
        "from orchestrator.api import load_study\n"
        "study = load_study(sys.argv[1])\n"
        "study.runs(), study.curves(), study.summary(), study.compare(), study.power()\n"
        "heavy = ('torch', 'lightning', 'pytorch_lightning')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(variants)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------- the example


def test_the_worked_example_plots_and_prints_the_comparison(variants: Path, tmp_path: Path) -> None:
    png = tmp_path / "val loss.png"
    result = subprocess.run(
        [sys.executable, "scripts/api_example.py", str(variants), "--png", str(png)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    compared = load_study(variants).compare("val/loss")
    shifted = compared[compared["group"] == "shifted"].iloc[0]
    line = next(x for x in result.stdout.splitlines() if x.split()[:2] == ["val/loss", "shifted"])
    assert f"{shifted['diff']:.6g}"[:5] in line and shifted["better"] in line
    missing = subprocess.run(
        [sys.executable, "scripts/api_example.py", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert missing.returncode == 2 and "holds no runner_state.json" in missing.stderr
