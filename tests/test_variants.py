"""Variants in one study: several training configs on the same seeds, compared paired by seed."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.commands.compare import compare_variants, comparison_csv, render_comparison
from orchestrator.config import load_study
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import ConfigError, StateError, XorchError
from orchestrator.state import RunRecord, RunStatus, StudyState
from orchestrator.state_store import load_state, state_to_json
from orchestrator.study import plan_ledger
from orchestrator.summary import summary_text
from orchestrator.tables import human_cell
from tests.fake_worker import PROGRESS_FILE
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import (
    ended_attempts,
    read_state,
    running_attempt,
    saved_variant_study,
    tiny_config,
    wait_for,
    xorch,
)

VARIANTS = {
    "baseline": {},
    "wide": {"model.init_args.hidden": 32},
    "tiny_lr": {"model.init_args.lr": 1.0e-5},  # far too small: it barely learns
}


def variant_config(out: Path, seeds=(0, 1), variants=VARIANTS, **runner) -> dict:
    # A copy: a test that adds a variant must not change VARIANTS for the others.
    return tiny_config(out, seeds=seeds, variants=json.loads(json.dumps(variants)), **runner)


# --------------------------------------------------------------------------- config


def test_each_variant_is_the_base_config_with_its_changes(workdir, write_config):
    spec = load_study(write_config(variant_config(workdir / "out", goal={"val/loss": "min"})))
    assert list(spec.variants) == ["baseline", "wide", "tiny_lr"]
    assert spec.variants["baseline"] == spec.training
    assert spec.variants["wide"]["model"]["init_args"]["hidden"] == 32
    assert spec.variants["tiny_lr"]["model"]["init_args"]["lr"] == 1.0e-5
    assert spec.training["model"]["init_args"]["lr"] == 0.05  # the base is untouched
    assert spec.runner.compare_to == "baseline"  # the first by default
    assert spec.runner.goal == {"val/loss": "min"}


def test_a_config_without_variants_is_one_config_as_before(workdir, write_config):
    spec = load_study(write_config(tiny_config(workdir / "out")))
    assert spec.variants == {} and spec.runner.compare_to is None
    assert spec.training_for(None) is spec.training


@pytest.mark.parametrize(
    ("runner", "expected"),
    [
        ({"variants": {"../up": {}}}, "experiments_runner.variants: '../up' is not a usable"),
        ({"variants": {"a b": {}}}, "is not a usable variant name"),
        ({"variants": []}, "experiments_runner.variants must be a mapping"),
        ({"variants": {"a": 3}}, "experiments_runner.variants.a must be a mapping"),
        ({"variants": {"a": {"seed": 3}}}, "experiments_runner.variants.a.seed: a variant"),
        ({"variants": {"a": {}}, "compare_to": "b"}, "compare_to is 'b', which is not a variant"),
        ({"compare_to": "a"}, "compare_to is 'a', which is not a variant"),
        ({"goal": {"val/loss": "lower"}}, "experiments_runner.goal.val/loss: 'lower' is not"),
        ({"goal": ["val/loss"]}, "experiments_runner.goal must be a mapping"),
        (
            {"variants": {"a": {"model.init_args.lr.x": 1}}},
            "experiments_runner.variants.a.model.init_args.lr.x: model.init_args.lr is a float",
        ),
        (
            {"variants": {"a": {"model.class_path": 5}}},
            "experiments_runner.variants.a: model",
        ),
    ],
)
def test_bad_variants_name_the_key(workdir, write_config, runner, expected):
    with pytest.raises(ConfigError) as caught:
        load_study(write_config(tiny_config(workdir / "out", **runner)))
    assert expected in str(caught.value)


def test_a_bad_variant_exits_2_with_one_line_and_touches_nothing(workdir, write_config):
    out = workdir / "out"
    path = write_config(variant_config(out, variants={"ok": {}, "a/b": {}}))
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "experiments_runner.variants" in result.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- plan and state


def plan(write_config, config: dict, resume: bool = False):
    spec = load_study(write_config(config))
    return plan_ledger(spec, StudyPaths(spec.output_dir), resume).state


def test_runs_interleave_variants_seed_by_seed(workdir, write_config):
    state = plan(write_config, variant_config(workdir / "out", seeds=(42, 7)))
    assert [(r.index, r.variant, r.seed, r.dir) for r in state.runs] == [
        (0, "baseline", 42, "baseline/run_00_seed42"),
        (1, "wide", 42, "wide/run_00_seed42"),
        (2, "tiny_lr", 42, "tiny_lr/run_00_seed42"),
        (3, "baseline", 7, "baseline/run_01_seed7"),
        (4, "wide", 7, "wide/run_01_seed7"),
        (5, "tiny_lr", 7, "tiny_lr/run_01_seed7"),
    ]
    saved = load_state(StudyPaths(workdir / "out"))
    assert saved == state
    assert list(saved.variant_configs) == list(VARIANTS)
    assert saved.compare_to == "baseline"


def test_a_single_config_state_file_has_no_variant_keys(workdir, write_config):
    state = plan(write_config, tiny_config(workdir / "out", seeds=(1, 2)))
    payload = json.loads(state_to_json(state))
    assert not {"variant_configs", "compare_to", "goal"} & set(payload)
    assert all("variant" not in run for run in payload["runs"])
    assert [r.variant for r in state.runs] == [None, None]


def test_resume_adds_variants_and_seeds_and_refuses_a_changed_variant(workdir, write_config):
    out = workdir / "out"
    plan(write_config, variant_config(out, seeds=(42, 7)))
    more = {**VARIANTS, "narrow": {"model.init_args.hidden": 8}}
    state = plan(write_config, variant_config(out, seeds=(42, 7, 5), variants=more), True)
    added = [(r.index, r.variant, r.seed) for r in state.runs[6:]]
    assert added == [
        (6, "narrow", 42),
        (7, "narrow", 7),
        (8, "baseline", 5),
        (9, "wide", 5),
        (10, "tiny_lr", 5),
        (11, "narrow", 5),
    ]
    changed = {**more, "wide": {"model.init_args.hidden": 64}}
    with pytest.raises(StateError, match=r"variant wide: .*model\.init_args\.hidden"):
        plan(write_config, variant_config(out, seeds=(42, 7, 5), variants=changed), True)
    with pytest.raises(StateError, match="variant narrow is in the study but not in the config"):
        plan(write_config, variant_config(out, seeds=(42, 7, 5)), True)
    with pytest.raises(StateError, match="do not start with the study's"):
        plan(write_config, variant_config(out, seeds=(7, 42, 5), variants=more), True)
    with pytest.raises(StateError, match="this study has variants"):
        plan(write_config, tiny_config(out, seeds=(42, 7, 5)), True)


def test_variants_cannot_be_added_to_a_study_of_one_config(workdir, write_config):
    out = workdir / "out"
    plan(write_config, tiny_config(out, seeds=(42, 7)))
    with pytest.raises(StateError, match="started without variants"):
        plan(write_config, variant_config(out, seeds=(42, 7)), True)


# ---------------------------------------------------------------- a study of fake workers

# Variants of a fake study (tests/fake_worker.py): val/loss is seed + 0.5 + offset +
# spread x a fixed fraction per seed, val/acc is seed / 100 + acc_offset. tiny_lr
# stands for a learning rate far too small: a higher loss and a lower accuracy on
# every seed, by an amount that varies from seed to seed; its runs train longer
# (1 s), so the study can be killed while one of them trains.
FAKE_VARIANTS = {
    "baseline": {},
    "wide": {"model.init_args.spread": 0.12},
    "tiny_lr": {
        "model.init_args.offset": 1.0,
        "model.init_args.spread": 0.3,
        "model.init_args.acc_offset": -0.05,
        "model.init_args.steps": 10,
    },
}


def test_a_variant_study_killed_and_resumed_finds_the_bad_variant(workdir, write_config):
    """3 variants x 4 seeds of fake workers, one worse on both metrics: killed once,
    resumed; the comparison finds the bad one, the right way round, and summary.csv,
    comparison.csv, the LaTeX table and the report agree on every mean."""
    out = workdir / "out"
    seeds = (10, 11, 12, 13)
    config = fake_study_config(
        out,
        seeds=seeds,
        variants=json.loads(json.dumps(FAKE_VARIANTS)),
        goal={"val/loss": "min"},
    )
    config["model"]["init_args"]["spread"] = 0.1
    path = write_config(config)

    parent = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:
        # Run 2 is tiny_lr's first: kill the parent while it trains, before any of
        # tiny_lr's runs completed.
        run2 = out / "tiny_lr" / f"run_00_seed{seeds[0]}"
        wait_for(
            lambda: (run2 / PROGRESS_FILE).exists() and running_attempt(out, 2) is not None,
            what="run 2",
        )
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    before = read_state(out)
    done = [r["index"] for r in before["runs"] if r["status"] == "completed"]
    assert len(done) < 12  # it was stopped mid-study

    # The report of the stopped study shows what exists so far, per variant.
    partial = xorch("report", str(out), cwd=workdir)
    assert partial.returncode == 0, partial.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "12 runs planned: 3 variants on 4 seeds, compared to <b>baseline</b>" in page
    assert "<td>tiny_lr</td><td class=num>4</td><td class=num>0</td>" in page  # none done
    assert not list(out.glob(".report.html*"))  # written atomically: no temp file left

    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * 12
    for index in done:  # nothing that had completed was trained again
        assert len(state["runs"][index]["attempts"]) == 1
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/run_*")) == sorted(
        f"{v}/run_{i:02d}_seed{s}" for v in FAKE_VARIANTS for i, s in enumerate(seeds)
    )

    # summary.csv: per variant its rows, then its mean and std rows.
    summary = pd.read_csv(out / "summary.csv", dtype={"run": str})
    assert list(summary.columns[:4]) == ["run", "variant", "seed", "duration_s"]
    assert list(summary["variant"]) == [v for v in FAKE_VARIANTS for _ in range(6)]
    expected_runs = []  # per variant k: runs k, k+3, k+6, k+9 (seed by seed), mean, std
    for k in range(3):
        expected_runs += [str(3 * i + k) for i in range(4)] + ["mean", "std"]
    assert list(summary["run"]) == expected_runs

    # comparison.csv is `xorch compare STUDY --format csv`, and finds tiny_lr worse.
    comparison = (out / "comparison.csv").read_text(encoding="utf-8")
    shown = xorch("compare", str(out), "--format", "csv", cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == comparison
    table = pd.read_csv(io.StringIO(comparison))
    loss = table[table["metric"] == "val/loss"].set_index("group")
    assert list(loss.index) == list(FAKE_VARIANTS)
    bad = loss.loc["tiny_lr"]
    assert bad["vs"] == "baseline" and bad["test"] == "paired t" and bad["n_pairs"] == 4
    assert bad["diff"] > 0 and bad["better"] == "no"  # higher loss, and lower is better
    assert bad["diff_ci_low"] > 0  # the whole interval: worse on these seeds, not by luck
    acc = table[table["metric"] == "val/acc"].set_index("group")
    assert acc.loc["tiny_lr", "diff"] < 0  # and a lower accuracy
    # The closing lines end with that comparison, in words, one line per variant.
    closing = next(x for x in result.stdout.splitlines() if "tiny_lr vs baseline, val/loss:" in x)
    low, high = bad["diff_ci_low"], bad["diff_ci_high"]
    assert f"diff {bad['diff']:+.3g} [{low:+.3g}, {high:+.3g}]" in closing, closing
    if bad["p_holm"] < 0.05:
        assert closing.endswith(f"Holm p {bad['p_holm']:.3g}: worse (lower is better)"), closing
    else:
        assert "no significant difference (its mean is worse)" in closing, closing
    assert any("wide vs baseline, val/loss: diff" in x for x in result.stdout.splitlines())

    # Every output agrees on each variant's mean: summary.csv (6 decimals, half a unit of
    # the last one apart at most: 0.2890625 is written 0.289062), comparison.csv
    # (full precision), the LaTeX table (rounded to its column's decimals), the report.
    summary_means = summary[summary["run"] == "mean"].set_index("variant")
    latex = xorch("compare", str(out), "-m", "val/loss", "-m", "val/acc", "-f", "latex").stdout
    latex_rows = {line.split(" & ")[0]: line.split(" & ")[1:] for line in latex.splitlines()
                  if " & " in line and "$" not in line.split(" & ")[0]}  # fmt: skip
    page = xorch("report", str(out), cwd=workdir)
    assert page.returncode == 0, page.stderr
    report = (out / "report.html").read_text(encoding="utf-8").replace(" class=num", "")
    for column, metric in enumerate(("val/loss", "val/acc")):
        rows = table[table["metric"] == metric].set_index("group")
        for variant in FAKE_VARIANTS:
            mean = float(rows.loc[variant, "mean"])
            assert mean == pytest.approx(summary_means.loc[variant, metric], abs=5.01e-7)
            cell = latex_rows[variant.replace("_", r"\_")][column]
            printed = re.search(r"([0-9.]+)", cell.replace(r"\textbf{", ""))
            assert printed is not None
            decimals = len(printed.group(1).split(".")[1])
            assert float(printed.group(1)) == pytest.approx(mean, abs=0.51 * 10**-decimals)
            stats_row = f"<td>{metric}</td><td>{variant}</td><td>4</td><td>{human_cell(mean)}</td>"
            assert stats_row in report, (metric, variant)
    assert r"$^{\dagger}$" in latex_rows[r"tiny\_lr"][0]  # significant after Holm
    assert "<td>val/loss</td><td>tiny_lr</td><td>baseline</td><td>4</td>" in report

    # A resume that adds a variant trains only that variant's runs.
    attempts = [len(r["attempts"]) for r in state["runs"]]
    config["experiments_runner"]["variants"]["narrow"] = {"model.init_args.offset": 0.3}
    write_config(config)
    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    after = read_state(out)
    assert [len(r["attempts"]) for r in after["runs"][:12]] == attempts
    assert [(r["variant"], r["status"]) for r in after["runs"][12:]] == [
        ("narrow", "completed")
    ] * 4
    table = pd.read_csv(out / "comparison.csv")
    assert sorted(set(table["group"])) == sorted([*FAKE_VARIANTS, "narrow"])
    assert after["goal"] == {"val/loss": "min"}


def test_validate_shows_the_variants_and_their_runs(workdir, write_config):
    path = write_config(variant_config(workdir / "out", seeds=(42, 7)))
    # --fast: the plan is the subject here, not the build check (a torch import in
    # a child, which builds the base config only; test_config_errors checks it).
    result = xorch("validate", str(path), "--fast", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "not built (--fast)" in result.stdout
    assert "3 variants on the same seeds, compared to baseline:" in result.stdout
    assert "  tiny_lr: model.init_args.lr=1e-05" in result.stdout
    assert "  run 4: seed 7 -> wide/run_01_seed7" in result.stdout
    assert "6 runs" in result.stdout
    assert not (workdir / "out").exists()


# --------------------------------------------------------------------------- summary and compare


def finished_state(values: dict[str, list[float]], seeds=(1, 2, 3)) -> StudyState:
    """A finished study of variants: ``values[variant][i]`` is val/loss on seed i."""
    runs = []
    for position, seed in enumerate(seeds):
        for variant, losses in values.items():
            runs.append(RunRecord(
                index=len(runs), seed=seed, dir=f"{variant}/run_{position:02d}_seed{seed}",
                status=RunStatus.COMPLETED, attempts=ended_attempts(1.0), variant=variant,
                metrics={"val/loss": losses[position]},
            ))  # fmt: skip
    return StudyState(
        config_fingerprint="", training_config={}, seeds=tuple(seeds), runs=tuple(runs),
        variant_configs={v: {} for v in values}, compare_to=next(iter(values)),
        goal={"val/loss": "min"},
    )  # fmt: skip


def test_summary_has_a_block_per_variant_and_comparison_csv_is_the_compare_output():
    state = finished_state({"base": [1.0, 2.0, 3.0], "worse": [1.5, 2.4, 3.6]})
    assert summary_text(state.completed, state.variant_configs) == (
        "run,variant,seed,duration_s,val/loss\n"
        "0,base,1,1.00,1.000000\n2,base,2,1.00,2.000000\n4,base,3,1.00,3.000000\n"
        "mean,base,-,1.00,2.000000\nstd,base,-,0.00,1.000000\n"
        "1,worse,1,1.00,1.500000\n3,worse,2,1.00,2.400000\n5,worse,3,1.00,3.600000\n"
        "mean,worse,-,1.00,2.500000\nstd,worse,-,0.00,1.053565\n"
    )
    table = compare_variants(state)
    row = table.contrast_of("worse", "val/loss")
    assert row is not None and row.paired and row.n == 3
    assert row.diff == pytest.approx(0.5) and row.better == "no"
    assert comparison_csv(state) == render_comparison(table, "csv")


def test_compare_of_a_study_without_variants_says_how_to_compare_studies():
    state = finished_state({"only": [1.0, 2.0, 3.0]})
    plain = StudyState(
        config_fingerprint="", training_config={}, seeds=state.seeds,
        runs=tuple(dataclasses.replace(r, variant=None) for r in state.runs),
    )  # fmt: skip
    with pytest.raises(XorchError, match="xorch compare A B"):
        compare_variants(plain)
    assert comparison_csv(plain) is None
    assert summary_text(plain.completed).startswith("run,seed,duration_s,val/loss\n0,1,")


# --------------------------------------------------------------------------- status, summary, power


def test_summary_and_status_are_per_variant_in_every_format(tmp_path):
    inf = float("inf")
    values = {"base": [0.5, 0.6, 0.7, 0.65], "worse": [0.9, 1.0, 1.2, None],
              "diverged": [0.5, inf, 0.6, 0.55]}  # fmt: skip
    root = tmp_path / "variants study"
    state = saved_variant_study(root, values, seeds=(1, 2, 3, 4), with_logs=False)
    csv_means = pd.read_csv(io.StringIO(summary_text(state.completed, state.variant_configs)),
                            dtype={"run": str})  # fmt: skip
    csv_means = csv_means[csv_means["run"] == "mean"].set_index("variant")

    result = xorch("summary", str(root), "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["metric"], r["variant"]) for r in rows] == [
        (m, v) for m in ("val/acc", "val/loss") for v in values
    ]
    for row in rows:  # each variant over its own finite values, as summary.csv's blocks
        sample = [x for x in values[row["variant"]] if x is not None and x != inf]
        if row["metric"] == "val/acc":
            sample = [1.0 - x for x in sample]
        assert row["n"] == len(sample)
        assert row["mean"] == pytest.approx(float(np.mean(sample)), abs=1e-12)
        assert row["std"] == pytest.approx(float(np.std(sample, ddof=1)), abs=1e-12)
        assert row["mean"] == pytest.approx(csv_means.loc[row["variant"], row["metric"]], abs=1e-6)
    assert rows[-1]["not_finite"] == 1 and rows[-2]["not_finite"] == 0

    table = xorch("summary", str(root), "-m", "val/loss").stdout
    assert table.splitlines()[0].split()[:4] == ["metric", "variant", "n", "mean"]
    assert "val/loss (diverged): 1 run not finite: inf; left out" in table
    markdown = xorch("summary", str(root), "-m", "val/loss", "-f", "markdown").stdout
    assert "| val/loss | worse | 3 | 1.03333 |" in markdown
    latex = xorch("summary", str(root), "-m", "val/loss", "-f", "latex").stdout
    assert "val/loss & worse & 3 & 1.03333" in latex
    csv = pd.read_csv(io.StringIO(xorch("summary", str(root), "-f", "csv").stdout))
    assert list(csv.columns[:3]) == ["metric", "variant", "n"] and len(csv) == 6

    status = xorch("status", str(root))
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[1:4] == ["  base: 4/4 completed", "  worse: 3/4 completed, 1 pending",
                          "  diverged: 4/4 completed"]  # fmt: skip
    assert lines[4].split()[:3] == ["run", "variant", "seed"]
    assert lines[5].split()[:4] == ["0", "base", "1", "completed"]
    assert "val/loss (diverged): 1 run not finite: inf (left out of the mean)" in status.stdout
    payload = json.loads(xorch("status", str(root), "--json").stdout)
    assert [r["variant"] for r in payload["rows"][:3]] == list(values)
    assert payload["variants"]["worse"] == {"total": 4, "counts": {"completed": 3, "pending": 1}}
