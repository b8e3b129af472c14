"""The model suite (``--grid models``): see ``suite``. Its models are built when a cell runs;
importing it imports no framework."""

from workloads.zoo.suite import SUITE, WORKLOADS

__all__ = ["SUITE", "WORKLOADS"]
