"""The child side of xorch: one process trains one run and leaves files behind.

Only ``worker.protocol`` is imported by the parent; everything else here may
import torch and Lightning.
"""
