"""orchestrator.commands.plot on fake but realistic studies: runner_state.json written by
save_state and CSVLogger logs laid out as Lightning writes them (one row per
logging call, NaN for what that call did not log), in a folder with a space."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection

from orchestrator.commands.plot import plot_study, run_epoch_metrics, study_figures
from orchestrator.contract.paths import RunPaths, StudyPaths, run_dir_name
from orchestrator.errors import XorchError
from orchestrator.state import RunRecord, RunStatus, StudyState
from orchestrator.state_store import save_state
from tests.helpers import ROOT, ended_attempts, saved_variant_study

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPOCH_METRICS = ["train/acc", "train/loss", "val/acc", "val/loss"]
SEEDS = (42, 101, 28, 7)  # the last run fails: its log and metrics must be ignored
EPOCHS = 5


def curve(seed: int, name: str, epoch: int) -> float:
    """A made-up but plausible learning curve, different for each seed."""
    wobble = 0.02 * np.sin(seed + epoch)
    if name.endswith("loss"):
        return float(1.0 / (1 + epoch) + wobble + (0.1 if name.startswith("val") else 0.0))
    return float(0.5 + 0.08 * epoch + wobble)


def write_log(run: RunPaths, version: int, epochs: range, seed: int, steps_per_epoch: int = 3,
              stale: frozenset[int] = frozenset()) -> None:  # fmt: skip
    """A metrics.csv as CSVLogger writes it, with step-level train/loss_step and train/lr.

    Epochs in ``stale`` get values 50 too high: what must not end up in a plot.
    """
    header = ["epoch", "step", "train/acc", "train/loss", "train/loss_step", "train/lr", "val/acc",
              "val/loss"]  # fmt: skip
    lines = [",".join(header)]
    for epoch in epochs:
        for k in range(steps_per_epoch):
            step = epoch * steps_per_epoch + k
            lines.append(f"{epoch},{step},,,{0.9 - 0.01 * step},{0.1 / (1 + step)},,")
        step = (epoch + 1) * steps_per_epoch - 1
        shift = 50.0 if epoch in stale else 0.0
        val = [curve(seed, m, epoch) + shift for m in ("val/acc", "val/loss")]
        train = [curve(seed, m, epoch) + shift for m in ("train/acc", "train/loss")]
        lines.append(f"{epoch},{step},,,,,{val[0]!r},{val[1]!r}")
        lines.append(f"{epoch},{step},{train[0]!r},{train[1]!r},,,,")
    folder = run.lightning_logs / f"version_{version}"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "hparams.yaml").write_text("{}\n", encoding="utf-8")


def save_study(root: Path, records: list[RunRecord]) -> StudyPaths:
    paths = StudyPaths(root)
    root.mkdir(parents=True, exist_ok=True)
    state = StudyState(config_fingerprint="f", training_config={"model": {}},
                       seeds=tuple(r.seed for r in records), runs=tuple(records))  # fmt: skip
    save_state(paths, state)
    return paths


def final_metrics(seed: int) -> dict[str, float]:
    return {"val/loss": curve(seed, "val/loss", EPOCHS - 1), "val/acc": curve(seed, "val/acc", 4),
            "train/loss": curve(seed, "train/loss", EPOCHS - 1)}  # fmt: skip


@pytest.fixture
def study(tmp_path: Path) -> StudyPaths:
    """Three completed runs (the first one resumed once) and one failed run."""
    root = tmp_path / "my study dir" / "outputs"
    records = []
    for i, seed in enumerate(SEEDS):
        done = i < 3
        records.append(RunRecord(
            index=i, seed=seed, dir=run_dir_name(i, seed, len(SEEDS)),
            status=RunStatus.COMPLETED if done else RunStatus.FAILED,
            attempts=ended_attempts(3.0, "completed" if done else "failed"),
            metrics=final_metrics(seed) if done else {},
        ))  # fmt: skip
    paths = save_study(root, records)
    for i, record in enumerate(records):
        run = paths.run(record.dir)
        if i == 0:  # resumed: version_0 died during epoch 2, version_1 redid it
            write_log(run, 0, range(3), record.seed, stale=frozenset({2}))
            write_log(run, 1, range(2, EPOCHS), record.seed)
            write_log(run, 2, range(0), record.seed)  # a header only: changes nothing
        else:
            stale = frozenset() if i < 3 else frozenset(range(EPOCHS))
            write_log(run, 0, range(EPOCHS), record.seed, stale=stale)
    return paths


def expected_mean_std(name: str) -> tuple[np.ndarray, np.ndarray]:
    table = np.array([[curve(s, name, e) for e in range(EPOCHS)] for s in SEEDS[:3]])
    return table.mean(axis=0), table.std(axis=0, ddof=1)


# --------------------------------------------------------------------------- reading logs


def test_resumed_run_merges_its_versions_later_ones_winning(study):
    run = study.run(run_dir_name(0, SEEDS[0], len(SEEDS)))
    assert [p.parent.name for p in run.csv_metric_logs()] == ["version_0", "version_1",
                                                              "version_2"]  # fmt: skip
    frame = run_epoch_metrics(run.root)
    assert list(frame.index) == list(range(EPOCHS))
    for name in EPOCH_METRICS:
        expected = [curve(SEEDS[0], name, e) for e in range(EPOCHS)]
        assert np.allclose(frame[name].to_numpy(), expected, rtol=0, atol=1e-12), name
    # Epoch 2's stale value (+50) from version_0 was replaced by version_1's.
    assert frame.loc[2, "val/loss"] < 10


def test_a_csv_logger_of_another_name_gives_the_curves(tmp_path):
    # lightning-hydra-template's logger=csv writes csv/version_N/metrics.csv.
    run = RunPaths(tmp_path / "run 00")
    for version, value in ((0, 1.0), (1, 2.0)):
        folder = run.root / "csv" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(f"epoch,step,val/loss\n{version},1,{value}\n")
    frame = run_epoch_metrics(run.root)
    assert list(frame["val/loss"]) == [1.0, 2.0]


def test_versions_are_ordered_as_numbers_and_unreadable_logs_are_skipped(tmp_path):
    run = RunPaths(tmp_path / "run 00")
    for version, value in ((9, 1.0), (10, 2.0), (2, 0.5)):
        folder = run.lightning_logs / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(f"epoch,step,val/loss\n0,1,{value}\n")
    (run.lightning_logs / "version_11").mkdir()
    (run.lightning_logs / "version_11" / "metrics.csv").write_text("")  # cut off by a crash
    names = [p.parent.name for p in run.csv_metric_logs()]
    assert names == ["version_2", "version_9", "version_10", "version_11"]
    assert run_epoch_metrics(run.root).loc[0, "val/loss"] == 2.0  # version_10 is the latest


# --------------------------------------------------------------------------- figures


def test_plot_study_writes_two_pngs(study):
    written = plot_study(study.root)
    assert written == [study.curves_plot, study.spread_plot]
    assert study.plots == study.root / "plots"
    for path in written:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert float(image.std()) > 0  # not a blank canvas
    assert not list(study.plots.glob(".*.tmp"))


def test_curves_have_one_band_per_metric_with_the_right_numbers(study):
    figures = dict(study_figures(study.root))
    curves = figures[study.curves_plot]
    # Default: train/ and val/ metrics logged once per epoch; not train/loss_step or train/lr.
    assert [ax.get_title() for ax in curves.axes] == EPOCH_METRICS
    for ax, name in zip(curves.axes, EPOCH_METRICS, strict=True):
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 1, name
        mean, std = expected_mean_std(name)
        (mean_line,) = [line for line in ax.get_lines() if line.get_label().startswith("mean")]
        assert np.allclose(mean_line.get_xdata(), range(EPOCHS))
        assert np.allclose(mean_line.get_ydata(), mean, rtol=0, atol=1e-12)
        ys = bands[0].get_paths()[0].vertices[:, 1]
        assert np.isclose(ys.min(), (mean - std).min()) and np.isclose(ys.max(), (mean + std).max())
        assert len(ax.get_lines()) == 1 + 3  # the mean and one faint line per completed run


def test_spread_shows_every_completed_seed(study):
    spread = dict(study_figures(study.root))[study.spread_plot]
    names = ["train/loss", "val/acc", "val/loss"]
    assert [ax.get_title() for ax in spread.axes] == names
    for ax, name in zip(spread.axes, names, strict=True):
        (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
        ys = sorted(points.get_offsets()[:, 1])
        assert np.allclose(ys, sorted(final_metrics(s)[name] for s in SEEDS[:3]))


def test_named_metrics_choose_the_panels_of_both_figures(study):
    figures = dict(study_figures(study.root, ["val/loss", "train/loss_step"]))
    curve_titles = [ax.get_title() for ax in figures[study.curves_plot].axes]
    assert curve_titles == ["val/loss", "train/loss_step"]
    assert [ax.get_title() for ax in figures[study.spread_plot].axes] == ["val/loss"]
    only_curves = plot_study(study.root, ["train/acc"])  # not a final metric: no spread.png
    assert only_curves == [study.curves_plot]


def test_unknown_metric_is_an_error_naming_what_exists(study):
    with pytest.raises(XorchError, match=r"val/nope.*per-epoch: train/acc.*final: train/loss"):
        plot_study(study.root, ["val/nope"])


def test_no_study_no_completed_run_no_logs_are_clear_errors(tmp_path):
    with pytest.raises(XorchError, match="no xorch study"):
        plot_study(tmp_path / "empty dir")
    failed = save_study(tmp_path / "failed only", [RunRecord(index=0, seed=1, dir="run_00_seed1",
                                                             status=RunStatus.FAILED)])  # fmt: skip
    with pytest.raises(XorchError, match="no completed run"):
        plot_study(failed.root)
    nothing = save_study(tmp_path / "nothing", [RunRecord(
        index=0, seed=1, dir="run_00_seed1", status=RunStatus.COMPLETED, metrics={},
    )])  # fmt: skip
    with pytest.raises(XorchError, match=r"no completed run .* has a CSV log"):
        plot_study(nothing.root)
    assert not nothing.plots.exists()


def test_runs_with_final_metrics_but_no_csv_logs_get_the_spread_plot_alone(tmp_path):
    # As a command run that only wrote metrics.json leaves them.
    no_logs = save_study(tmp_path / "no logs", [RunRecord(
        index=i, seed=i, dir=f"run_0{i}_seed{i}", status=RunStatus.COMPLETED,
        metrics={"score": float(i)},
    ) for i in range(3)])  # fmt: skip
    assert plot_study(no_logs.root) == [no_logs.spread_plot]
    assert no_logs.spread_plot.stat().st_size > 0
    assert not no_logs.curves_plot.exists()


# --------------------------------------------------------------------------- no torch


def test_stats_and_plots_never_import_torch(study):
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "import orchestrator.commands.plot, orchestrator.commands.summary_cmd\n"
        "lazy = {m: m in sys.modules for m in ('scipy', 'matplotlib')}\n"
        "from orchestrator.state_store import load_state\n"
        "from orchestrator.contract.paths import StudyPaths\n"
        "root = Path(sys.argv[1])\n"
        "orchestrator.commands.plot.plot_study(root)\n"
        "orchestrator.commands.summary_cmd.study_metric_stats(load_state(StudyPaths(root)))\n"
        "print(json.dumps({'lazy': lazy, 'heavy': [m for m in ('torch', 'pytorch_lightning',"
        " 'lightning') if m in sys.modules]}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(study.root)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["lazy"] == {"scipy": False, "matplotlib": False}


# --------------------------------------------------------------------------- variants


def test_a_variants_study_gets_a_colour_per_variant_and_a_differences_plot(tmp_path):
    from matplotlib.collections import LineCollection

    from orchestrator.commands.compare import compare_variants
    from orchestrator.commands.plot import DIFFERENCES_PNG, differences_figure

    values = {"base": [0.5, 0.6, 0.55], "worse": [0.8, 0.95, 0.85], "half": [0.6, None, None]}
    root = tmp_path / "variants study"
    state = saved_variant_study(root, values, (1, 2, 3))
    paths = StudyPaths(root)
    written = plot_study(root)
    assert written == [paths.curves_plot, paths.spread_plot, paths.plots / DIFFERENCES_PNG]
    figures = dict(study_figures(root))
    loss_panel = figures[paths.curves_plot].axes[1]  # val/acc, val/loss: sorted
    assert loss_panel.get_title() == "val/loss"
    means = [line.get_label() for line in loss_panel.get_lines() if "mean" in line.get_label()]
    assert means == ["base (mean of 3)", "worse (mean of 3)", "half (mean of 1)"]
    assert len([c for c in loss_panel.collections if isinstance(c, PolyCollection)]) == 3
    spread = figures[paths.spread_plot].axes[1]
    labels = [t.get_text() for t in spread.get_xticklabels()]
    assert labels == ["base\nn=3", "worse\nn=3", "half\nn=1"]
    points = sorted(y for c in spread.collections if isinstance(c, PathCollection)
                    for y in c.get_offsets()[:, 1])  # fmt: skip
    assert np.allclose(points, sorted(x for v in values.values() for x in v if x is not None))

    figure = differences_figure(state, ["val/loss"])
    assert figure is not None
    (axes,) = figure.axes
    assert axes.get_title() == "val/loss minus base\n(lower is better)"
    worse = axes.collections[0].get_offsets()[:, 1]  # one point per seed: worse - base
    assert np.allclose(sorted(worse), sorted([0.3, 0.35, 0.3]))
    # The bar is the comparison table's paired interval of the mean difference.
    contrast = compare_variants(state, ["val/loss"]).contrast_of("worse", "val/loss")
    assert contrast is not None
    (bar,) = [c for c in axes.collections if isinstance(c, LineCollection)][:1]
    low, high = sorted(bar.get_segments()[0][:, 1])
    assert np.isclose(low, contrast.diff_ci_low) and np.isclose(high, contrast.diff_ci_high)
    assert [t.get_text() for t in axes.get_xticklabels()] == ["worse\n3 pairs", "half\n1 pair"]
