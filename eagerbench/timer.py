"""Timing one iteration at a time: wall clock around step + device sync, GC recorded, not hidden.

``timeit`` disables the garbage collector; eagerbench leaves it as the user's program would run
(unless ``--gc off|freeze`` says otherwise) and records every collection that lands inside a
timed iteration, so a spike can be told apart from a slow step.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class GCWatch:
    """Counts collections and their duration through ``gc.callbacks`` while installed."""

    collections: int = 0
    ns: int = 0
    _start: int = 0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.collections += 1
            self.ns += time.perf_counter_ns() - self._start

    def __enter__(self) -> "GCWatch":
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._callback)


@dataclass
class Sample:
    """One timed iteration."""

    ns: int                 # wall time of step + block
    gc_collections: int     # collections that ran inside it
    gc_ns: int              # time those collections took
    observed: dict = field(default_factory=dict)


def run_iteration(step: Callable, block: Callable, st: Any, mem: Any,
                  watch: GCWatch) -> tuple[Any, Any, Sample]:
    """Run ``st, mem = step(st, mem)`` and wait for everything it returned to be computed.

    The clock stops only after ``block`` has drained the device, so lazy or asynchronous
    execution cannot end the measurement early; the outputs are handed back to the caller, who
    keeps them as the next iteration's input, so nothing computed is dead.
    """
    c0, g0 = watch.collections, watch.ns
    t0 = time.perf_counter_ns()
    st, mem = step(st, mem)
    block((st, mem))
    t1 = time.perf_counter_ns()
    return st, mem, Sample(t1 - t0, watch.collections - c0, watch.ns - g0)



def harness_overhead_ns(repeats: int = 5000) -> float:
    """Median cost of ``run_iteration`` around a step and block that do nothing: the floor
    under every per-iteration figure, measured in the worker that produced them."""
    watch = GCWatch()
    samples = []
    noop_step = lambda st, mem: (st, mem)  # noqa: E731
    noop_block = lambda tree: None         # noqa: E731
    with watch:
        for _ in range(repeats):
            samples.append(run_iteration(noop_step, noop_block, None, None, watch)[2].ns)
    samples.sort()
    return float(samples[len(samples) // 2])
