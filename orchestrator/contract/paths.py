"""The one place that names files (with ``lease_paths`` for the machine's GPU
leases and ``search_paths`` for a search). No other module builds a file name.

<output_base_dir>/
    run_00_seed42/          one folder per run: the Trainer's default_root_dir
        run_spec.json       written by the parent before the child starts
        heartbeat.json      written by the child while it trains
        metrics.json        written by the child when it completed
        error.json          written by the child when it raised
        train.log           the child's stdout and stderr
        last.ckpt           the newest checkpoint, for mid-run resume
        lightning_logs/
            version_0/metrics.csv   the CSVLogger's log; one version_N per child start
    baseline/run_00_seed42/ the same, one folder per variant, in a study of variants
    run_03_fold1_seed42/    a run of a study with folds: fold 1 of seed 42
    runner_state.json       the study's state; drives resume
    runner_state.json.bak   the previous good state
    summary.csv             completed runs, then mean and std rows
    comparison.csv          a study of variants: each variant against the reference
    xorch.log               what the parent printed
    forkserver.log          the fork server's own output (launcher: forkserver)
    plots/                  curves.png and spread.png, written by orchestrator.commands.plot
    report.html             the page orchestrator.commands.report_page writes by default
    mlflow.db               MLflow's store: ``xorch export --to mlflow``'s when no --uri is
                            given, and a study's MLFlowLogger's when it names no tracking URI
    tensorboard/            ``xorch export --to tensorboard``'s logdir when no --dir is given
    wandb/                  ``xorch export --to wandb``'s offline runs when no --dir is given
    run_00_seed42_replay/   ``xorch replay``'s run (baseline/run_00_seed42_replay for a variant)
    mlflow_parents.json     the MLflow parent run of the study (of each variant)
    run_00_seed42/mlflow_run_id.txt   the run's MLflow run, continued by a later attempt

``study_names`` lists the top-level names: a name the user chooses that becomes a
folder there (a variant's) must be none of them, nor look like a run's folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.contract import records

__all__ = [
    "RUN_DIR_PATTERN",
    "RunPaths",
    "StudyPaths",
    "aside_path",
    "run_dir_name",
    "study_name_clash",
    "study_names",
    "study_relative",
    "tensorboard_event_file",
    "tensorboard_event_files",
    "tensorboard_summary_dir",
    "wandb_folder",
    "wandb_offline_runs",
]

# A run's folder as run_dir_name names it, or its replay's (orchestrator.commands.replay).
RUN_DIR_PATTERN = re.compile(r"run_[0-9]+(_fold[0-9]+)?_seed-?[0-9]+(_replay)?")


CSV_LOG_FILE = "metrics.csv"  # the name CSVLogger gives its log


def run_dir_name(
    index: int, seed: int, n_runs: int, variant: str | None = None, fold: int | None = None
) -> str:
    """``run_02_seed28``: two index digits, more when the study has over 100 runs;
    ``wide/run_02_seed28`` for a variant (``index`` is then the seed's position);
    ``run_05_fold1_seed28`` in a study with folds (``index``: the run's position
    among its variant's, seed by seed, fold by fold)."""
    width = max(2, len(str(max(n_runs - 1, 0))))
    fold_part = "" if fold is None else f"_fold{fold}"
    name = f"run_{index:0{width}d}{fold_part}_seed{seed}"
    return name if variant is None else f"{variant}/{name}"


@dataclass(frozen=True)
class RunPaths:
    """The files of one run, all inside its run directory."""

    root: Path

    @property
    def run_spec(self) -> Path:
        return self.root / records.RUN_SPEC_FILE

    @property
    def heartbeat(self) -> Path:
        return self.root / records.HEARTBEAT_FILE

    @property
    def metrics(self) -> Path:
        return self.root / records.METRICS_FILE

    @property
    def error(self) -> Path:
        return self.root / records.ERROR_FILE

    @property
    def log(self) -> Path:
        return self.root / records.LOG_FILE

    @property
    def rank_exit(self) -> Path:
        return self.root / records.RANK_EXIT_FILE

    def rank_progress(self, rank: int) -> Path:
        """Where DDP rank ``rank`` notes its place in the training step."""
        return self.root / f"progress.rank{rank}.json"

    def rank_progress_files(self) -> list[Path]:
        return sorted(self.root.glob("progress.rank*.json"))

    @property
    def last_checkpoint(self) -> Path:
        return self.root / records.LAST_CHECKPOINT_FILE

    @property
    def mlflow_run_id(self) -> Path:
        """The run's MLflow run id, kept so that a later attempt continues it."""
        return self.root / "mlflow_run_id.txt"

    @property
    def lightning_logs(self) -> Path:
        """Where the default CSVLogger writes (worker.trainer_parts: ``name="lightning_logs"``)."""
        return self.root / "lightning_logs"

    def csv_metric_log(self, attempt: int) -> Path:
        """Attempt ``attempt``'s ``metrics.csv`` (CSVLogger's ``version_<attempt - 1>``)."""
        return self.lightning_logs / f"version_{attempt - 1}" / CSV_LOG_FILE

    @property
    def curves_from_log(self) -> Path:
        """The curves read from a command run's log by ``metrics_from_log``,
        written as a CSVLogger would, so the plots find them."""
        return self.lightning_logs / "version_from_log" / CSV_LOG_FILE

    def any_csv_metric_logs(self) -> list[Path]:
        """Every ``metrics.csv`` anywhere under the run folder, oldest first: a
        program's own CSVLogger may write where it likes."""
        return sorted(self.root.rglob(CSV_LOG_FILE), key=lambda p: p.stat().st_mtime)

    def csv_metric_logs(self) -> list[Path]:
        """Every ``lightning_logs/version_*/metrics.csv`` that exists, oldest first.

        CSVLogger starts a new ``version_N`` each time the child starts, so a resumed
        run has several. They are ordered by N as a number (``version_10`` after
        ``version_9``); folders whose suffix is not a number come last, by name.
        """

        def order(folder: Path) -> tuple[int, int, str]:
            suffix = folder.name.removeprefix("version_")
            return (0, int(suffix), "") if suffix.isascii() and suffix.isdigit() else (1, 0, suffix)

        folders = sorted(self.lightning_logs.glob("version_*"), key=order)
        return [f / CSV_LOG_FILE for f in folders if (f / CSV_LOG_FILE).is_file()]

    def previous_attempt_file(self, path: Path, attempt: int) -> Path:
        """``error.json`` of attempt 2 kept as ``error.attempt-2.json``."""
        return path.with_name(f"{path.stem}.attempt-{attempt}{path.suffix}")


def aside_path(path: Path, label: str) -> Path:
    """A free sibling name to move ``path`` to (``last.ckpt.damaged-1``): never an
    existing one, so nothing is ever overwritten."""
    n = 1
    while True:
        candidate = path.with_name(f"{path.name}.{label}-{n}")
        if not candidate.exists():
            return candidate
        n += 1


@dataclass(frozen=True)
class StudyPaths:
    """The files of a whole study under ``output_base_dir``."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "runner_state.json"

    @property
    def state_backup(self) -> Path:
        return self.root / "runner_state.json.bak"

    @property
    def state_journal(self) -> Path:
        """A big study's saves since runner_state.json was last written whole."""
        return self.root / "runner_state.journal"

    @property
    def state_lock(self) -> Path:
        return self.root / ".runner_state.json.lock"

    @property
    def launcher_lock(self) -> Path:
        return self.root / ".xorch-launch.lock"

    @property
    def launcher_owner(self) -> Path:
        return self.root / ".xorch-launch.owner.json"

    @property
    def slurm_jobs(self) -> Path:
        """submitit's folder: one sub-folder per Slurm job (its script and logs)."""
        return self.root / "slurm_jobs"

    def slurm_job_log(self, job_id: str) -> Path:
        """submitit's stdout (and stderr) of one job."""
        return self.slurm_jobs / job_id / f"{job_id}_0_log.out"

    @property
    def forkserver_log(self) -> Path:
        return self.root / "forkserver.log"

    @property
    def summary(self) -> Path:
        return self.root / "summary.csv"

    @property
    def comparison(self) -> Path:
        return self.root / "comparison.csv"

    @property
    def log(self) -> Path:
        return self.root / "xorch.log"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def report(self) -> Path:
        """``xorch report``'s page when no --out is given."""
        return self.root / "report.html"

    @property
    def curves_plot(self) -> Path:
        return self.plots / "curves.png"

    @property
    def spread_plot(self) -> Path:
        return self.plots / "spread.png"

    @property
    def mlflow_store(self) -> Path:
        """MLflow's SQLite store: ``xorch export --to mlflow``'s when no --uri is given,
        and the study's MLFlowLogger's when it names no tracking URI."""
        return self.root / "mlflow.db"

    @property
    def tensorboard(self) -> Path:
        """``xorch export --to tensorboard``'s logdir when no --dir is given."""
        return self.root / "tensorboard"

    @property
    def wandb(self) -> Path:
        """Where W&B keeps offline runs when ``xorch export --to wandb`` gets no --dir
        (W&B's own folder name under the ``dir`` given to it: the study folder)."""
        return wandb_folder(self.root)

    @property
    def mlflow_parents(self) -> Path:
        """The MLflow parent run id of the study ("") or of each variant."""
        return self.root / "mlflow_parents.json"

    @property
    def mlflow_lock(self) -> Path:
        """Held while a run creates the study's MLflow experiment and parent run."""
        return self.root / ".mlflow.lock"

    def stale_temp_files(self) -> list[Path]:
        """Temp files (see contract/atomic.py) of the files only a launch writes,
        left by a launch killed mid-write: whoever holds the launcher lock may
        remove them, as no other writer of those files can be alive."""
        owned = (self.state, self.state_backup, self.summary, self.comparison)
        return [temp for path in owned for temp in self.root.glob(f".{path.name}.*.tmp")]

    def run(self, dir_name: str) -> RunPaths:
        return RunPaths(self.root / dir_name)


def study_names() -> tuple[str, ...]:
    """Every name a study gives at the top of its folder, files and folders: what a
    user-chosen name that becomes a folder there must not be (issue 23: a variant
    named summary.csv trained into a folder summary.csv/, then every run's summary
    write failed). Temp files start with a dot, which no variant name can."""
    study = StudyPaths(Path())
    owned = [study.state, study.state_backup, study.state_journal, study.state_lock]
    owned += [study.launcher_lock]
    owned += [study.launcher_owner, study.slurm_jobs, study.forkserver_log, study.summary]
    owned += [study.comparison, study.log, study.plots, study.report]
    owned += [study.mlflow_store, study.tensorboard, study.wandb]
    owned += [study.mlflow_parents, study.mlflow_lock]
    return tuple(path.name for path in owned)


def study_name_clash(name: str) -> str | None:
    """The study's own name that ``name``, put at the top of a study folder, would
    collide with (``summary.csv``, or ``run_NN_seedS`` for a run's folder); None if
    it is free. Compared case-folded: macOS and Windows file systems are
    case-insensitive, so ``Summary.CSV`` is summary.csv there."""
    folded = name.casefold()
    for own in study_names():
        if folded == own.casefold():
            return own
    if RUN_DIR_PATTERN.fullmatch(folded):
        return "run_NN_seedS (the name of a run's folder)"
    return None


def wandb_folder(directory: Path) -> Path:
    """The folder W&B writes in when given ``dir=directory``."""
    return directory / "wandb"


def wandb_offline_runs(directory: Path, run_id: str) -> list[Path]:
    """W&B's offline folders of run ``run_id`` under ``dir=directory``
    (``wandb/offline-run-<time>-<id>``): one per ``wandb.init`` of that id."""
    return sorted(wandb_folder(directory).glob(f"offline-run-*-{run_id}"))


TENSORBOARD_EVENTS = "events.out.tfevents"  # the prefix TensorBoard looks for


def tensorboard_event_file(folder: Path, wall_time: float) -> Path:
    """The event file ``xorch export`` writes in one TensorBoard run folder."""
    return folder / f"{TENSORBOARD_EVENTS}.{int(wall_time)}.xorch-export"


def tensorboard_event_files(folder: Path) -> list[Path]:
    """The event files of an earlier ``xorch export`` in ``folder``, oldest first."""
    return sorted(folder.glob(f"{TENSORBOARD_EVENTS}.*.xorch-export"))


def tensorboard_summary_dir(logdir: Path, variant: str | None) -> Path:
    """The TensorBoard run of a study's (or a variant's) aggregate."""
    return logdir / "summary" if variant is None else logdir / variant / "summary"


def study_relative(path: str | None, root: Path) -> str | None:
    """``path`` (a checkpoint a child resumed from) relative to the study folder
    ``root`` when it lies inside it, as runner_state.json keeps it; else unchanged."""
    if path is None:
        return None
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path
