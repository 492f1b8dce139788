"""The names of a search's files (``search:``, issue 21) in its study folder;
the study's own files are named in ``contract.paths``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SearchPaths"]


@dataclass(frozen=True)
class SearchPaths:
    """The files of a search (``search:``) in its study folder: the Optuna
    storage, one one-run study per trial, the search's outputs and the seed
    study of its best config."""

    root: Path

    @property
    def storage(self) -> Path:
        """The default Optuna storage, an SQLite file."""
        return self.root / "search.db"

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    def trial(self, number: int) -> Path:
        """Trial ``number``'s own one-run study (``trials/trial_0003``)."""
        return self.trials / f"trial_{number:04d}"

    @property
    def trials_csv(self) -> Path:
        return self.root / "trials.csv"

    @property
    def best_config(self) -> Path:
        return self.root / "best_config.yaml"

    @property
    def importances(self) -> Path:
        return self.root / "importances.csv"

    @property
    def history_plot(self) -> Path:
        return self.root / "search_history.png"

    @property
    def seed_study(self) -> Path:
        """The seed study of the best config (and the baseline): a study of its own."""
        return self.root / "seeds"

    def names(self) -> tuple[str, ...]:
        owned = (self.storage, self.trials, self.trials_csv, self.best_config)
        return tuple(p.name for p in (*owned, self.importances, self.history_plot, self.seed_study))
