"""Timing calls of a step: one call waited on, or a block of calls with one wait at the end.

``timeit`` disables the garbage collector; eagerbench leaves it as the user's program would run
(unless ``--gc off|freeze`` says otherwise) and records every collection that lands inside a
timed sample, so a spike can be told apart from a slow step.

A step under ``BLOCK_BELOW_NS`` is timed in blocks of ``calls`` back-to-back calls with one wait
at the end (torch.utils.benchmark's ``blocked_autorange``): the wait, a few microseconds, would
otherwise be a large share of each sample. Its latency (one call waited on, as a caller that
uses every result sees it) is timed apart.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from eagerbench.records.model import Sample

Step = Callable[[Any, Any], tuple[Any, Any]]   # st, mem = step(st, mem)

BLOCK_BELOW_NS = 1_000_000      # steps faster than 1 ms are timed in blocks
BLOCK_TARGET_NS = 5_000_000     # a block lasts about 5 ms: the wait is then under 0.1% of it
MAX_BLOCK_CALLS = 10_000


@dataclass
class GCWatch:
    """Counts collections and their duration through ``gc.callbacks`` while installed."""

    collections: int = 0
    ns: int = 0
    _start: int = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.collections += 1
            self.ns += time.perf_counter_ns() - self._start

    def __enter__(self) -> "GCWatch":
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def run_block(step: Step, block: Callable[[Any], None], st: Any, mem: Any, calls: int,
              watch: GCWatch) -> tuple[Any, Any, Sample]:
    """Run ``st, mem = step(st, mem)`` ``calls`` times, then wait for what the last call returned.

    Each call's outputs are the next call's inputs, so nothing computed is dead, and the clock
    stops only after ``block`` has drained the device and any asynchronous queue: lazy or
    asynchronous execution cannot end the measurement early.
    """
    c0, g0 = watch.collections, watch.ns
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        st, mem = step(st, mem)
    block((st, mem))
    t1 = time.perf_counter_ns()
    return st, mem, Sample(t1 - t0, calls, watch.collections - c0, watch.ns - g0)


def time_calls(call: Callable[[], Any], calls: int, wait: Callable[[Any], Any]) -> int:
    """Nanoseconds of ``calls`` calls of ``call`` and one ``wait`` on the last one's result:
    the clock of every probe, floor and machine limit (a step's state is chained by
    ``run_block`` instead)."""
    t0 = time.perf_counter_ns()
    for _ in range(calls - 1):
        call()
    wait(call())
    return time.perf_counter_ns() - t0


def block_size(call_ns: float) -> int:
    """Calls per timed sample for a step whose single waited call takes ``call_ns``."""
    if call_ns >= BLOCK_BELOW_NS:
        return 1
    return int(min(MAX_BLOCK_CALLS, max(2, math.ceil(BLOCK_TARGET_NS / max(call_ns, 1.0)))))


def wait_floor_ns(block: Callable[[Any], None], tree: Any, repeats: int = 200) -> float:
    """Median cost of the clock and of ``block`` on an output tree that is already computed:
    the floor under each sample (JAX's ``block_until_ready`` walks the whole tree)."""
    block(tree)
    samples = sorted(time_calls(lambda: tree, 1, block) for _ in range(repeats))
    return float(samples[len(samples) // 2])
