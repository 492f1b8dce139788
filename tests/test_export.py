"""``xorch export`` on studies of fake workers, into the real trackers, offline, read
back with each tracker's own reader: MLflow's ``search_runs`` on its SQLite store,
TensorBoard's EventAccumulator, W&B's offline run file (its LevelDB-style log of
protobuf records). A study with a failed run and a study of variants; every export
is done twice and must not duplicate a run."""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.commands.export import ExportTarget, export_study
from orchestrator.commands.export_study import read_export
from orchestrator.contract.paths import StudyPaths, tensorboard_event_files, wandb_offline_runs
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import ROOT, running_attempt, snapshot, wait_for

# One xdist worker runs them all, so the studies and the MLflow store (module
# fixtures, the store a few seconds of MLflow's migrations) are made once.
pytestmark = pytest.mark.xdist_group("export")

VARIANTS = {"base": {}, "shifted": {"model.init_args.offset": 0.3}}
FAILING_SEED = 2
CURVE = [4.1, 3.8, 3.5]  # seed 3's val/loss per epoch, as write_logs writes it


def write_logs(out: Path) -> None:
    """A CSVLogger log per started run: 3 epochs ending at a completed run's values,
    2 epochs for a failed one (it died in epoch 2)."""
    for record in json.loads((out / "runner_state.json").read_text())["runs"]:
        loss = record["metrics"].get("val/loss", 9.0)
        epochs = 3 if record["status"] == "completed" else 2
        rows = [f"{e},{e},{loss + 0.3 * (2 - e)}" for e in range(epochs)]
        log = out / record["dir"] / "lightning_logs" / "version_0" / "metrics.csv"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("epoch,step,val/loss\n" + "\n".join(rows) + "\n")


def launched(workdir: Path, config: dict[str, Any], code: int) -> Path:
    out = Path(config["experiments_runner"]["output_base_dir"])
    path = workdir / "study.yaml"
    path.write_text(json.dumps(config))
    result = fake_xorch("launch", str(path), cwd=workdir)
    assert result.returncode == code, result.stdout + result.stderr
    write_logs(out)
    return out


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seeds of one config; seed 2 raises (no retry), so it is failed."""
    workdir = tmp_path_factory.mktemp("export 'plain'")
    acts = {str(FAILING_SEED): {"*": {"do": "raise", "message": "boom"}}}
    config = fake_study_config(workdir / "my study", seeds=(1, 2, 3), acts=acts, max_retries=0,
                               summary_metrics=["val/loss", "val/acc"])  # fmt: skip
    return launched(workdir, config, code=1)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("export variants")
    config = fake_study_config(workdir / "var", seeds=(1, 2), variants=VARIANTS,
                               summary_metrics=["val/loss"])  # fmt: skip
    return launched(workdir, config, code=0)


def summary_rows(study: Path) -> list[dict[str, Any]]:
    """``xorch summary --format json``: the numbers the aggregate must carry."""
    result = CliRunner().invoke(app, ["summary", str(study), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def study_files(study: Path) -> dict[str, bytes]:
    """The study's own files, without the exports' default places in it."""
    paths = StudyPaths(study)
    exported = (paths.mlflow_store.name, paths.tensorboard.name, paths.wandb.name)
    return {k: v for k, v in snapshot(study).items() if k.split("/")[0] not in exported}


# --------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_store(plain: Path) -> str:
    """The plain study exported once to its default store, which creating costs a few
    seconds (MLflow's table migrations): the other MLflow tests reuse it through --uri."""
    before = study_files(plain)
    first = export_study(plain, ExportTarget.MLFLOW)
    assert (first.created, first.updated) == (4, 0)
    assert study_files(plain) == before  # read without touching the study
    assert first.where == f"sqlite:///{StudyPaths(plain).mlflow_store}"
    return first.where


def mlflow_runs(uri: str, study: Path) -> Any:
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[study.name], output_format="list")


