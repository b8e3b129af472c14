"""The harness measures what it claims: no retracing while timing, outputs computed and kept,
threads applied, GC recorded. These run real worker processes where the claim is about them."""

from __future__ import annotations

import gc
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from eagerbench.execute.local import run_cell
from eagerbench.records.model import CellSpec as Cell
from eagerbench.report import cell_table, cellstats, summary
from eagerbench.worker.clock import GCWatch, run_block
from eagerbench.worker.loop import Entry, Settings, measure_unit
from eagerbench.worker.process import thread_env
from tests.conftest import build, record, run_steps
from tests.fake_backend import ADD, FakeBackend
from workloads import mnist


def _ok(result):
    assert result.status == "ok", result
    return result


@pytest.mark.parametrize("mode", ["torch", "tf-eager", "tf-graph"])
def test_thread_count_is_applied_in_each_worker(mode):
    res = _ok(run_cell(Cell("matmul", {"size": 32}, mode, threads=1, iters=3, warmup=1), 300))
    assert res.threads_applied["intra_op"] == 1
    assert res.threads_applied["inter_op"] == 1


def test_thread_environment_pins_every_pool():
    env = thread_env(3, "cpu")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):
        assert env[var] == "3"
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in thread_env(3, "cuda")


def test_tf_graph_lbfgs_never_retraces_while_timing():
    res = _ok(run_cell(Cell("lbfgs", {"history": 2, "batch": 200}, "tf-graph", threads=1,
                            iters=6, warmup=2), 300))
    # Two step functions (first iteration, later ones), each traced once during warm-up.
    assert res.traces_before_timing == 2
    assert res.traces_during_timing == 0
    assert len(res.timed) == 6
    assert len(res.warmup) >= 2      # and the calls that chose the block size


def test_trace_counter_would_catch_a_retrace():
    """Negative control: a Python float argument retraces tf.function, and trace_count sees it."""
    B, _ = build("tf-graph", "matmul", {"size": 4}, dtype="float32")
    step = B.compile_step(lambda st, mem: ({"y": st["x"] * st["s"]}, mem))
    before = B.trace_count()
    for s in (1.0, 2.0, 3.0):
        step({"x": B.asarray(np.ones(3)), "s": s}, {})
    assert B.trace_count() - before == 3


def _graph_ops(B, task):
    traced = B._compiled[-1]
    concrete = traced.get_concrete_function(task.st, task.mem)
    return [op.type for op in concrete.graph.get_operations()], concrete


