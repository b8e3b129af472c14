"""Each backend takes its framework's fast path for the same math, and pays for nothing the
others don't: donated buffers reused, no reads thrown away, no host syncs one framework makes
and the others don't, fused kernels where the framework has them."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.frameworks.modes import all_modes, get_mode
from tests.conftest import build, run_steps

MODES = [m.name for m in all_modes().values() if m.installed() and "cpu" in m.devices]
EAGER = [m for m in MODES if not get_mode(m).compiled]


def test_jax_jit_hands_a_steps_non_array_state_to_it_as_it_is():
    """A step's ``st`` may hold what is no array (a size, an optimizer's functions, a module's
    graph): under jax-jit these are static, once traced, not a tracer that cannot be hashed
    or a function jit refuses; a new value compiles again."""
    import jax.numpy as jnp

    B = get_mode("jax-jit").make("cpu", "float32", 1)
    transform = (lambda x: x * 2.0, lambda x: x + 1.0)   # an optax-like pair of functions

    def step(st, mem):
        scale, shift = st["transform"]
        return {**st, "w": shift(scale(st["w"])) + jnp.zeros(st["n"], st["w"].dtype)}, mem

    compiled = B.compile_step(step)
    st = {"w": B.asarray(np.zeros(3)), "n": 3, "transform": transform}
    for _ in range(2):
        st, _ = compiled(st, {})
    assert st["n"] == 3 and st["transform"] == transform   # the same functions
    assert np.allclose(B.to_numpy(st["w"]), 3.0) and B.trace_count() == 1
    st, _ = compiled({**st, "w": B.asarray(np.zeros(4)), "n": 4}, {})
    assert B.trace_count() == 2


def test_jax_jit_updates_the_donated_buffer_in_place_and_passes_inputs_through():
    """Finding 1: the element-wise step returned its input ``a`` ahead of the buffer ``b``; XLA
    gave ``b``'s donated buffer to ``a`` and allocated a new ``b``: a copy every step."""
    B, task = build("jax-jit", "elementwise", {"size": 4096, "ops": 3}, dtype="float32")
    st, mem = task.st, task.mem
    a, b = st["a"].unsafe_buffer_pointer(), mem["b"].unsafe_buffer_pointer()
    for _ in range(3):
        st, mem = task.step(st, mem)
    B.block((st, mem))
    assert mem["b"].unsafe_buffer_pointer() == b           # updated in place
    assert st["a"].unsafe_buffer_pointer() == a            # handed back, not copied
    assert B.donation() == {"donated": 1, "reused": 1, "copied_bytes": 0}
    assert float(mem["b"][0]) == 9 / 1024


@pytest.mark.parametrize("mode", ["tf-graph", "tf-xla"])
def test_tf_graphs_hand_back_the_inputs_a_step_returns_unchanged(mode):
    """XLA copies an input it returns: tf-xla's product of two 1024 x 1024 inputs took 12.2 ms
    with them returned and 9.9 ms without, and every element-wise step copied its ``a``. As
    jax-jit's, they are handed back outside the graph; what the step computes is not."""
    B, task = build(mode, "matmul", {"size": 8}, dtype="float32")
    st, mem = task.step(task.st, task.mem)
    st, mem = task.step(st, mem)
    assert st["a"] is task.st["a"] and st["b"] is task.st["b"]
    assert st["c"] is not task.st["c"]
    assert np.allclose(B.to_numpy(st["c"]), B.to_numpy(task.st["a"]) @ B.to_numpy(task.st["b"]),
                       atol=1e-5)


def test_jax_jit_counts_a_recompile_that_makes_no_new_trace():
    """Finding 5: a committed input recompiles the same trace; the trace counter misses it."""
    import jax

    B, _ = build("jax-jit", "matmul", {"size": 4}, dtype="float32")
    step = B.compile_step(lambda st, mem: ({"y": st["x"] * 2.0}, mem))
    x = np.ones(3, np.float32)
    B.block(step({"x": x}, {}))                                      # uncommitted
    traces, compiles = B.trace_count(), B.compile_events()["count"]
    B.block(step({"x": jax.device_put(x, jax.devices()[0])}, {}))    # committed: recompiles
    assert B.trace_count() == traces
    assert B.compile_events()["count"] == compiles + 1
    assert B.compile_events()["seconds"] > 0


