"""Recompilation guard for every compiled mode: traced during warm-up, never while timing."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from eagerbench.modes import all_modes
from eagerbench.runner import Cell, to_records
from tests.conftest import build

COMPILED = [m.name for m in all_modes().values()
            if m.compiled and m.installed() and "cpu" in m.devices]


def test_every_new_mode_is_discovered():
    assert {"torch-compile", "tf-xla", "jax", "jax-jit", "torch-cudagraph"} <= set(all_modes())


GRID = [("lbfgs", {"history": 2, "batch": 200}), ("elementwise", {"size": 1000, "ops": 5}),
        ("higher-order", {"order": [1, 4], "size": 50}),
        ("custom-gradient", {"square": ["plain", "noisy"], "noise": 1.0, "batch": 32}),
        ("kfac", {"optimizer": ["kfac", "adam"], "batch": 100}),
        # Width 8: torch.compile (Inductor, PyTorch 2.13) corrupts the heap on this convnet at
        # widths 2 and 4 on an AVX2 CPU (SIGABRT or SIGSEGV); widths from 8 run.
        ("convnet", {"batch": 2, "width": 8})]


# Tests parametrized by mode form one group per mode: make test's two workers share the modes.
GROUP_BY_PARAM = "mode"


@functools.lru_cache(maxsize=None)
def measured_in_one_worker(mode: str) -> dict:
    """Every workload in one compiled mode, its cells in one worker (as a run does)."""
    from eagerbench.executors.local import run_batch

    cells = [Cell(w, params, mode, threads=1, iters=4, warmup=2, why=False)   # no probes
             for w, params in GRID]
    return {cell.workload: to_records(cell, result) for cell, result in run_batch(cells, 900)}


@pytest.mark.parametrize("mode", COMPILED)
@pytest.mark.parametrize("workload", [w for w, _ in GRID])
def test_no_retrace_or_recompile_while_timing(mode, workload):
    for rec in measured_in_one_worker(mode)[workload]:
        res = rec.result
        assert res.ok, res
        assert res.traces_before_timing >= 1      # the counter sees the warm-up compile
        assert res.compiles_before_timing >= 1
        assert res.traces_during_timing == 0 and res.compiles_during_timing == 0


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


def test_torch_compile_cells_compile_cold_and_later_repeats_reuse_their_graphs(tmp_path):
    """In the first repeat every cell compiles cold: no graph another cell or an earlier run
    compiled is found, in memory or on disk (the process starts from the run's template, which
    holds only the compiler's one-time set-up). A later repeat's process reuses the graphs the
    first compiled: the same code runs in the steady state, and the compile cost in the table
    comes from the cold process alone."""
    from dataclasses import replace

    from eagerbench import tables
    from tests.conftest import run_into

    cell = Cell("elementwise", {"size": 64, "ops": 3}, "torch-compile", threads=1, iters=2,
                warmup=1)
    # the second cell makes its vectors as the first did (the same small programs, compiled
    # again after the reset between cells): it must compile them, not load the first's
    cells = [cell, replace(cell, params={"size": 64, "ops": 4}), replace(cell, repeat=1)]
    records = run_into(cells, tmp_path, timeout=600)
    assert all(r.result.ok for r in records), records
    first, other, again = (r.result for r in records)
    assert first.process["pid"] == other.process["pid"] != again.process["pid"]
    for res in (first, other):
        assert res.compile_cache["graph_misses"] >= 1
        assert res.compile_cache["graph_hits"] == 0, res.compile_cache
        assert res.compiles_before_timing >= 1
    assert again.compile_cache["graph_hits"] >= 1
    row = tables.cells_table(records).set_index("params").loc["size=64 ops=3"]
    assert row["compile_ms"] == pytest.approx(tables.compile_ms(first))
    assert row["first_call_ms"] == pytest.approx(first.warmup[0].ns / 1e6)


def test_jax_compiles_every_program_in_every_process_even_with_a_users_cache(tmp_path,
                                                                           monkeypatch):
    """JAX's persistent cache stays off in the workers, whatever the user set: with it on, an
    interleaved sweep's variants and a cell after another loaded identical programs their own
    process had compiled, no process compiled cold, and compile costs went missing."""
    from eagerbench import tables
    from tests.conftest import run_into

    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "users-cache"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    cells = [Cell("higher-order", {"order": [1, 2], "size": 8}, "jax-jit", threads=1, iters=2,
                  warmup=1, repeat=repeat) for repeat in (0, 1)]
    records = run_into(cells, tmp_path / "run", timeout=600)
    assert all(r.result.ok for r in records), records
    assert not (tmp_path / "users-cache").exists()
    table = tables.cells_table(records)
    assert table["compile_ms"].notna().all() and (table["compile_ms"] > 0).all(), table
