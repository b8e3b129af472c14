"""Per-framework implementations of the workload interface in ``base.py``."""
