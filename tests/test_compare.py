"""``xorch compare``: paired statistics when the studies share seeds, every format carries the
same numbers, the LaTeX table marks the best and the significant, and two launched studies
(of fake workers; one worse on both metrics, as a learning rate far too small is) are told
apart in the right direction."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from orchestrator.commands.compare import COMPARE_COLUMNS, build_comparison, render_comparison
from orchestrator.inference import Goal
from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import xorch

TOL = 1e-10
SEEDS = (42, 101, 28, 7)


def close(x: float, y: float) -> bool:
    return abs(x - y) <= TOL * max(1.0, abs(y))


def fixed_groups():
    """Three groups on the same seeds: one clearly worse, one with a diverged seed."""
    return {
        "baseline": {"val/loss": dict(zip(SEEDS, [0.40, 0.42, 0.41, 0.43], strict=True)),
                     "val/F1_score%": dict(zip(SEEDS, [0.80, 0.82, 0.81, 0.80], strict=True))},
        "tiny_lr": {"val/loss": dict(zip(SEEDS, [0.90, 0.95, 0.93, 0.99], strict=True)),
                    "val/F1_score%": dict(zip(SEEDS, [0.51, 0.50, 0.55, 0.52], strict=True))},
        "diverged": {"val/loss": dict(zip(SEEDS, [0.41, math.nan, 0.40, 0.44], strict=True)),
                     "val/F1_score%": dict(zip(SEEDS, [0.81, 0.83, 0.80, 0.81], strict=True))},
    }  # fmt: skip


def parse_latex(text: str) -> dict[str, list[tuple[str, bool, bool]]]:
    """group -> per metric: (cell text without markup and without the difference
    in parentheses, bold, dagger); ``latex_differences`` has the differences."""
    rows = {}
    body = text.split(r"\hline")[2]  # between the header's rule and the closing rule
    for line in body.strip().splitlines():
        name, *cells = (c.strip() for c in line.removesuffix(r"\\").split("&"))
        parsed = []
        for cell in cells:
            bold, dagger = r"\textbf{" in cell, r"$^{\dagger}$" in cell
            plain = re.sub(r"\\textbf\{([^}]*)\}", r"\1", cell).replace(r"$^{\dagger}$", "")
            plain = re.sub(r" \([^)]*\)$", "", plain)
            parsed.append((plain.replace(r"$\pm$", "±"), bold, dagger))
        rows[name.replace(r"\_", "_")] = parsed
    return rows


def latex_differences(text: str) -> dict[str, list[str]]:
    """group -> per metric: the ``(diff [low, high])`` of the cell ("" for none)."""
    body = text.split(r"\hline")[2]
    out = {}
    for line in body.strip().splitlines():
        name, *cells = (c.strip() for c in line.removesuffix(r"\\").split("&"))
        out[name.replace(r"\_", "_")] = [
            (m.group(0) if (m := re.search(r"\([^)]*\)$", cell)) else "") for cell in cells
        ]
    return out


def machine_rows(text: str, fmt: str) -> list[dict[str, object]]:
    if fmt == "json":
        return json.loads(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    converted = []
    for row in rows:
        out: dict[str, object] = {}
        for key, cell in row.items():
            if cell == "":
                out[key] = None
            elif key in ("n", "n_pairs"):
                out[key] = int(cell)
            else:
                try:
                    out[key] = float(cell)
                except ValueError:
                    out[key] = cell
        converted.append(out)
    return converted


TEXT_COLUMNS = ("note", "vs", "test", "better", "boot_method", "goal", "group", "metric", "g_kind",
                "seeds")  # fmt: skip


def assert_same_rows(from_csv, from_json) -> None:
    """CSV and JSON rows hold the same cells; text cells may be empty ("") or null (None)."""
    assert len(from_csv) == len(from_json)
    for a, b in zip(from_csv, from_json, strict=True):
        assert list(b) == list(COMPARE_COLUMNS)
        for key in COMPARE_COLUMNS:
            if key in TEXT_COLUMNS:
                assert (a[key] or "") == (b[key] or ""), key
            else:
                assert a[key] == b[key], key  # floats read back exactly


def test_csv_and_json_carry_the_same_full_precision_numbers():
    table = build_comparison(fixed_groups(), "baseline", ["val/loss", "val/F1_score%"])
    from_csv = machine_rows(render_comparison(table, "csv"), "csv")
    from_json = machine_rows(render_comparison(table, "json"), "json")
    assert len(from_csv) == len(from_json) == 6
    assert_same_rows(from_csv, from_json)
    loss_tiny = next(r for r in from_json if r["group"] == "tiny_lr" and r["metric"] == "val/loss")
    t = sps.ttest_rel([0.90, 0.95, 0.93, 0.99], [0.40, 0.42, 0.41, 0.43])
    assert loss_tiny["test"] == "paired t" and loss_tiny["n_pairs"] == 4
    assert close(loss_tiny["p"], t.pvalue) and loss_tiny["better"] == "no"
    assert loss_tiny["goal"] == "min" and loss_tiny["p_improve"] == 0.0
    # The seed table's rule: seed 101's nan is left out, with its baseline partner.
    diverged = next(r for r in from_json if r["group"] == "diverged" and r["metric"] == "val/loss")
    t = sps.ttest_rel([0.41, 0.40, 0.44], [0.40, 0.41, 0.43])
    assert (diverged["n"], diverged["not_finite"], diverged["n_pairs"]) == (3, 1, 3)
    assert close(diverged["mean"], (0.41 + 0.40 + 0.44) / 3) and close(diverged["p"], t.pvalue)
    assert diverged["better"] == "diverges"
    assert "1 pair(s) dropped, a side not finite: seed 101" in diverged["note"]
    assert "diverged on 1 of 4 seeds (reference: 0 of 4)" in diverged["note"]
    text = render_comparison(table, "table")
    assert "diverges" in text and "paired t" in text


def test_latex_table_marks_the_best_and_the_significant():
    table = build_comparison(fixed_groups(), "baseline", ["val/loss", "val/F1_score%"])
    latex = render_comparison(table, "latex")
    assert latex.startswith(r"\begin{table}") and latex.rstrip().endswith(r"\end{table}")
    assert r"val/F1\_score\% $\uparrow$" in latex and r"val/loss $\downarrow$" in latex
    assert "Holm-corrected over 4 tests" in latex and "paired t-test" in latex
    rows = parse_latex(latex)
    assert list(rows) == ["baseline", "tiny_lr", "diverged"]
    # Bold: the lowest loss (baseline) and the highest F1 (diverged, whose loss is
    # over its 3 finite seeds and marked with a double dagger).
    assert [bold for _, bold, _ in rows["baseline"]] == [True, False]
    assert [bold for _, bold, _ in rows["diverged"]] == [False, True]
    assert rows["diverged"][0][0].startswith("0.417") and r"$^{\ddagger}$" in latex
    assert "some seeds diverged" in latex
    # The dagger follows the Holm-corrected t-test p-value.
    for group in ("tiny_lr", "diverged"):
        for metric, (_, _, dagger) in zip(table.metrics, rows[group], strict=True):
            c = table.contrast_of(group, metric)
            assert dagger == (c is not None and c.p_holm < 0.05), (group, metric)
    assert rows["tiny_lr"][0][2] and not rows["baseline"][0][2]
    # mean ± half-width, two significant digits of the narrowest half-width in the column.
    s = table.described[("tiny_lr", "val/loss")].summary
    assert rows["tiny_lr"][0][0] == f"{s.mean:.3f} ± {s.ci_high - s.mean:.3f}"
    # and the difference from the reference with the test's interval, in parentheses
    c = table.contrast_of("tiny_lr", "val/loss")
    assert c is not None
    diff = f"({c.diff:+.3f} [{c.diff_ci_low:+.3f}, {c.diff_ci_high:+.3f}])"
    assert latex_differences(latex)["tiny_lr"][0] == diff
    assert latex_differences(latex)["baseline"] == ["", ""]  # the reference has none
    assert "In parentheses: the difference from baseline" in latex


def test_goal_option_flips_the_bold_and_the_direction():
    goals = {"val/loss": Goal.MAX}
    table = build_comparison(fixed_groups(), "baseline", ["val/loss"], goals)
    rows = parse_latex(render_comparison(table, "latex"))
    assert rows["tiny_lr"][0][1] and not rows["baseline"][0][1]
    assert table.contrast_of("tiny_lr", "val/loss").better == "yes"


# --------------------------------------------------------------------------- two launched studies

# tests/fake_worker.py: val/loss is seed + 0.5 + offset + spread x a fixed fraction per
# seed, val/acc is seed / 100 + acc_offset. tiny_lr stands for a learning rate far too
# small: a higher loss on every seed (by 1 + up to 0.3) and a lower accuracy. Seeds
# close together, so the intervals are of the size of a real model's metrics' (the
# LaTeX cells have decimals), and not in order, so pairing goes by seed.
TINY_LR = {"offset": 1.0, "spread": 0.3, "acc_offset": -0.005}
STUDY_SEEDS = (4, 1, 3, 2)


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory) -> tuple[Path, Path]:
    """The same 4 seeds twice: a working learning rate and one far too small."""
    root = tmp_path_factory.mktemp("compare") / "two studies"
    root.mkdir()
    outs = []
    for name, changes in (("baseline", {}), ("tiny_lr", TINY_LR)):
        out = root / name
        config = fake_study_config(out, seeds=STUDY_SEEDS, summary_metrics=["val/loss", "val/acc"])
        config["model"]["init_args"].update(changes)
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        done = fake_xorch("launch", str(path), cwd=root)
        assert done.returncode == 0, done.stdout + done.stderr
        outs.append(out)
    return outs[0], outs[1]


def test_two_launched_studies_the_tiny_learning_rate_is_found_worse(two_studies):
    base, tiny = two_studies
    outputs = {}
    for fmt in ("csv", "json", "latex", "table"):
        result = xorch("compare", str(base), str(tiny), "-m", "val/loss", "-m", "val/acc",
                       "--format", fmt)  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs[fmt] = result.stdout
    rows = machine_rows(outputs["json"], "json")
    assert_same_rows(machine_rows(outputs["csv"], "csv"), rows)
    by_key = {(r["metric"], r["group"]): r for r in rows}
    loss = by_key[("val/loss", "tiny_lr")]
    acc = by_key[("val/acc", "tiny_lr")]
    # Paired by seed, and the right direction: higher loss, lower accuracy, both worse.
    assert loss["test"] == "paired t" and loss["n_pairs"] == 4 and loss["vs"] == "baseline"
    assert loss["diff"] > 0 and acc["diff"] < 0
    assert loss["better"] == "no" and acc["better"] == "no"
    assert loss["p_holm"] < 0.05 and loss["diff_ci_low"] > 0
    # The paired t-test on the runs' own values, independently.
    values = {}
    for name, folder in (("baseline", base), ("tiny_lr", tiny)):
        state = json.loads((folder / "runner_state.json").read_text())
        values[name] = {r["seed"]: r["metrics"]["val/loss"] for r in state["runs"]}
    t = sps.ttest_rel(
        [values["tiny_lr"][s] for s in STUDY_SEEDS], [values["baseline"][s] for s in STUDY_SEEDS]
    )
    assert close(loss["p"], t.pvalue)
    assert close(loss["mean"], np.mean(list(values["tiny_lr"].values())))
    # The LaTeX table says the same: baseline bold on both, tiny_lr daggered on the loss.
    latex = parse_latex(outputs["latex"])
    assert [bold for _, bold, _ in latex["baseline"]] == [True, True]
    assert latex["tiny_lr"][0][2] is True
    for i, metric in enumerate(("val/loss", "val/acc")):
        for group in ("baseline", "tiny_lr"):
            row = by_key[(metric, group)]
            mean_text, half_text = latex[group][i][0].split(" ± ")
            decimals = len(mean_text.split(".")[1])
            assert mean_text == f"{row['mean']:.{decimals}f}"
            assert half_text == f"{row['ci_high'] - row['mean']:.{decimals}f}"
    assert "paired t" in outputs["table"]


def test_unpaired_and_bad_goals_on_launched_studies(two_studies):
    base, tiny = two_studies
    welch = xorch("compare", str(base), str(tiny), "-m", "val/loss", "--unpaired", "-f", "json")
    assert welch.returncode == 0, welch.stderr
    row = json.loads(welch.stdout)[1]
    assert row["test"] == "Welch t" and row["n_pairs"] is None and row["p_wilcoxon"] is None
    bad_goals = [("val/loss=down", "METRIC=min or METRIC=max"),
                 ("val/acc=max", "--goal names val/acc, which is not compared")]  # fmt: skip
    for goal, message in bad_goals:
        bad = xorch("compare", str(base), str(tiny), "-m", "val/loss", "--goal", goal)
        assert bad.returncode == 2 and message in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    same = xorch("compare", str(base), str(base), "-m", "val/loss", "-f", "json")
    rows = json.loads(same.stdout)
    assert [r["group"] for r in rows] == ["A: baseline", "B: baseline"]
    assert rows[1]["diff"] == 0 and rows[1]["better"] == "equal" and rows[1]["p"] is None