@pytest.mark.parametrize("mode", ["torch-compile", "tf-graph", "tf-xla"])
def test_other_compiled_modes_count_their_recompiles(mode):
    B, _ = build(mode, "matmul", {"size": 4}, dtype="float32")
    step = B.compile_step(lambda st, mem: ({"y": st["x"] * 2.0}, mem))
    before = B.compile_events()["count"]
    for n in (3, 5):
        B.block(step({"x": B.asarray(np.ones(n))}, {}))
    assert B.compile_events()["count"] - before == 2


def test_tf_variable_updates_build_no_read_that_is_thrown_away():
    """Finding 2: ``assign_add`` reads the variable back unless ``read_value=False``, and
    ``scatter_update`` always does; every TensorFlow buffer update now skips that read."""
    from tensorflow.python.ops import resource_variable_ops

    reads = []
    original = resource_variable_ops.BaseResourceVariable._lazy_read
    resource_variable_ops.BaseResourceVariable._lazy_read = \
        lambda self, op: reads.append(op) or original(self, op)
    try:
        for workload, params in (("elementwise", {"size": 16, "ops": 5}),
                                 ("lbfgs", {"history": 3, "batch": 50})):
            B, task = build("tf-eager", workload, params)
            run_steps(B, task, 4)
    finally:
        resource_variable_ops.BaseResourceVariable._lazy_read = original
    assert reads == []


def test_tf_batch_norm_uses_the_fused_kernel_and_matches_the_definition():
    """Finding 6: the convnet's TensorFlow batch norm was moments + batch_normalization while
    PyTorch used its fused kernel. In float32 it is now FusedBatchNormV3, in every TF mode."""
    import tensorflow as tf

    B = get_mode("tf-graph").make("cpu", "float32", 1)
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 3)).astype(np.float32)
    g, b = np.array([1.0, 2.0, 0.5], np.float32), np.array([0.0, 0.1, -0.2], np.float32)
    f = tf.function(lambda x: B.batch_norm(x, tf.constant(g), tf.constant(b)))
    ops = [op.type for op in f.get_concrete_function(tf.constant(x)).graph.get_operations()]
    assert "FusedBatchNormV3" in ops and "Mean" not in ops
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    want = (x - mean) / np.sqrt(var + 1e-5) * g + b
    np.testing.assert_allclose(f(tf.constant(x)).numpy(), want, rtol=1e-4, atol=1e-5)


def _torch_host_syncs(fn) -> int:
    """aten ops that copy a device value to the host (``.item()``, ``bool()``, and the error
    check of ``linalg.solve``) while ``fn`` runs."""
    from eagerbench.frameworks.backends.cudagraph import OpTrail

    class Syncs(OpTrail):
        def __init__(self):
            super().__init__()
            self.syncs = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if str(func).startswith(("aten._local_scalar_dense", "aten._linalg_check_errors")):
                self.syncs.append(str(func))
            return super().__torch_dispatch__(func, types, args, kwargs)

    with Syncs() as mode:
        fn()
    return len(mode.syncs)


def test_torch_lbfgs_syncs_once_per_iteration_like_the_other_eager_ports():
    """Finding 7: ``axpy`` read alpha back with ``.item()``, two host syncs per stored pair,
    which the TF and JAX ports don't make. Now the only sync is the curvature test."""
    B, task = build("torch", "lbfgs", {"history": 4, "batch": 60})
    _, _, (st, mem) = run_steps(B, task, 6)            # the memory holds 4 pairs
    state = {"st": st, "mem": mem}

    def one_iteration():
        state["st"], state["mem"] = task.step(state["st"], state["mem"])

    assert _torch_host_syncs(one_iteration) == 1