def test_tf_graph_step_keeps_backward_pass_and_returns_gradient():
    """Dead-code defence: the traced l-BFGS iteration contains the backward pass, and the
    gradient it returns equals an independent eager gradient."""
    B, task = build("tf-graph", "lbfgs", {"history": 2, "batch": 100})
    _, _, (st, mem) = run_steps(B, task, 2)
    ops, _ = _graph_ops(B, task)
    assert ops.count("SigmoidGrad") >= 2
    assert ops.count("MatMul") >= 5       # 2 forward + 3 backward
    x = tf.constant(B.to_numpy(st["x"]))
    X = tf.constant(mnist.standin(100, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        W = tf.reshape(x, (784, 196))
        Y = tf.sigmoid(tf.matmul(tf.sigmoid(tf.matmul(X, W)), W, transpose_b=True))
        loss = tf.reduce_mean((Y - X) ** 2)
    g = tape.gradient(loss, x).numpy()
    np.testing.assert_allclose(B.to_numpy(st["g"]), g, rtol=1e-10, atol=1e-14)
    assert B.to_float(st["loss"]) == pytest.approx(float(loss), rel=1e-12)


def test_timed_iteration_blocks_on_everything_the_step_returned():
    returned, blocked = [], []

    def step(st, mem):
        out = ({"value": st["value"] + 1}, {"buf": mem["buf"]})
        returned.append(out)
        return out

    watch = GCWatch()
    with watch:
        st, mem, sample = run_block(step, blocked.append, {"value": 0}, {"buf": [0]}, 1, watch)
    assert blocked == returned           # block() saw exactly the step's outputs
    assert st == {"value": 1} and mem == {"buf": [0]}   # and they are handed on
    assert sample.ns > 0 and sample.calls == 1


def test_a_block_chains_its_calls_and_waits_once_on_the_last():
    blocked = []
    with GCWatch() as watch:
        st, _, sample = run_block(lambda st, mem: ({"value": st["value"] + 1}, mem),
                                  blocked.append, {"value": 0}, {}, 7, watch)
    assert st == {"value": 7}            # every call's output was the next call's input
    assert blocked == [({"value": 7}, {})] and sample.calls == 7


def _measure(backends, params=None, warmup=2, iters=5, min_time_s=0.0):
    """Records of the fake workload measured in one unit, one entry per backend."""
    params = params or {"size": 8, "ops": 3, "spin_us": 0}
    entries = [Entry(B, ADD, params, {"seed": 1}, [iters]) for B in backends]
    return measure_unit(entries, Settings(warmup, min_time_s))


def test_a_fast_step_is_timed_in_blocks_with_its_latency_apart():
    (res,) = _measure([FakeBackend(compiled=False)])
    assert res.block_calls > 1
    assert all(s.calls == res.block_calls for s in res.timed)
    assert len(res.latency_ns) >= 5 * len(res.timed)
    # per-call time from a block, latency from single waited calls: both about the same here
    per_call = np.median(cellstats.per_call_ms(res))
    assert 0 < per_call < 1.0
    # the steps taken advance by block + wake-up call + latency calls per sample
    steps = [s.step for s in res.timed]
    assert np.all(np.diff(steps) == res.block_calls + 1 + len(res.latency_ns) // len(steps))


def test_a_slow_step_is_timed_one_call_at_a_time():
    (res,) = _measure([FakeBackend(compiled=False)], {"size": 8, "ops": 1, "spin_us": 2000})
    assert res.block_calls == 1 and res.latency_ns == ()
    assert np.median(cellstats.per_call_ms(res)) >= 2.0


def test_the_wait_floor_is_the_backends_own_wait_on_the_real_outputs():
    B = FakeBackend(compiled=False, block_s=0.001)
    (res,) = _measure([B])
    assert res.floor_ns >= 1e6                  # the backend's block, not a no-op
    # waited on the cell's real output tree (the dispatch probes wait on their own, later)
    assert [tree for tree in B.blocked if isinstance(tree, tuple)][-1][1]["b"] is not None


def test_compile_cost_counts_every_compile_before_timing():
    """A step that compiles again in its second warm-up (as l-BFGS under jax-jit did): the cost
    is both compiles, not the first call alone."""
    B = FakeBackend(compile_s=0.05, compiles_at=(2,))
    (res,) = _measure([B])
    assert res.compiles_before_timing == 2 and res.compiles_during_timing == 0
    assert cellstats.compile_ms(res) >= 95          # 2 x 50 ms over the steady state
    assert res.warmup[0].ns / 1e6 < 95     # the first call alone would say 50 ms


def test_a_compile_while_timing_is_flagged_even_without_a_retrace():
    """JAX can recompile with no new Python trace (a committed input): the compile counter,
    not the trace counter, catches it, and the row says RECOMPILED."""
    B = FakeBackend(compiles_at=tuple(range(80, 90)), traced_compiles=False)
    (res,) = _measure([B], iters=200)
    assert res.traces_during_timing == 0
    assert res.compiles_during_timing >= 1
    (row,) = summary.cell_rows([record(_cell(), replace(res, process={"pid": 1}))])
    assert any(n.startswith("RECOMPILED") for n in cell_table.notes(row))


def _cell(mode="torch"):
    return {"workload": "matmul", "params": {"size": 8}, "mode": mode, "device": "cpu",
            "dtype": "float64", "threads": 1, "repeat": 0, "iters": 5, "warmup": 2}


def test_modes_of_one_unit_are_interleaved_and_charged_apart():
    """Eager and compiled measured together, round-robin: each gets its samples, and only the
    compiled one's record holds its compiles."""
    eager, compiled = FakeBackend(compiled=False), FakeBackend(compile_s=0.01)
    records = _measure([eager, compiled], iters=8)
    assert [len(r.timed) for r in records] == [8, 8]
    assert records[0].compiles_before_timing == 0
    assert records[1].compiles_before_timing == 1
    for r in records:   # each threaded its own state through every call it made: b = calls x 3
        assert r.check["b0"] == 3 * r.timed[-1].step


def test_gc_during_an_iteration_is_recorded():
    watch = GCWatch()
    with watch:
        _, _, quiet = run_block(lambda s, m: (s, m), lambda t: None, None, None, 1, watch)
        _, _, noisy = run_block(lambda s, m: (gc.collect(), m), lambda t: None, None, None, 1,
                                watch)
    assert quiet.gc_collections == 0
    assert noisy.gc_collections >= 1
    assert noisy.gc_ns > 0


def test_worker_records_gc_and_losses_per_iteration():
    res = _ok(run_cell(Cell("lbfgs", {"history": 2, "batch": 200}, "torch", threads=1, iters=4,
                            warmup=2), 300))
    for sample in res.warmup + res.timed:
        assert "loss" in sample.observed and sample.gc_ns >= 0
        assert sample.ns > 0
    losses = [s.observed["loss"] for s in res.warmup + res.timed]
    assert losses[-1] < losses[0]
    assert "stand-in" in res.data_source


def test_gc_off_and_freeze_are_applied_during_timing():
    states = {}
    for mode in ("on", "off", "freeze"):
        res = _ok(run_cell(Cell("matmul", {"size": 16}, "torch", threads=1, iters=3, warmup=1,
                                gc=mode), 300))
        states[mode] = res.gc_state
    assert states["on"] == {"enabled": True, "frozen_objects": 0}
    assert states["off"]["enabled"] is False
    assert states["freeze"]["enabled"] is True and states["freeze"]["frozen_objects"] > 0


def test_values_checked_after_the_warm_up_are_kept_only_where_modes_must_agree():
    """The agreement check reads ``check`` after the warm-up; a task whose values depend on
    random numbers a compiler may draw differently (comparable=False) records none."""
    random = replace(ADD, build=lambda B, p, c: replace(ADD.build(B, p, c), comparable=False))
    params = {"size": 8, "ops": 3, "spin_us": 0}
    entries = [Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3]),
               Entry(FakeBackend(compiled=False), random, params, {"seed": 1}, [3])]
    checked, skipped = measure_unit(entries, Settings(2, 0.0))
    assert checked.warm_check and checked.warm_check != checked.check
    assert skipped.warm_check == {}
