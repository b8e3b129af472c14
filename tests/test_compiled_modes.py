"""Recompilation guard for every compiled mode: traced during warm-up, never while timing."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.execute.runner import Cell
from eagerbench.frameworks.modes import all_modes
from tests.conftest import build


def test_every_new_mode_is_discovered():
    assert {"torch-compile", "tf-xla", "jax", "jax-jit", "torch-cudagraph"} <= set(all_modes())


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

    from eagerbench.report import cellstats, summary
    from tests.conftest import run_into

    cell = Cell("elementwise", {"size": 64, "ops": 3}, "torch-compile", threads=1, iters=2,
                warmup=1)
    # the second cell makes its vectors as the first did (the same small programs, compiled
    # again after the reset between cells): it must compile them, not load the first's
    # as planned: the why phase in the first process only (it once split the shared cache, and
    # the second process then found none of the first's graphs: every one missed)
    cells = [replace(cell, why=True), replace(cell, params={"size": 64, "ops": 4}, why=True),
             replace(cell, repeat=1, why=False)]
    records = run_into(cells, tmp_path, timeout=600)
    assert all(r.result.ok for r in records), records
    first, other, again = (r.result for r in records)
    assert first.process["pid"] == other.process["pid"] != again.process["pid"]
    for res in (first, other):
        assert res.compile_cache["graph_misses"] >= 1
        assert res.compile_cache["graph_hits"] == 0, res.compile_cache
        assert res.compiles_before_timing >= 1
    assert again.compile_cache["graph_hits"] >= 1
    assert again.compile_cache["graph_misses"] == 0, again.compile_cache
    row = next(r for r in summary.cell_rows(records) if r.params == "size=64 ops=3")
    assert row.compile_ms == pytest.approx(cellstats.compile_ms(first))
    assert row.first_call_ms == pytest.approx(first.warmup[0].ns / 1e6)


def test_torch_compile_cells_with_the_same_graphs_both_compile_cold(tmp_path):
    """Two l-BFGS cells that differ only in history compile the same loss-and-gradient graphs:
    in the first process each compiles them (each unit starts from the template's cache, its
    graphs merged into the shared cache after), and a later repeat loads them. Before, the
    second cell loaded the first's graphs and had no compile cost at all."""
    from dataclasses import replace

    from eagerbench.report import summary
    from tests.conftest import run_into

    cell = Cell("lbfgs", {"history": 2, "batch": 100}, "torch-compile", threads=1, iters=2,
                warmup=2)
    cells = [cell, replace(cell, params={"history": 3, "batch": 100}), replace(cell, repeat=1)]
    records = run_into(cells, tmp_path, timeout=600)
    assert all(r.result.ok for r in records), records
    first, other, again = (r.result for r in records)
    for res in (first, other):
        assert res.compile_cache["graph_hits"] == 0, res.compile_cache
        assert res.compile_cache["graph_misses"] >= 1, res.compile_cache
        assert res.compile_cache["cold_unit"] == 1
    assert again.compile_cache["cold_unit"] == 0
    assert again.compile_cache["graph_hits"] >= 1, again.compile_cache
    rows = summary.cell_rows(records)
    assert all(np.isfinite(r.compile_ms) for r in rows), [(r.compile_ms, r.compile_note)
                                                          for r in rows]
    assert not any(r.compile_note.startswith("not measured") for r in rows)


def test_jax_uses_the_runs_own_cache_after_the_first_process_never_the_users(tmp_path,
                                                                            monkeypatch):
    """JAX's persistent cache is off in a setting's first process, whatever the user set:
    there an interleaved sweep's variants and a cell after another would load identical
    programs their own process had compiled, and no process would compile cold. Later
    processes load what the second one cached (in the run's folder, never the user's); the
    compile cost in the table is the first process's."""
    from eagerbench.report import summary
    from tests.conftest import run_into

    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "users-cache"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    cells = [Cell("higher-order", {"order": [1, 2], "size": 8}, "jax-jit", threads=1, iters=2,
                  warmup=1, repeat=repeat) for repeat in (0, 1, 2)]
    records = run_into(cells, tmp_path / "run", timeout=600)
    assert all(r.result.ok for r in records), records
    assert not (tmp_path / "users-cache").exists()
    by_repeat = {r.spec.repeat: r.result for r in records}
    assert by_repeat[0].compile_cache == {"graph_hits": 0, "graph_misses": 0, "cold_unit": 1}
    assert by_repeat[1].compile_cache["graph_misses"] >= 1, by_repeat[1].compile_cache
    assert by_repeat[2].compile_cache["graph_hits"] >= 1, by_repeat[2].compile_cache
    costs = [r.compile_ms for r in summary.cell_rows(records)]
    assert all(np.isfinite(c) and c > 0 for c in costs), costs