@pytest.mark.parametrize("mode", MODES)
def test_lbfgs_host_syncs_are_the_same_in_every_eager_mode_and_none_in_graphs(mode):
    B, task = build(mode, "lbfgs", {"history": 3, "batch": 60})
    st, mem, reads = task.st, task.mem, []
    for _ in range(5):
        before = B.host_reads
        st, mem = task.step(st, mem)
        B.block((st, mem))
        reads.append(B.host_reads - before)
    whole_graph = B.compiled and B.graph_control_flow
    assert reads[2:] == ([0] * 3 if whole_graph else [1] * 3)   # the curvature test, or none


def test_torch_kfac_step_makes_no_host_sync_so_cuda_graphs_can_capture_it():
    """Finding 10: ``linalg.solve`` checks its input on the host, which fails CUDA-graph
    capture; the KFAC step now solves with ``solve_ex(check_errors=False)``."""
    B, task = build("torch", "kfac", {"optimizer": "kfac", "batch": 40})
    assert _torch_host_syncs(lambda: task.step(task.st, task.mem)) == 0


def test_an_uncapturable_op_is_named():
    """What the record of a step CUDA graphs cannot capture says: the aten op it failed in."""
    import torch

    from eagerbench.frameworks.backends.cudagraph import OpTrail

    trail = OpTrail()
    with pytest.raises(RuntimeError) as failure, trail:
        torch.linalg.solve(torch.zeros(2, 2), torch.ones(2))
    assert trail.describe(failure.value).startswith("at aten._linalg_check_errors")


@pytest.mark.parametrize("mode", ["torch-compile", "jax-jit"])
def test_reset_makes_the_next_cell_compile_its_own_graph(mode):
    """Cells share a worker process: after ``reset`` the same program compiles again, so no
    cell's compile cost is hidden by a graph another cell left in memory."""
    B, _ = build(mode, "matmul", {"size": 4}, dtype="float32")

    def compiles_of_a_fresh_step():
        step = B.compile_step(lambda st, mem: ({"y": st["x"] * 2.0}, mem))
        before = B.compile_events()["count"]
        B.block(step({"x": B.asarray(np.ones(5))}, {}))
        return B.compile_events()["count"] - before

    assert compiles_of_a_fresh_step() >= 1
    B.reset()
    assert compiles_of_a_fresh_step() >= 1


def test_the_element_wise_check_never_reads_a_tf_variable_sparsely(monkeypatch):
    """The check runs after the warm-up too; a sparse read (ResourceGather) would put the
    variable in copy-on-read mode, and every later add would copy it whole: published TF
    element-wise times at 2^28 were 7.6x slower with it."""
    from tensorflow.python.ops import resource_variable_ops

    B, task = build("tf-eager", "elementwise", {"size": 64, "ops": 2}, dtype="float32")
    monkeypatch.setattr(resource_variable_ops.BaseResourceVariable, "sparse_read",
                        lambda *a, **k: pytest.fail("sparse read in a check"))
    st, mem = task.step(task.st, task.mem)
    assert task.check(st, mem) == {"b0": 2.0 / 1024}


@pytest.mark.parametrize("mode", MODES)
def test_vectors_made_by_the_framework_hold_the_value_and_update_in_place(mode):
    """``full`` and ``buffer_full`` make the element-wise vectors in the framework (a 1 GiB copy
    from NumPy took TensorFlow 1.7 s each): the values are exact and the buffer takes adds."""
    B = get_mode(mode).make("cpu", "float32", 1)
    a, b = B.full(5, 0.25), B.buffer_full(5, 0.0)
    assert B.to_numpy(a).dtype == np.float32
    np.testing.assert_array_equal(B.to_numpy(a), np.full(5, 0.25, np.float32))
    b = B.add_inplace(B.add_inplace(b, a), a)
    np.testing.assert_array_equal(B.to_numpy(b), np.full(5, 0.5, np.float32))
    if mode.startswith("tf"):
        import tensorflow as tf

        assert isinstance(b, tf.Variable)
