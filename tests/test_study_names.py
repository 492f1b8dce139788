"""Issue 23: names that collide with the study's own files.

A variant named like one of the study's files is refused when the config loads;
``xorch report --out`` never writes over a study file, the config, or a file it
did not write itself (without ``--force``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.commands.output_file import OutputKind, OutputTarget, output_refusal
from orchestrator.contract.paths import StudyPaths, run_dir_name, study_name_clash, study_names
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import saved_variant_study, snapshot


@pytest.mark.parametrize(
    ("name", "clash"),
    [
        ("summary.csv", "summary.csv"),
        ("comparison.csv", "comparison.csv"),
        ("runner_state.json", "runner_state.json"),
        ("runner_state.json.bak", "runner_state.json.bak"),
        ("Summary.CSV", "summary.csv"),  # one file on a case-insensitive file system
        ("xorch.log", "xorch.log"),
        ("forkserver.log", "forkserver.log"),
        ("slurm_jobs", "slurm_jobs"),
        ("plots", "plots"),
        ("report.html", "report.html"),
        ("run_00_seed42", "run_NN_seedS"),
        ("run_7_seed1_replay", "run_NN_seedS"),
        ("baseline", None),
        ("summary", None),
        ("run_00", None),
        ("lr_1e-3", None),
    ],
)
def test_study_name_clash(name, clash):
    found = study_name_clash(name)
    assert (found is None) if clash is None else found.startswith(clash)


def test_every_top_level_name_of_a_study_is_listed():
    paths = StudyPaths(Path("/s"))
    listed = set(study_names())
    for path in (paths.state, paths.state_backup, paths.state_lock, paths.launcher_lock,
                 paths.launcher_owner, paths.slurm_jobs, paths.forkserver_log, paths.summary,
                 paths.comparison, paths.log, paths.plots, paths.report):  # fmt: skip
        assert path.parent == paths.root and path.name in listed
    # Every name a run folder of a study of one config gets is taken too.
    assert study_name_clash(run_dir_name(3, 2**31 - 1, 500)) is not None


_HTML = OutputKind("--out", "the report is an HTML page", (".html", ".htm"), "report.html", b"x")


@pytest.mark.parametrize(
    ("given", "exists", "is_dir", "ours", "force", "refused"),
    [
        ("/s/runner_state.json", True, False, False, True, "the study's own runner_state.json"),
        ("/s/summary.csv", True, False, False, False, "the study's own summary.csv"),
        ("/s/plots", True, True, False, False, "is a folder"),
        ("/elsewhere/study.yaml", True, False, False, True, "ending in .html"),
        ("/s/run_00_seed1/metrics.json", True, False, False, True, "ending in .html"),
        ("/elsewhere/notes.html", True, False, False, False, "--force to replace it"),
        ("/elsewhere/notes.html", True, False, False, True, None),
        ("/elsewhere/old-report.HTML", True, False, True, False, None),
        ("/s/report.html", True, False, True, False, None),
        ("/s/report.html", True, False, False, False, "--force to replace it"),
        ("/elsewhere/new.htm", False, False, False, False, None),
    ],
)
def test_output_refusal(given, exists, is_dir, ours, force, refused):
    target = OutputTarget(given, Path(given), Path("/s"), exists, is_dir, ours)
    said = output_refusal(target, _HTML, force)
    assert (said is None) if refused is None else (refused in said and "\n" not in said)


def _one_line_exit_2(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize("name", ["summary.csv", "runner_state.json", "run_00_seed1"])
def test_launch_refuses_a_variant_named_like_a_study_file(tmp_path, name):
    out = tmp_path / "out"
    config = fake_study_config(out, seeds=(1,), variants={"base": {}, name: {}})
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    before = snapshot(tmp_path)
    for args in (("launch", str(path)), ("validate", str(path), "--fast")):
        said = _one_line_exit_2(fake_xorch(*args, cwd=tmp_path))
        assert f"experiments_runner.variants.{name}:" in said and "rename the variant" in said
    assert snapshot(tmp_path) == before and not out.exists()


@pytest.fixture
def study(tmp_path) -> Path:
    root = tmp_path / "my study"
    saved_variant_study(root, {"base": [0.5, 0.4], "wide": [0.3, 0.2]}, (1, 2), with_logs=False)
    (tmp_path / "study.yaml").write_text("model: {}\n")
    (tmp_path / "notes.html").write_text("<p>mine</p>\n")
    return root


@pytest.mark.parametrize(
    ("out", "force", "said"),
    [
        ("my study/runner_state.json", False, "the study's own runner_state.json"),
        ("my study/runner_state.json", True, "the study's own runner_state.json"),
        ("my study/summary.csv", True, "the study's own summary.csv"),
        ("study.yaml", True, "ending in .html"),
        ("notes.html", False, "exists and was not written by xorch"),
        ("my study", False, "is a folder"),
    ],
)
def test_report_out_never_writes_over_what_it_did_not_write(tmp_path, study, out, force, said):
    before = snapshot(tmp_path)
    args = ["report", str(study), "--out", str(tmp_path / out), *(["--force"] * force)]
    assert said in _one_line_exit_2(fake_xorch(*args, cwd=tmp_path))
    assert snapshot(tmp_path) == before


def test_report_rewrites_its_own_page_and_replaces_a_foreign_one_only_with_force(tmp_path, study):
    page = tmp_path / "notes.html"
    forced = fake_xorch("report", str(study), "--out", str(page), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "<title>xorch report: my study</title>" in page.read_text()
    again = fake_xorch("report", str(study), "--out", str(page), cwd=tmp_path)  # its own page
    assert again.returncode == 0, again.stderr
    default = fake_xorch("report", str(study), cwd=tmp_path)
    assert default.returncode == 0 and (study / "report.html").is_file()
