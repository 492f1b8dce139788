"""The child side of xorch: one process trains one run and leaves files behind.

The parent starts it by name (``python -m worker.train_one``) and imports only
``worker.slurm_job``, which stays torch-free because submitit pickles it in the
parent. From the parent's side the worker imports only ``orchestrator.contract``.
Everything else here may import torch and Lightning.
"""
