"""The no-recompile guard's grid: every workload in one compiled mode, its cells in one worker
as a run has them, measured once per test process (each framework's file asks for its modes)."""

from __future__ import annotations

import functools

import pytest

from eagerbench.execute.runner import Cell, to_records
from eagerbench.frameworks.modes import all_modes

COMPILED = [m.name for m in all_modes().values()
            if m.compiled and m.installed() and "cpu" in m.devices]

GRID = [("lbfgs", {"history": 2, "batch": 200}), ("elementwise", {"size": 1000, "ops": 5}),
        ("higher-order", {"order": [1, 4], "size": 50}),
        ("custom-gradient", {"square": ["plain", "noisy"], "noise": 1.0, "batch": 32}),
        ("kfac", {"optimizer": ["kfac", "adam"], "batch": 100}),
        # Width 8: torch.compile (Inductor, PyTorch 2.13) corrupts the heap on this convnet at
        # widths 2 and 4 on an AVX2 CPU (SIGABRT or SIGSEGV); widths from 8 run.
        ("convnet", {"batch": 2, "width": 8})]


@functools.lru_cache(maxsize=None)
def measured_in_one_worker(mode: str) -> dict:
    """Every workload in one compiled mode, its cells in one worker (as a run does)."""
    from eagerbench.execute.local import run_batch

    cells = [Cell(w, params, mode, threads=1, iters=4, warmup=2, why=False)   # no probes
             for w, params in GRID]
    return {cell.workload: to_records(cell, result) for cell, result in run_batch(cells, 900)}


def assert_compiled_only_in_warm_up(mode: str, workload: str) -> None:
    """Traced and compiled in the warm-up, never while timing."""
    for rec in measured_in_one_worker(mode)[workload]:
        res = rec.result
        assert res.ok, res
        assert res.traces_before_timing >= 1      # the counter sees the warm-up compile
        assert res.compiles_before_timing >= 1
        assert res.traces_during_timing == 0 and res.compiles_during_timing == 0


def no_recompile_test(prefix: str):
    """The guard's test over the compiled modes whose names start with ``prefix``."""
    @pytest.mark.parametrize("mode", [m for m in COMPILED if m.startswith(prefix)])
    @pytest.mark.parametrize("workload", [w for w, _ in GRID])
    def test_no_retrace_or_recompile_while_timing(mode, workload):
        assert_compiled_only_in_warm_up(mode, workload)

    return test_no_retrace_or_recompile_while_timing
