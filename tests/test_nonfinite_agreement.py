"""One study of two variants whose second diverges on two seeds (one nan, one
inf): summary.csv, ``xorch summary``, ``xorch compare``, comparison.csv,
``xorch power`` and the report say the same numbers, all over the finite
seeds, and all count the seeds left out (the seed table's one rule)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from orchestrator.tables import human_cell
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import xorch

SEEDS = (1, 2, 3, 4, 5, 6)
DIVERGED = {"3": "nan", "5": "inf"}


def loss(seed: int, offset: float, spread: float = 0.2) -> float:
    """What the fake worker logs (tests/fake_worker.py): seed + 0.5 + offset + spread."""
    return seed + 0.5 + offset + spread * ((seed * 7919) % 13) / 13


def wild(seed: int) -> float:
    return loss(seed, 0.3, 0.5)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("nonfinite")
    out = workdir / "out"
    acts = {s: {"*": {"do": "complete", "metrics": {"val/loss": v}}} for s, v in DIVERGED.items()}
    variants = {
        "base": {},
        "wild": {
            "model.init_args.offset": 0.3,
            "model.init_args.spread": 0.5,
            "model.init_args.acts": acts,
        },
    }
    config = fake_study_config(out, seeds=SEEDS, variants=variants, goal={"val/loss": "min"})
    config["model"]["init_args"]["spread"] = 0.2
    path = workdir / "study.yaml"
    path.write_text(json.dumps(config))
    result = fake_xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def finite_wild() -> list[float]:
    return [wild(s) for s in SEEDS if str(s) not in DIVERGED]


def base() -> list[float]:
    return [loss(s, 0.0) for s in SEEDS]


def test_summary_csv_and_xorch_summary_agree_over_the_finite_seeds(study: Path) -> None:
    rows = list(csv.DictReader((study / "summary.csv").open()))
    mean_row = next(r for r in rows if r["run"] == "mean" and r["variant"] == "wild")
    std_row = next(r for r in rows if r["run"] == "std" and r["variant"] == "wild")
    expected_mean = float(np.mean(finite_wild()))
    expected_std = float(np.std(finite_wild(), ddof=1))
    assert float(mean_row["val/loss"]) == pytest.approx(expected_mean, abs=5e-7)
    assert float(std_row["val/loss"]) == pytest.approx(expected_std, abs=5e-7)
    said = xorch("summary", str(study), "--format", "json", "-m", "val/loss")
    assert said.returncode == 0, said.stderr
    (wild,) = [r for r in json.loads(said.stdout) if r["variant"] == "wild"]
    assert (wild["n"], wild["not_finite"]) == (4, 2)
    assert wild["mean"] == pytest.approx(expected_mean, rel=1e-12)
    assert wild["std"] == pytest.approx(expected_std, rel=1e-12)


def test_compare_and_comparison_csv_pair_only_the_finite_seeds(study: Path) -> None:
    said = xorch("compare", str(study), "--format", "json", "-m", "val/loss")
    assert said.returncode == 0, said.stderr
    (row,) = [r for r in json.loads(said.stdout) if r["group"] == "wild"]
    kept = [s for s in SEEDS if str(s) not in DIVERGED]
    t = stats.ttest_rel([wild(s) for s in kept], [loss(s, 0.0) for s in kept])
    assert (row["n"], row["not_finite"]) == (4, 2)
    assert row["mean"] == pytest.approx(float(np.mean(finite_wild())), rel=1e-12)
    assert row["p"] == pytest.approx(float(t.pvalue), rel=1e-9)
    assert row["better"] == "diverges"  # 2 of 6 seeds diverged, none of the reference's
    assert "2 pair(s) dropped, a side not finite: seed 3, 5" in row["note"]
    written = list(csv.DictReader((study / "comparison.csv").open()))
    (same,) = [r for r in written if r["group"] == "wild" and r["metric"] == "val/loss"]
    assert float(same["mean"]) == pytest.approx(row["mean"], rel=1e-12)
    assert float(same["p"]) == pytest.approx(row["p"], rel=1e-12)
    assert same["better"] == "diverges" and int(same["n"]) == 4


def test_power_works_from_the_finite_pairs_and_names_the_rest(study: Path) -> None:
    said = xorch("power", str(study), "--format", "json", "-m", "val/loss", "--effect", "0.1")
    assert said.returncode == 0, said.stderr
    (row,) = json.loads(said.stdout)
    kept = [s for s in SEEDS if str(s) not in DIVERGED]
    diffs = [wild(s) - loss(s, 0.0) for s in kept]
    assert row["n"] == 4
    assert row["std"] == pytest.approx(float(np.std(diffs, ddof=1)), rel=1e-9)
    assert "2 pair(s) dropped, a side not finite: seed 3, 5" in row["note"]
    assert math.isfinite(row["detectable"])


def test_the_report_shows_the_same_n_and_mean(study: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    said = xorch("report", str(study), "--out", str(page))
    assert said.returncode == 0, said.stderr
    html = page.read_text()
    mean = human_cell(float(np.mean(finite_wild())))
    # the variant's row of the statistics table: variant, n, mean, then the note
    row = f"<td>wild</td><td class=num>4</td><td class=num>{mean}</td>"
    assert row in html, html[html.find("<td>wild</td>") :][:300]
    assert "2 runs not finite: 1 nan, 1 inf, left out" in html
