"""The per-framework interface that workloads are written against, in three parts by concern:

- ``ops.ArrayOps``: what a workload computes with (data, buffers, math, gradients, control
  flow), and waiting for a result (``block``);
- ``compiling.Compiling``: how a mode runs a step (eager or compiled) and its compiler's
  counters;
- ``probes.Probes``: what the why phase asks (ops counted, dispatch and launch probes, memory).

A framework's backend subclasses ``Backend`` and overrides each part's abstract methods.
"""

from __future__ import annotations

from eagerbench.frameworks.backends.probes import Probes


class Backend(Probes):
    """One framework on one device with one dtype, in eager or compiled form."""
