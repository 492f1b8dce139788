"""The seed project's config shape folded into Lightning entries, without
importing torch (the run and ``xorch validate``'s build check call it before
anything is built; the classes are in ``worker.tasks.seed_task``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.contract.child import SEED_TASK_BLOCKS, is_seed_shape

__all__ = ["as_lightning"]

_TASK = "worker.tasks.seed_task"


def as_lightning(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with its seed-shape blocks folded into model and data entries
    (unchanged when it is not of that shape)."""
    if not is_seed_shape(config):
        return dict(config)
    hyper = config.get("hyperparameters") or {}
    test = config.get("test_dataset")
    rest = {k: v for k, v in config.items() if k not in (*SEED_TASK_BLOCKS, "test_dataset")}
    model = {
        "net": config["model"],
        "loss": config["loss"],
        "optimizer": config.get("optimizer") or {"class_path": "torch.optim.Adam"},
        "scheduler_list": list(config.get("scheduler_list") or []),
        "metrics": list(config.get("metrics") or []),
    }
    data = {
        "train_dataset": config["train_dataset"],
        "val_dataset": config.get("val_dataset"),
        "test_dataset": test,
        "batch_size": int(hyper.get("batch_size", 8)),
        "num_workers": int(hyper.get("num_workers", 0)),
    }
    return {
        **rest,
        "model": {"class_path": f"{_TASK}.SeedTask", "init_args": model},
        "data": {"class_path": f"{_TASK}.SeedData", "init_args": data},
        **({"run_test": True} if test else {}),
    }
