"""A study's run slots, from its config: what ``xorch validate`` shows and the
scheduler fills (``gpus.make_slots`` over the GPUs the config names and this
machine has; a Slurm study's slots only cap its queue)."""

from __future__ import annotations

from orchestrator.config import StudySpec
from orchestrator.errors import ConfigError
from orchestrator.gpus import Slot, detect_gpus, gpu_topology, make_slots, resolve_gpus
from orchestrator.ranks import cpu_only
from orchestrator.runner_spec import Executor

__all__ = ["study_slots"]


def study_slots(spec: StudySpec) -> list[Slot]:
    """The slots a study's runs take: Slurm's concurrency cap, or the GPUs (each
    ``runs_per_gpu`` times, ``gpus_per_run`` together), or CPU slots."""
    runner = spec.runner
    if runner.executor is Executor.SLURM:  # the cluster places jobs; this caps the queue
        return [Slot(i, None, cluster=True) for i in range(runner.slurm.max_concurrent)]
    gpus = resolve_gpus(runner.gpus, detect_gpus()) if runner.gpus != () else []
    share = runner.gpus_per_run
    if share > 1 and not gpus and not cpu_only([spec.training, *spec.variants.values()]):
        # Several processes per run on CPU only when the config says so: a GPU
        # config would otherwise train N CPU processes without a word.
        raise ConfigError(
            f"experiments_runner.gpus_per_run is {share} but no GPU is visible here; "
            f"run where there are GPUs, or set pl_trainer.accelerator: cpu for {share} "
            "CPU processes per run"
        )
    topology = gpu_topology(gpus) if share > 1 else None
    return make_slots(gpus, runner.runs_per_gpu, runner.max_parallel, share, topology)