def test_mlflow_parent_with_the_summary_and_a_child_per_run(plain: Path, mlflow_store: str) -> None:

    from mlflow.tracking import MlflowClient

    runs = mlflow_runs(mlflow_store, plain)
    parents = [r for r in runs if r.data.tags.get("xorch.kind") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 4 and len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    for row in summary_rows(plain):
        for figure in ("mean", "std", "ci_low", "ci_high", "n"):
            assert parent.data.metrics[f"{row['metric']}/{figure}"] == pytest.approx(row[figure])

    by_seed = {int(c.data.tags["xorch.seed"]): c for c in children}
    assert {s: c.info.status for s, c in by_seed.items()} == {
        1: "FINISHED", 2: "FAILED", 3: "FINISHED"}  # fmt: skip
    assert by_seed[FAILING_SEED].data.tags["xorch.status"] == "failed"
    assert by_seed[1].info.run_name == "run_00_seed1"
    assert by_seed[1].data.params["model.class_path"] == "tests.fake_worker.Script"
    assert by_seed[3].data.metrics["val/loss"] == pytest.approx(3.5)  # the fake's seed + 0.5
    client = MlflowClient(tracking_uri=mlflow_store)
    history = client.get_metric_history(by_seed[3].info.run_id, "val/loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(CURVE)
    failed = client.get_metric_history(by_seed[FAILING_SEED].info.run_id, "val/loss")
    assert sorted(m.step for m in failed) == [0, 1]  # its curve as far as it went

    again = export_study(plain, ExportTarget.MLFLOW)
    assert (again.created, again.updated) == (0, 4)
    rerun = mlflow_runs(mlflow_store, plain)
    assert sorted(r.info.run_id for r in rerun) == sorted(r.info.run_id for r in runs)
    assert len(client.get_metric_history(by_seed[3].info.run_id, "val/loss")) == 3
    assert len(client.get_metric_history(parent.info.run_id, "val/loss/mean")) == 1


def test_mlflow_a_parent_per_variant(variants: Path, mlflow_store: str) -> None:
    """Into another study's store (--uri): an experiment of its own beside the other."""
    export_study(variants, ExportTarget.MLFLOW, uri=mlflow_store)
    export_study(variants, ExportTarget.MLFLOW, uri=mlflow_store)
    runs = mlflow_runs(mlflow_store, variants)
    parents = {r.data.tags["xorch.variant"]: r for r in runs if "xorch.kind" in r.data.tags}
    assert sorted(parents) == ["base", "shifted"] and len(runs) == 2 + 4
    for row in summary_rows(variants):
        metrics = parents[row["variant"]].data.metrics
        assert metrics[f"{row['metric']}/mean"] == pytest.approx(row["mean"])
    for child in (r for r in runs if "xorch.kind" not in r.data.tags):
        variant = child.data.tags["xorch.variant"]
        assert child.data.tags["mlflow.parentRunId"] == parents[variant].info.run_id
        assert child.info.run_name.startswith(f"{variant}/run_")


# --------------------------------------------------------------------------- TensorBoard


def tensorboard_run(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def session(events: Any, tag: str) -> Any:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.SummaryMetadata(tag).plugin_data.content
    return plugin_data_pb2.HParamsPluginData.FromString(content)


def test_tensorboard_a_logdir_per_run_with_curves_and_hparams(plain: Path) -> None:
    first = export_study(plain, ExportTarget.TENSORBOARD)
    second = export_study(plain, ExportTarget.TENSORBOARD)
    assert (first.created, first.updated, second.created, second.updated) == (3, 0, 0, 3)
    logdir = StudyPaths(plain).tensorboard
    assert sorted(p.name for p in logdir.iterdir()) == [
        "run_00_seed1", "run_01_seed2", "run_02_seed3", "summary"]  # fmt: skip
    for run in ("run_00_seed1", "run_01_seed2", "run_02_seed3", "summary"):
        assert len(tensorboard_event_files(logdir / run)) == 1  # rewritten, not added to

    events = tensorboard_run(logdir / "run_02_seed3")
    curve = events.Scalars("val/loss")
    assert [e.step for e in curve] == [0, 1, 2]
    assert [e.value for e in curve] == pytest.approx(CURVE)
    start = session(events, "_hparams_/session_start_info").session_start_info
    assert start.hparams["seed"].number_value == 3
    assert start.hparams["status"].string_value == "completed"
    from tensorboard.plugins.hparams import api_pb2

    failed = tensorboard_run(logdir / "run_01_seed2")
    end = session(failed, "_hparams_/session_end_info").session_end_info
    assert end.status == api_pb2.STATUS_FAILURE

    (row,) = [r for r in summary_rows(plain) if r["metric"] == "val/loss"]
    mean = tensorboard_run(logdir / "summary").Scalars("val/loss/mean")
    assert [e.value for e in mean] == pytest.approx([row["mean"]])


def test_tensorboard_hparams_name_the_variant(variants: Path) -> None:
    export_study(variants, ExportTarget.TENSORBOARD)
    logdir = StudyPaths(variants).tensorboard
    events = tensorboard_run(logdir / "shifted" / "run_01_seed2")
    start = session(events, "_hparams_/session_start_info").session_start_info
    assert start.hparams["variant"].string_value == "shifted"
    assert start.hparams["model.init_args.offset"].number_value == pytest.approx(0.3)
    assert tensorboard_run(logdir / "base" / "summary").Scalars("val/loss/n")[0].value == 2


# --------------------------------------------------------------------------- W&B


def wandb_records(path: Path) -> list[Any]:
    """The protobuf records of one offline ``.wandb`` file: a 7-byte header, then
    LevelDB log records (crc32, length, type) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # full, first
            pending = chunk
        else:  # middle, last
            pending += chunk
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pending))
    return records


def items(updates: Any) -> dict[str, Any]:
    """W&B's key-value items: a key with ``/`` is kept as its parts (``nested_key``)."""
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in updates}


def wandb_run(directory: Path, run_id: str) -> dict[str, Any]:
    (folder,) = wandb_offline_runs(directory, run_id)
    (file,) = folder.glob("*.wandb")
    found: dict[str, Any] = {"history": []}
    for record in wandb_records(file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found["run"] = record.run
            found["config"] = items(record.run.config.update)
        elif kind == "history":
            row = items(record.history.item)
            found["history"].append({**row, "step": record.history.step.num})
        elif kind == "summary":
            found.setdefault("summary", {}).update(items(record.summary.update))
        elif kind == "exit":
            found["exit"] = record.exit.exit_code
    return found


def test_wandb_offline_runs_grouped_by_study(plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.commands.export_wandb import wandb_run_id

    monkeypatch.setenv("WANDB_MODE", "online")  # export is offline whatever the setting
    first = export_study(plain, ExportTarget.WANDB)
    second = export_study(plain, ExportTarget.WANDB)
    assert (first.created, first.updated, second.created, second.updated) == (3, 0, 0, 3)
    study = read_export(plain)
    ids = [wandb_run_id(run.key) for run in study.runs]
    assert len(set(ids)) == 3
    assert len(list(StudyPaths(plain).wandb.glob("offline-run-*"))) == 3 + 1  # + the summary

    by_seed = {run.seed: wandb_run(plain, wandb_run_id(run.key)) for run in study.runs}
    done = by_seed[3]
    assert (done["run"].run_group, done["run"].job_type) == (plain.name, "study")
    assert done["run"].display_name == "run_02_seed3"
    assert done["config"]["xorch"]["seed"] == 3
    assert [h["step"] for h in done["history"]] == [0, 1, 2]
    assert [h["val/loss"] for h in done["history"]] == pytest.approx(CURVE)
    assert done["summary"]["val/acc"] == pytest.approx(0.03)
    assert done["exit"] == 0
    assert by_seed[FAILING_SEED]["exit"] == 1
    (row,) = [r for r in summary_rows(plain) if r["metric"] == "val/loss"]
    aggregate = wandb_run(plain, wandb_run_id(f"{study.key}/summary"))
    assert aggregate["summary"]["val/loss/mean"] == pytest.approx(row["mean"])


def test_wandb_job_type_is_the_variant(variants: Path, tmp_path: Path) -> None:
    from orchestrator.commands.export_wandb import wandb_run_id

    target = tmp_path / "w and b"
    export_study(variants, ExportTarget.WANDB, directory=target)
    for run in read_export(variants).runs:
        found = wandb_run(target, wandb_run_id(run.key))
        assert found["run"].job_type == run.variant
        assert found["run"].display_name == run.dir


# --------------------------------------------------------------------------- refusals


def xorch_export(*args: str) -> Any:
    return CliRunner().invoke(app, ["export", *args])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--to", "neptune"], "--to neptune: not a tracker xorch exports to; use one of mlflow"),
        (["--to", "tensorboard", "--uri", "http://x"], "--uri is for --to mlflow"),
        (["--to", "mlflow", "--dir", "x"], "--dir is not for --to mlflow"),
    ],
)
def test_bad_options_are_one_line_and_touch_nothing(
    plain: Path, args: list[str], says: str
) -> None:
    before = snapshot(plain)
    result = xorch_export(str(plain), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"xorch: error: {says}") and result.stderr.count("\n") == 1
    assert snapshot(plain) == before


def test_a_folder_without_a_study_is_refused(tmp_path: Path) -> None:
    result = xorch_export(str(tmp_path), "--to", "tensorboard")
    assert result.exit_code == 2 and "runner_state.json" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["mlflow", "wandb", "tensorboard"])
def test_a_tracker_not_installed_names_the_extra(
    plain: Path, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, target, None)  # what find_spec says of a missing package
    before = snapshot(plain)
    result = xorch_export(str(plain), "--to", target)
    assert result.exit_code == 2
    assert f"pip install -e '.[{target}]'" in result.stderr and result.stderr.count("\n") == 1
    assert snapshot(plain) == before


def test_the_cli_prints_where_to_look(variants: Path, tmp_path: Path) -> None:
    result = xorch_export(str(variants), "--to", "tensorboard", "--dir", str(tmp_path / "tb"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"exported to tensorboard at {tmp_path / 'tb'}: 4 runs created, 0 updated",
        f"look: tensorboard --logdir {tmp_path / 'tb'}",
    ]


def test_exporting_to_every_tracker_imports_no_torch(plain: Path, mlflow_store: str) -> None:
    """The parent never imports torch: neither do the trackers' packages as export uses them."""
    script = (
        "import sys\n"
        "from orchestrator.commands.export import ExportTarget, export_study\n"
        "export_study(sys.argv[1], ExportTarget.MLFLOW, uri=sys.argv[2])\n"
        "export_study(sys.argv[1], ExportTarget.WANDB)\n"
        "export_study(sys.argv[1], ExportTarget.TENSORBOARD)\n"
        "print(sorted({'torch', 'lightning', 'pytorch_lightning'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(plain), mlflow_store],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_a_running_study_is_exported_and_the_next_export_brings_it_up_to_date(
    tmp_path: Path, mlflow_store: str
) -> None:
    """Seed 1 trains on (a fake worker that never ends) while the study is exported: it
    goes in as RUNNING; stopped, it is interrupted, and the next export turns the same
    MLflow run KILLED instead of adding one."""
    out = tmp_path / "live"
    config = fake_study_config(out, seeds=(0, 1), acts={"1": {"*": {"do": "slow"}}})
    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(config))
    launch = fake_xorch_popen("launch", str(path), cwd=tmp_path)
    try:
        wait_for(lambda: running_attempt(out, 1) is not None, what="seed 1 running")
        first = export_study(out, ExportTarget.MLFLOW, uri=mlflow_store)
    finally:
        launch.send_signal(signal.SIGTERM)
        launch.communicate(timeout=60)
    assert (first.created, first.updated) == (3, 0)
    during = {r.info.run_name: r for r in mlflow_runs(mlflow_store, out)}
    assert {n: r.info.status for n, r in during.items()} == {
        "live": "RUNNING", "run_00_seed0": "FINISHED", "run_01_seed1": "RUNNING"}  # fmt: skip

    second = export_study(out, ExportTarget.MLFLOW, uri=mlflow_store)
    assert (second.created, second.updated) == (0, 3)
    after = {r.info.run_name: r for r in mlflow_runs(mlflow_store, out)}
    assert {n: r.info.run_id for n, r in after.items()} == {
        n: r.info.run_id for n, r in during.items()
    }
    assert after["run_01_seed1"].info.status == "KILLED"
    assert after["run_01_seed1"].data.tags["xorch.status"] == "interrupted"
    assert after["live"].info.status == "FINISHED"
