"""Shared helpers: build a workload on a backend in this process and run it step by step.

Correctness tests run in-process (fast); anything about measurement runs real worker processes.
"""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.modes import get_mode
from workloads import get_workload, mnist

THREADS = 1


def build(mode: str, workload: str, params: dict, dtype: str = "float64", seed: int = 1):
    """(backend, task) for a workload built in-process."""
    B = get_mode(mode).make("cpu", dtype, THREADS)
    ctx = {"seed": seed, "data": lambda batch: mnist.standin(batch, seed)}
    wl = get_workload(workload)
    return B, wl.build(B, wl.resolve(dict(params)), ctx)


def run_steps(B, task, n: int):
    """Run ``n`` steps; return the observed values per step and the final check values."""
    st, mem = task.st, task.mem
    seen = []
    for _ in range(n):
        st, mem = task.step(st, mem)
        B.block((st, mem))
        seen.append(task.observe(st, mem))
    return seen, task.check(st, mem), (st, mem)


@pytest.fixture(scope="session")
def small_images():
    return mnist.standin(500, 1)


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
