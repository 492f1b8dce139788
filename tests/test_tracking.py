"""A run's identity in the trackers: which tracker a logger is, what each
logger is given (the user's values win), the environment of a command program,
the refusal of a tracker that is not installed, and the study's figures for
MLflow's parent runs. Pure decisions, tables of cases; the real trackers are in
tests/test_trackers.py."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.contract.records import RunSpec
from orchestrator.contract.tracking import (
    RunIdentity,
    Tracker,
    identity_arguments,
    run_identity,
    tracker_environment,
    tracker_of,
)
from orchestrator.errors import ConfigError
from orchestrator.tracker_config import (
    check_tracker_packages,
    configured_trackers,
    tracker_modules,
)
from tests.helpers import ROOT, saved_variant_study, tiny_config

STUDY = "/data/studies/lr sweep"
PLAIN = RunIdentity(study_dir=STUDY, run_dir="run_01_seed7", seed=7, attempt=2)
WIDE = RunIdentity(
    study_dir=STUDY,
    run_dir="wide/run_01_seed7",
    seed=7,
    attempt=1,
    variant="wide",
    changes={"model.init_args.hidden": "64"},
)


@pytest.mark.parametrize(
    ("class_path", "tracker"),
    [
        ("lightning.pytorch.loggers.WandbLogger", Tracker.WANDB),
        ("pytorch_lightning.loggers.WandbLogger", Tracker.WANDB),
        ("lightning.pytorch.loggers.wandb.WandbLogger", Tracker.WANDB),
        ("pytorch_lightning.loggers.mlflow.MLFlowLogger", Tracker.MLFLOW),
        ("lightning.pytorch.loggers.TensorBoardLogger", Tracker.TENSORBOARD),
        ("pytorch_lightning.loggers.CSVLogger", Tracker.CSV),
        ("my_project.loggers.WandbLogger", None),  # the user's own class: left alone
        ("lightning.pytorch.loggers.NeptuneLogger", None),
        ("lightning.pytorch.loggersx.WandbLogger", None),
        ("WandbLogger", None),
    ],
)
def test_the_tracker_of_a_logger_class(class_path: str, tracker: Tracker | None) -> None:
    assert tracker_of(class_path) is tracker


def test_a_run_id_is_stable_per_study_and_run_and_apart_between_them() -> None:
    again = RunIdentity(study_dir=STUDY, run_dir="run_01_seed7", seed=7, attempt=5)
    other_study = RunIdentity(study_dir="/elsewhere/lr sweep", run_dir="run_01_seed7", seed=7,
                              attempt=2)  # fmt: skip
    ids = [PLAIN.run_id, WIDE.run_id, other_study.run_id]
    assert again.run_id == PLAIN.run_id  # a later attempt continues the run
    assert len(set(ids)) == 3
    assert all(i.isalnum() and len(i) <= 64 for i in ids)  # W&B's alphabet for ids


WANDB_CASES = [
    # (identity, the user's arguments, what the logger is given)
    (PLAIN, {"project": "p"},
     {"project": "p", "group": "lr sweep", "name": "run_01_seed7", "id": PLAIN.run_id,
      "resume": "allow", "config": {"seed": 7, "attempt": 2}}),
    (WIDE, {},
     {"group": "lr sweep", "job_type": "wide", "name": "wide/run_01_seed7", "id": WIDE.run_id,
      "resume": "allow",
      "config": {"seed": 7, "attempt": 1, "variant": "wide", "model.init_args.hidden": "64"}}),
    # the user's own group, name, id and config keys win; their other config keys stay
    (WIDE, {"group": "mine", "name": "n", "id": "abc", "config": {"seed": "theirs", "x": 1}},
     {"group": "mine", "job_type": "wide", "name": "n", "id": "abc", "resume": "allow",
      "config": {"seed": "theirs", "attempt": 1, "variant": "wide",
                 "model.init_args.hidden": "64", "x": 1}}),
    # WandbLogger's ``version`` is its run id: no id of ours beside it
    (PLAIN, {"version": "v1"},
     {"version": "v1", "group": "lr sweep", "name": "run_01_seed7", "resume": "allow",
      "config": {"seed": 7, "attempt": 2}}),
]  # fmt: skip


@pytest.mark.parametrize(("identity", "user", "expected"), WANDB_CASES)
def test_what_a_wandb_logger_is_given(identity, user, expected) -> None:
    assert identity_arguments(Tracker.WANDB, identity, user, {}) == expected


SQLITE = f"sqlite:///{STUDY}/mlflow.db"
MLFLOW_CASES = [
    # (identity, the user's arguments, the environment, what the logger is given)
    (PLAIN, {}, {},
     {"experiment_name": "lr sweep", "run_name": "run_01_seed7", "tracking_uri": SQLITE,
      "tags": {"xorch.study": "lr sweep", "seed": "7"}}),
    # Lightning's MLFlowLogger reads MLFLOW_TRACKING_URI when it is imported, not when
    # it is made (a fork server imports it before a run's environment is set)
    (WIDE, {}, {"MLFLOW_TRACKING_URI": "http://mlflow:5000"},
     {"experiment_name": "lr sweep", "run_name": "wide/run_01_seed7",
      "tracking_uri": "http://mlflow:5000",
      "tags": {"xorch.study": "lr sweep", "seed": "7", "variant": "wide"}}),
    (WIDE, {"tracking_uri": "file:/x", "experiment_name": "e", "tags": {"seed": "s", "k": "v"}},
     {"MLFLOW_TRACKING_URI": "http://mlflow:5000"},
     {"experiment_name": "e", "run_name": "wide/run_01_seed7", "tracking_uri": "file:/x",
      "tags": {"xorch.study": "lr sweep", "seed": "s", "variant": "wide", "k": "v"}}),
]  # fmt: skip


@pytest.mark.parametrize(("identity", "user", "environ", "expected"), MLFLOW_CASES)
def test_what_an_mlflow_logger_is_given(identity, user, environ, expected) -> None:
    assert identity_arguments(Tracker.MLFLOW, identity, user, environ) == expected


TENSORBOARD_CASES = [
    # the study folder is the logdir, the run folder the run's name in it
    (WIDE, {"save_dir": "/run/dir/tb"},
     {"save_dir": STUDY, "name": "", "version": "wide/run_01_seed7",
      "default_hp_metric": False}),
    (PLAIN, {"save_dir": "/run/dir/tb", "default_hp_metric": True, "log_graph": True},
     {"save_dir": STUDY, "name": "", "version": "run_01_seed7", "default_hp_metric": True,
      "log_graph": True}),
    # a user who names the run's folder keeps it (and save_dir stays in the run folder)
    (PLAIN, {"save_dir": "/run/dir/tb", "version": "mine"},
     {"save_dir": "/run/dir/tb", "version": "mine"}),
    (PLAIN, {"save_dir": "/run/dir/tb", "name": "mine"},
     {"save_dir": "/run/dir/tb", "name": "mine"}),
]  # fmt: skip


@pytest.mark.parametrize(("identity", "user", "expected"), TENSORBOARD_CASES)
def test_what_a_tensorboard_logger_is_given(identity, user, expected) -> None:
    assert identity_arguments(Tracker.TENSORBOARD, identity, user, {}) == expected


def test_a_csv_logger_keeps_its_version_folders_for_the_curves() -> None:
    user = {"save_dir": "/run/dir/logs", "name": "lightning_logs"}
    assert identity_arguments(Tracker.CSV, WIDE, user, {}) == user


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"WANDB_RUN_GROUP": "lr sweep", "WANDB_JOB_TYPE": "wide",
              "WANDB_NAME": "wide/run_01_seed7", "WANDB_RUN_ID": WIDE.run_id,
              "WANDB_RESUME": "allow", "MLFLOW_TRACKING_URI": SQLITE,
              "MLFLOW_EXPERIMENT_NAME": "lr sweep"}),
        # what the user's environment sets, it keeps
        ({"WANDB_RUN_GROUP": "g", "MLFLOW_TRACKING_URI": "http://m", "WANDB_RESUME": "never"},
         {"WANDB_JOB_TYPE": "wide", "WANDB_NAME": "wide/run_01_seed7",
          "WANDB_RUN_ID": WIDE.run_id, "MLFLOW_EXPERIMENT_NAME": "lr sweep"}),
    ],
)  # fmt: skip
def test_the_environment_of_a_command_program(environ, expected) -> None:
    assert tracker_environment(WIDE, environ) == expected


def test_a_fold_is_in_the_config_and_tags() -> None:
    folded = RunIdentity(STUDY, "run_04_fold1_seed7", seed=7, attempt=1, fold=1)
    given = identity_arguments(Tracker.WANDB, folded, {}, {})
    assert given["config"] == {"seed": 7, "attempt": 1, "fold": 1}
    given = identity_arguments(Tracker.MLFLOW, folded, {}, {})
    assert given["tags"] == {"xorch.study": "lr sweep", "seed": "7", "fold": "1"}
    assert folded.run_id != PLAIN.run_id


def test_a_run_spec_names_its_study_run_and_variant(tmp_path: Path) -> None:
    in_study = RunSpec(run_index=3, seed=7, run_dir=str(tmp_path / "wide" / "run_01_seed7"),
                       config={}, attempt=2, study_dir=str(tmp_path), variant="wide",
                       changes={"model.init_args.hidden": "64"}, fold=2)  # fmt: skip
    assert run_identity(in_study) == RunIdentity(
        str(tmp_path), "wide/run_01_seed7", 7, 2, "wide", {"model.init_args.hidden": "64"}, 2
    )
    alone = RunSpec(run_index=0, seed=3, run_dir=str(tmp_path / "replay"), config={})
    assert run_identity(alone) == RunIdentity(str(tmp_path), "replay", 3, 1)


def _with_loggers(*class_paths: str) -> dict:
    training = tiny_config(Path("out"))
    training["pl_trainer"]["logger"] = [{"class_path": p, "init_args": {}} for p in class_paths]
    return training


def test_the_trackers_of_a_config_and_what_a_fork_server_preloads() -> None:
    training = _with_loggers(
        "pytorch_lightning.loggers.MLFlowLogger",
        "my.own.Logger",
        "pytorch_lightning.loggers.WandbLogger",
        "lightning.pytorch.loggers.MLFlowLogger",
    )
    assert configured_trackers(training) == (Tracker.MLFLOW, Tracker.WANDB)
    assert tracker_modules(training) == ["mlflow", "mlflow.tracking", "wandb"]
    assert configured_trackers(tiny_config(Path("out"))) == ()


def test_a_tracker_that_is_not_installed_is_refused_with_its_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # find_spec then finds nothing
    check_tracker_packages(_with_loggers("pytorch_lightning.loggers.CSVLogger"))
    with pytest.raises(ConfigError) as refused:
        check_tracker_packages(
            _with_loggers(
                "pytorch_lightning.loggers.CSVLogger", "lightning.pytorch.loggers.WandbLogger"
            )
        )
    assert str(refused.value) == (
        "pl_trainer.logger[1]: WandbLogger needs the wandb package, which is not installed; "
        "install it: pip install 'xorch[wandb]'"
    )


def test_xorch_validate_refuses_a_missing_tracker_in_one_line(write_config, workdir) -> None:
    config = tiny_config(workdir / "out")
    config["pl_trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.MLFlowLogger",
        "init_args": {"experiment_name": "e"},
    }
    path = write_config(config)
    hide = "import sys; sys.modules['mlflow'] = None; from orchestrator.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", hide, "validate", "--fast", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "xorch: error: pl_trainer.logger[0]: MLFlowLogger needs the mlflow package, which is "
        "not installed; install it: pip install 'xorch[mlflow]'"
    ]
    assert not (workdir / "out").exists()


def test_the_figures_of_mlflow_parent_runs_are_summary_csv_numbers(tmp_path: Path) -> None:
    from scipy import stats

    from orchestrator.tracker_study import study_figures

    values = {"base": [0.5, 0.7, 0.6], "wide": [0.4, None, 0.3]}
    state = saved_variant_study(tmp_path, values, seeds=(1, 2, 3), with_logs=False)
    found = study_figures(state)
    assert set(found) == {"base", "wide"}
    assert [found[v].done for v in ("base", "wide")] == [True, False]  # wide's seed 2 pending
    for variant, losses in values.items():
        done = [v for v in losses if v is not None]
        figures = found[variant].figures
        low, high = stats.t.interval(0.95, len(done) - 1, loc=sum(done) / len(done),
                                     scale=stats.sem(done))  # fmt: skip
        assert figures["val/loss.n"] == len(done)
        assert math.isclose(figures["val/loss.mean"], sum(done) / len(done))
        assert math.isclose(figures["val/loss.std"], stats.tstd(done))
        assert math.isclose(figures["val/loss.ci_low"], low)
        assert math.isclose(figures["val/loss.ci_high"], high)
        assert math.isclose(figures["val/acc.mean"], 1 - sum(done) / len(done))


class _Recorder:
    """A stand-in for a Lightning logger: what was called on it, in order."""

    def __init__(self, calls: list[str], fails: bool = False) -> None:
        self.calls = calls
        self.fails = fails
        self._experiment = self  # W&B's run, for the WandbLogger stand-in
        self.run_id = "r1"

    def finalize(self, status: str) -> None:
        self.calls.append(f"{type(self).__name__}.finalize({status})")
        if self.fails:
            raise OSError("disk full")

    def finish(self, exit_code: int) -> None:
        self.calls.append(f"{type(self).__name__}.finish({exit_code})")

    def log_hyperparams(self, params: dict, metrics: dict) -> None:
        self.calls.append(f"hparams seed={params['seed']} metrics={sorted(metrics)}")


def _stand_in(name: str, module: str) -> type:
    return type(name, (_Recorder,), {"__module__": module})


WandbLogger = _stand_in("WandbLogger", "pytorch_lightning.loggers.wandb")
MLFlowLogger = _stand_in("MLFlowLogger", "lightning.pytorch.loggers.mlflow")
TensorBoardLogger = _stand_in("TensorBoardLogger", "lightning.pytorch.loggers.tensorboard")
CSVLogger = _stand_in("CSVLogger", "pytorch_lightning.loggers.csv_logs")


class _Failed(Exception):
    pass


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        (None, ["CSVLogger.finalize(success)", "WandbLogger.finalize(success)",
                "WandbLogger.finish(0)", "MLFlowLogger.finalize(FINISHED)",
                "hparams seed=7 metrics=['final/val/loss']",
                "TensorBoardLogger.finalize(success)"]),
        (_Failed, ["CSVLogger.finalize(failed)", "WandbLogger.finalize(failed)",
                   "WandbLogger.finish(1)", "MLFlowLogger.finalize(FAILED)",
                   "TensorBoardLogger.finalize(failed)"]),
        # Lightning's exit on SIGTERM (SIGTERMException) is a SystemExit: a stop
        (SystemExit, ["CSVLogger.finalize(killed)", "WandbLogger.finalize(killed)",
                      "WandbLogger.finish(1)", "MLFlowLogger.finalize(KILLED)",
                      "TensorBoardLogger.finalize(killed)"]),
        (KeyboardInterrupt, ["CSVLogger.finalize(killed)", "WandbLogger.finalize(killed)",
                             "WandbLogger.finish(1)", "MLFlowLogger.finalize(KILLED)",
                             "TensorBoardLogger.finalize(killed)"]),
    ],
)  # fmt: skip
def test_every_logger_is_closed_however_the_attempt_ends(ending, expected) -> None:
    from worker.trackers import closing_loggers

    calls: list[str] = []
    # The CSVLogger's close fails: the others are closed all the same.
    loggers = [CSVLogger(calls, fails=True), WandbLogger(calls), MLFlowLogger(calls),
               TensorBoardLogger(calls)]  # fmt: skip
    with contextlib.suppress(BaseException), closing_loggers(loggers, PLAIN, lead=False) as end:
        end.metrics = {"val/loss": 0.5}
        if ending is not None:
            raise ending()
    assert calls == expected


def test_no_logger_or_one_logger_is_closed_too() -> None:
    from worker.trackers import closing_loggers

    calls: list[str] = []
    with closing_loggers(False, PLAIN, lead=False):
        pass
    with closing_loggers(WandbLogger(calls), None, lead=False):
        pass
    assert calls == ["WandbLogger.finalize(success)", "WandbLogger.finish(0)"]


def test_the_parent_logs_the_figures_into_the_mlflow_parent_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    from orchestrator.contract.atomic import atomic_write_json
    from orchestrator.contract.paths import StudyPaths
    from orchestrator.tracker_study import log_study_figures

    values = {"base": [0.5, 0.7, 0.6], "wide": [0.4, None, 0.3]}
    state = saved_variant_study(tmp_path, values, seeds=(1, 2, 3), with_logs=False)
    paths = StudyPaths(tmp_path)
    log_study_figures(paths, state)  # no mlflow_parents.json: not an MLflow study
    uri = f"sqlite:///{paths.mlflow_store}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("study")
    parents = {v: client.create_run(experiment).info.run_id for v in values}
    atomic_write_json(paths.mlflow_parents, {"tracking_uri": uri, "parents": parents})
    log_study_figures(paths, state)
    base, wide = (client.get_run(parents[v]) for v in ("base", "wide"))
    assert base.data.metrics["val/loss.mean"] == pytest.approx(0.6)
    assert (base.data.metrics["val/loss.n"], wide.data.metrics["val/loss.n"]) == (3, 2)
    assert wide.data.metrics["val/loss.mean"] == pytest.approx(0.35)
    assert (base.info.status, wide.info.status) == ("FINISHED", "RUNNING")  # wide: a run pending
    history = client.get_metric_history(parents["base"], "val/loss.mean")
    assert [m.step for m in history] == [5]  # step = the completed runs so far
    # A store that cannot be reached costs a warning line, never the study.
    atomic_write_json(paths.mlflow_parents, {"tracking_uri": uri, "parents": {"base": "nope"}})
    log_study_figures(paths, state)
    said = [line for line in capsys.readouterr().err.splitlines() if "mlflow.store" not in line]
    assert len(said) == 1
    assert said[0].startswith("xorch: warning: MLflow: the study's figures were not logged: ")


def test_a_command_program_starts_with_the_tracker_variables(tmp_path: Path) -> None:
    from orchestrator.contract.command import invocation

    spec = RunSpec(run_index=1, seed=7, run_dir=str(tmp_path / "wide" / "run_01_seed7"),
                   config={"command": [sys.executable, "train.py", "--seed", "{seed}"]},
                   import_paths=(str(tmp_path),), study_dir=str(tmp_path),
                   variant="wide")  # fmt: skip
    start = invocation(spec, {"PATH": "/usr/bin", "WANDB_RUN_GROUP": "mine"}, str(ROOT))
    identity = run_identity(spec)
    assert {k: v for k, v in start.env.items() if k.startswith(("WANDB_", "MLFLOW_"))} == {
        "WANDB_RUN_GROUP": "mine",  # the user's environment wins
        "WANDB_JOB_TYPE": "wide",
        "WANDB_NAME": "wide/run_01_seed7",
        "WANDB_RUN_ID": identity.run_id,
        "WANDB_RESUME": "allow",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "MLFLOW_EXPERIMENT_NAME": tmp_path.name,
    }
