"""The README's examples under conf/examples run as written (one seed each, to
stay quick; the seed-style UNet shrunk as the README shows for a CPU), so the
files the README points at cannot rot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import ROOT, read_state, xorch

pytestmark = pytest.mark.lightning  # the README's examples, trained for real

SHRUNK_UNET = (
    "hyperparameters.epochs=2",
    "backbone.input_width=64",
    "data.init_args.train_size=32",
    "data.init_args.val_size=16",
    "test_dataset.size=16",
)


@pytest.mark.parametrize(
    ("example", "overrides"),
    [
        ("experiments_runner.yaml", SHRUNK_UNET),
        ("hydra_style/train.yaml", ("trainer.max_epochs=2",)),
        ("command/plain_torch.yaml", ()),
        ("command/metrics_json.yaml", ()),
        ("command/lightning_csv.yaml", ()),
    ],
)  # fmt: skip
def test_an_example_runs_as_the_readme_shows(tmp_path, example, overrides):
    config = ROOT / "conf" / "examples" / example
    wanted = yaml.safe_load(config.read_text())["experiments_runner"]["summary_metrics"]
    out = tmp_path / "out"
    args = [*overrides, "experiments_runner.seeds=[5]", f"experiments_runner.output_base_dir={out}"]
    result = xorch("launch", str(Path("conf") / "examples" / example), *args, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["status"] for r in read_state(out)["runs"]] == ["completed"]
    summary = pd.read_csv(out / "summary.csv", dtype={"run": str})
    assert summary.loc[0, wanted].notna().all(), summary
