"""The harness measures what it claims: no retracing while timing, outputs computed and kept,
threads applied, GC recorded. These run real worker processes where the claim is about them."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import tensorflow as tf

from eagerbench.runner import Cell, run_cell, thread_env
from eagerbench.timer import GCWatch, run_iteration
from tests.conftest import build, run_steps
from workloads import mnist


def _ok(record):
    assert record["result"]["status"] == "ok", record["result"]
    return record["result"]


@pytest.mark.parametrize("mode", ["torch", "tf-eager", "tf-graph"])
def test_thread_count_is_applied_in_each_worker(mode):
    res = _ok(run_cell(Cell("matmul", {"size": 32}, mode, threads=1, iters=3, warmup=1), 300))
    assert res["threads_applied"]["intra_op"] == 1
    assert res["threads_applied"]["inter_op"] == 1


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
    assert res["traces_before_timing"] == 2
    assert res["traces_during_timing"] == 0
    assert len(res["timed"]) == 6
    assert len(res["warmup"]) == 2


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
        st, mem, sample = run_iteration(step, blocked.append, {"value": 0}, {"buf": [0]}, watch)
    assert blocked == returned           # block() saw exactly the step's outputs
    assert st == {"value": 1} and mem == {"buf": [0]}   # and they are handed on
    assert sample.ns > 0


def test_gc_during_an_iteration_is_recorded():
    watch = GCWatch()
    with watch:
        _, _, quiet = run_iteration(lambda s, m: (s, m), lambda t: None, None, None, watch)
        _, _, noisy = run_iteration(lambda s, m: (gc.collect(), m), lambda t: None, None, None,
                                    watch)
    assert quiet.gc_collections == 0
    assert noisy.gc_collections >= 1
    assert noisy.gc_ns > 0


def test_worker_records_gc_and_losses_per_iteration():
    res = _ok(run_cell(Cell("lbfgs", {"history": 2, "batch": 200}, "torch", threads=1, iters=4,
                            warmup=2), 300))
    for sample in res["warmup"] + res["timed"]:
        assert {"ns", "gc_collections", "gc_ns", "loss"} <= set(sample)
        assert sample["ns"] > 0
    losses = [s["loss"] for s in res["warmup"] + res["timed"]]
    assert losses[-1] < losses[0]
    assert "stand-in" in res["data_source"]


def test_gc_off_and_freeze_are_applied_during_timing():
    states = {}
    for mode in ("on", "off", "freeze"):
        res = _ok(run_cell(Cell("matmul", {"size": 16}, "torch", threads=1, iters=3, warmup=1,
                                gc=mode), 300))
        states[mode] = res["gc_state"]
    assert states["on"] == {"enabled": True, "frozen_objects": 0}
    assert states["off"]["enabled"] is False
    assert states["freeze"]["enabled"] is True and states["freeze"]["frozen_objects"] > 0
