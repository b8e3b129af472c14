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


def record(cell, result: dict):
    """A typed record from a cell (a spec or its JSON) and a worker-shaped result, built the
    way the runner builds them (facts included)."""
    from eagerbench.results import CellSpec
    from eagerbench.runner import to_records

    spec = cell if isinstance(cell, CellSpec) else CellSpec.from_json(cell)
    return to_records(spec, result)[0]


def run_into(cells, folder, timeout: float):
    """Run cells into ``folder``'s raw.jsonl (a header first), as ``eagerbench run`` does;
    returns the typed records."""
    from pathlib import Path

    from eagerbench.results import RAW, RunHeader, RunWriter
    from eagerbench.runner import run_cells

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with RunWriter(folder / RAW, RunHeader.new({})) as writer:
        return run_cells(cells, writer, timeout, progress=False)


def eagerbench_cli(*args, env=None, background=False):
    """`eagerbench ARGS` in a subprocess (``background``: started, not waited for)."""
    import os
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "eagerbench.cli", *map(str, args)]
    full_env = {**os.environ, **(env or {})}
    if background:
        # A shell's background job (make test run with &) ignores SIGINT, and the child would
        # inherit that: give it the default back, so that Python turns SIGINT into an interrupt.
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full_env, preexec_fn=lambda: signal.signal(
                                    signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env)


def one_line_error(proc, *needles):
    """The command failed with exactly one `eagerbench: error:` line holding ``needles``, and
    no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert any(all(n in line for n in needles) for line in lines), proc.stderr
    errors = [line for line in lines if line.startswith("eagerbench: error:")]
    assert len(errors) == 1, proc.stderr
