"""A NumPy backend and toy workloads for testing the harness without a framework.

The fake backend runs steps as plain NumPy calls and lets a test plant what a real framework
does to a measurement: a slow wait (``block_s``), a compile in a chosen call (``compiles_at``),
a traced or untraced recompile.
"""

from __future__ import annotations

import mmap
import time

import numpy as np

from eagerbench.frameworks.backends.base import Backend
from eagerbench.workload import Param, Task, Work, Workload


class FakeBackend(Backend):
    framework = "numpy"

    def __init__(self, compiled: bool = True, block_s: float = 0.0, compile_s: float = 0.0,
                 compiles_at: tuple = (), traced_compiles: bool = True):
        super().__init__("cpu", "float64", compiled)
        self.block_s, self.compile_s = block_s, compile_s
        self.compiles_at, self.traced_compiles = set(compiles_at), traced_compiles
        self._traces = self._compiles = 0
        self.blocked: list = []

    # what the harness asks of every backend
    def threads(self) -> dict:
        return {"intra_op": 1, "inter_op": 1}

    def asarray(self, array):
        return np.asarray(array, dtype=float)

    def to_numpy(self, tensor):
        return np.asarray(tensor)

    def block(self, tree) -> None:
        self.blocked.append(tree)
        if self.block_s:
            time.sleep(self.block_s)

    def compile_step(self, fn, name: str = "step"):
        if not self.compiled:
            return fn

        calls = [0]    # each compiled function's own (the dispatch probe's are not the step's)

        def step(st, mem):
            calls[0] += 1
            if calls[0] == 1 or calls[0] in self.compiles_at:
                time.sleep(self.compile_s)      # a compile: slow, and counted
                self._compiles += 1
                self._traces += self.traced_compiles or calls[0] == 1
            return fn(st, mem)

        return step

    def trace_count(self) -> int:
        return self._traces

    def compile_events(self) -> dict:
        return {"count": self._compiles, "seconds": None}

    def tanh(self, x):   # the worker's compiler warm-up runs a tanh
        return np.tanh(x)


# The rest of the interface is not needed by the toy workloads.
for _name in list(FakeBackend.__abstractmethods__):
    setattr(FakeBackend, _name, lambda self, *a, _n=_name, **k: (_ for _ in ()).throw(
        NotImplementedError(_n)))
FakeBackend.__abstractmethods__ = frozenset()


def _touch_small_pages(nbytes: int) -> None:
    """Fault ``nbytes`` of fresh 4 KiB pages (a transparent huge page would take 512 at once),
    then hand them back."""
    area = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        area.madvise(mmap.MADV_NOHUGEPAGE)
    view = np.frombuffer(area, dtype=np.uint8)
    view[::4096] = 1
    del view
    area.close()


def _add_build(B, params: dict, ctx: dict) -> Task:
    """``b += a`` ``ops`` times per step, with an optional busy wait per call (a slower step)."""
    spin = params.get("spin_us", 0) / 1e6
    fresh = params.get("fresh_mib", 0) << 20
    calls = {"steps": 0}

    def chain(st, mem):
        calls["steps"] += 1
        # past glibc's largest mmap threshold (32 MiB): fresh pages in every call that makes it
        if fresh and calls["steps"] % params.get("fresh_every", 1) == 0:
            if params.get("small_pages"):
                _touch_small_pages(fresh)
            else:
                np.ones(fresh, dtype=np.uint8)
        b = mem["b"]
        for _ in range(params["ops"]):
            b = b + st["a"]
        if spin:
            end = time.perf_counter() + spin
            while time.perf_counter() < end:
                pass
        return st, {"b": b}

    return Task(step=B.compile_step(chain), st={"a": np.ones(params["size"])},
                mem={"b": np.zeros(params["size"])},
                observe=lambda st, mem: {"b0": float(mem["b"][0])},
                check=lambda st, mem: {"b0": float(mem["b"][0])}, info=calls)


ADD = Workload(
    name="fake-add", summary="b += a in NumPy",
    params=(Param("size", (8,), "vector length"), Param("ops", (3,), "adds per step"),
            Param("spin_us", (0,), "busy wait per call, microseconds", minimum=0),
            Param("fresh_mib", (0,), "MiB allocated afresh per call", minimum=0),
            Param("fresh_every", (1,), "only every this many calls allocate", minimum=1),
            Param("small_pages", (0,), "1: allocate afresh in 4 KiB pages only", minimum=0)),
    build=_add_build, work=lambda params, dtype, observed: Work(ops=params["ops"]),
    iters=lambda params: 5)
