"""Config-level checks for lightning-hydra-template's shape (no child is started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.compose import compose_folder, resolve


def test_project_root_comes_from_the_marker_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    (tmp_path / ".project-root").write_text("")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "train.yaml").write_text(
        "defaults:\n  - _self_\ndata_dir: ${oc.env:PROJECT_ROOT}/data/\n"
    )
    tree, _ = compose_folder(configs / "train.yaml", [])
    assert resolve(tree)["data_dir"] == f"{tmp_path}/data/"


def test_environment_project_root_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECT_ROOT", "/elsewhere")
    (tmp_path / ".project-root").write_text("")
    (tmp_path / "train.yaml").write_text("defaults:\n  - _self_\nroot: ${oc.env:PROJECT_ROOT}\n")
    tree, _ = compose_folder(tmp_path / "train.yaml", [])
    assert resolve(tree)["root"] == "/elsewhere"
    assert os.environ["PROJECT_ROOT"] == "/elsewhere"
