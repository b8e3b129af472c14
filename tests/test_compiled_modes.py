"""Recompilation guard for every compiled mode: traced during warm-up, never while timing."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.modes import all_modes
from eagerbench.runner import Cell, run_cell, split_variants
from tests.conftest import build

COMPILED = [m.name for m in all_modes().values()
            if m.compiled and m.installed() and "cpu" in m.devices]


def test_every_new_mode_is_discovered():
    assert {"torch-compile", "tf-xla", "jax", "jax-jit", "torch-cudagraph"} <= set(all_modes())


@pytest.mark.parametrize("mode", COMPILED)
@pytest.mark.parametrize("workload,params", [
    ("lbfgs", {"history": 2, "batch": 200}), ("elementwise", {"size": 1000, "ops": 5}),
    ("higher-order", {"order": [1, 4], "size": 50}),
    ("custom-gradient", {"square": ["plain", "noisy"], "noise": 1.0, "batch": 32}),
    ("kfac", {"optimizer": ["kfac", "adam"], "batch": 100}),
    ("convnet", {"batch": 2, "width": 2})])
def test_no_retrace_or_recompile_while_timing(mode, workload, params):
    for rec in split_variants(run_cell(Cell(workload, params, mode, threads=1, iters=4,
                                            warmup=2), 600)):
        res = rec["result"]
        assert res["status"] == "ok", res
        assert res["traces_before_timing"] >= 1      # the counter sees the warm-up compile
        assert res["traces_during_timing"] == 0


@pytest.mark.parametrize("mode", ["jax-jit", "torch-compile", "tf-xla"])
def test_compile_counter_would_catch_a_recompile(mode):
    """Negative control: new input shapes recompile, and trace_count sees each one."""
    B, _ = build(mode, "matmul", {"size": 4}, dtype="float32")
    step = B.compile_step(lambda st, mem: ({"y": st["x"] * 2.0}, mem))
    before = B.trace_count()
    for n in (3, 5, 7):
        out, _ = step({"x": B.asarray(np.ones(n))}, {})
        B.block(out)
    assert B.trace_count() - before >= 3


def test_torch_compile_lbfgs_compiles_loss_and_gradient_only():
    B, task = build("torch-compile", "lbfgs", {"history": 2, "batch": 100})
    assert task.info["compiled"] == "loss and gradient only"
    B2, task2 = build("jax-jit", "lbfgs", {"history": 2, "batch": 100})
    assert task2.info["compiled"] == "whole l-BFGS iteration"


def test_cuda_device_is_refused_clearly_without_a_gpu():
    for mode in ("torch", "jax", "torch-cudagraph"):
        with pytest.raises(RuntimeError, match="(?i)cuda|gpu"):
            all_modes()[mode].make("cuda", "float32", 1)


def test_torch_compile_cells_compile_their_graphs_cold_whatever_ran_before(tmp_path):
    """Two identical torch-compile cells in one run: neither finds the other's graph in the
    on-disk cache (each starts from the run's template, which holds only the compiler's
    one-time set-up), so each first call is a full compile of its own graph."""
    from eagerbench.runner import run_cells

    cell = Cell("elementwise", {"size": 64, "ops": 3}, "torch-compile", threads=1, iters=2,
                warmup=1)
    records = run_cells([cell, cell], tmp_path, timeout=600, progress=False)
    for rec in records:
        assert rec["result"]["status"] == "ok", rec["result"]
        cache = rec["result"]["compile_cache"]
        assert cache["graph_misses"] >= 1 and cache["graph_hits"] == 0, cache
