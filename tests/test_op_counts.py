"""The ops a step dispatches, counted per framework: how many, their sizes, in place or into new
tensors, and the counted step every mode of a unit takes (so that twins still agree)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from eagerbench.worker.why import probes
from tests.conftest import build
from tests.fake_backend import FakeBackend
from tests.why_cells import ELEMENTWISE


@pytest.mark.parametrize("mode", ["torch", "torch-compile", "tf-eager", "tf-graph", "jax",
                                  "jax-jit"])
def test_each_framework_counts_the_ops_a_known_step_dispatches(mode):
    """``b += a`` five times: five dispatches of the eager program, in every framework (a
    compiled mode's count is its eager program's, run once eagerly); in PyTorch and TensorFlow
    all five update ``b`` in place, in JAX none can: each of its adds writes a new 40-byte
    array. Each op's size is its vectors' (10 elements; a TensorFlow variable's handle is not
    a tensor of elements)."""
    B, task = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
    count, (st, mem) = B.count_ops(B.eager_step(task.step), task.st, task.mem)
    B.block((st, mem))
    jax = B.framework == "jax"
    assert count == {"ops": 5, "in_place": 0 if jax else 5, "sizes": {10: 5},
                     "fresh": {40: 5} if jax else {}}


@pytest.mark.parametrize("mode", ["torch", "tf-eager", "jax"])
def test_an_ops_size_is_its_largest_operand_or_result(mode):
    """A product of a 3 x 4 and a 4 x 5 matrix has 15 elements out, 12 and 20 in: size 20,
    and 60 bytes written to a new tensor."""
    B, _ = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
    a, b = B.asarray(np.ones((3, 4))), B.asarray(np.ones((4, 5)))
    count, product = B.count_ops(B.matmul, a, b)
    assert count["sizes"] == {20: 1} and B.to_numpy(product).shape == (3, 5)
    assert count["fresh"] == {60: 1}


@pytest.mark.parametrize("mode", ["torch", "tf-eager", "jax"])
def test_a_view_or_a_shape_change_writes_nothing_new_except_in_jax(mode):
    """A transpose (torch's view), a reshape (TensorFlow's shares its buffer) write no new
    memory; op-by-op JAX copies into a new array."""
    B, _ = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
    a = B.asarray(np.ones((3, 4)))
    reshaped = {"torch": lambda x: x.t(), "tf-eager": lambda x: __import__(
        "tensorflow").reshape(x, (4, 3)), "jax": lambda x: x.reshape(4, 3)}[mode]
    count, out = B.count_ops(reshaped, a)
    assert B.to_numpy(out).shape == (4, 3) and count["ops"] == 1
    assert count["fresh"] == ({48: 1} if mode == "jax" else {})


@pytest.mark.parametrize("mode", ["torch", "tf-eager", "jax"])
def test_the_in_place_probe_updates_a_tensor_and_jax_has_none(mode):
    B, _ = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
    probe = B.dispatch_probe("in_place")
    if B.framework == "jax":
        assert probe is None and probes.dispatch_ns(B, "in_place") is None
        return
    count, _ = B.count_ops(probe)
    assert count == {"ops": 1, "in_place": 1, "sizes": {1: 1}, "fresh": {}}
    assert B.count_ops(B.dispatch_probe())[0] == {"ops": 1, "in_place": 0, "sizes": {1: 1},
                                                   "fresh": {4: 1}}
    assert B.count_ops(B.dispatch_probe("in_place", 4096))[0]["sizes"] == {4096: 1}
    assert probes.dispatch_ns(B, "in_place") > 0


@pytest.mark.parametrize("mode", ["torch", "tf-eager", "jax"])
def test_the_count_sees_every_op_of_an_autoencoder_step(mode):
    """The l-BFGS step issues hundreds of ops (matmuls, sigmoids, the two-loop recursion's
    dots and axpys); the count grows with the history it walks. JAX's eager step reads values
    in Python (its cond, its loop bounds, list indices), so the count replays them in a
    trace; the state it hands back holds no tracer, and the step goes on."""
    counts = []
    for history in (2, 4):
        B, task = build(mode, "lbfgs", {"history": history, "batch": 20})
        st, mem = task.st, task.mem
        for _ in range(history + 1):   # fill the memory
            st, mem = task.step(st, mem)
        count, (st, mem) = B.count_ops(task.step, st, mem)
        counts.append(count["ops"])
        st, mem = task.step(st, mem)
        assert np.isfinite(task.check(st, mem)["loss"])
    assert 50 < counts[0] < counts[1]


def test_every_repeat_counts_its_ops_and_prices_their_sizes():
    """One cell's two processes (tf-graph at 1e5 elements) took 4.5 and 10.8 ms a call: the
    second, which counted no ops, had no op sizes of its own priced, and the cell's remainder
    came out at 63%. Every process now counts its ops, before the timing."""
    from eagerbench.records.model import CellSpec
    from eagerbench.worker.loop import QuietChannel
    from eagerbench.worker.main import measure_cells

    spec = CellSpec("elementwise", {"size": 100_000, "ops": 3}, "torch", threads=1, iters=3,
                    warmup=1, min_time_s=0.0)
    for repeat in (0, 1):
        ((record,),) = measure_cells([replace(spec, repeat=repeat)], QuietChannel())
        assert record.status == "ok"
        assert record.why.ops == 3 and record.why.op_sizes == {"100000": 3}
        assert record.why.size_ns["100000"] > 0


def test_the_probe_prices_the_ops_largest_sizes_clipped_to_the_cache():
    sizes = {"10": 50, "4096": 3, "100000": 100, str(1 << 24): 9, "1000": 40, "500": 60}
    assert probes.probe_sizes(sizes) == [4096, 100_000, 1 << 17]
    assert probes.probe_sizes(sizes, 512) == [1000, 4096, 100_000, 1 << 17]
    many = {str(5000 + i): 10 + i for i in range(10)}
    assert probes.probe_sizes(many) == [5004 + i for i in range(6)]   # the six with most ops


def test_the_ops_are_counted_before_the_timing_and_their_sizes_priced_after_its_rounds(
        monkeypatch):
    """The count is one more step after the warm-up, which the unit's other modes take too
    (their checks compare the same step); the sizes' probes are sampled in the why phase, after
    the last timed round (a probe between rounds is work in the cells' window)."""
    from eagerbench.worker import loop
    from eagerbench.worker.loop import Entry, Settings
    from eagerbench.worker.why import probes as diag
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    log = []
    timed_round, sample = loop.timed_round, diag.SizeProbes.sample
    monkeypatch.setattr(loop, "timed_round", lambda run, watch, observer: (
        log.append("round"), timed_round(run, watch, observer)))
    monkeypatch.setattr(diag.SizeProbes, "sample",
                        lambda probes: (log.append("sizes"), sample(probes)))

    class Counted(FakeBackend):
        updates_in_place = False

        def count_ops(self, fn, *args):
            log.append("count")
            return {"ops": 2, "in_place": 0, "sizes": {8192: 2}}, fn(*args)

    params = {"size": 8192, "ops": 2, "spin_us": 100, "fresh_mib": 0}
    counted, twin = measure_unit([Entry(Counted(compiled=False), ADD, params, {"seed": 1}, [6],
                                        mode="fake"),
                                  Entry(FakeBackend(compiled=True), ADD, params, {"seed": 1},
                                        [6], mode="fake-compiled")], Settings(1, 0.0))
    rounds = [i for i, event in enumerate(log) if event == "round"]
    assert log.count("count") == 1 and log.index("count") < rounds[0]
    sizes = [i for i, e in enumerate(log) if e == "sizes"]
    assert len(sizes) >= 4 and min(sizes) > rounds[-1]
    assert list(counted.why.size_ns) == ["8192"]
    assert counted.warm_check == twin.warm_check


@pytest.mark.parametrize("mode", ["tf-graph", "tf-xla", "tf-eager", "torch-compile",
                                  "jax-jit"])
def test_only_a_graph_that_runs_its_ops_one_by_one_has_a_graph_op_probe(mode):
    """tf.function's executor runs each op of its graph; XLA and Inductor fuse them. The
    probe's chain of 7 adds of ones runs all 7 in each call (none is pruned)."""
    B, _ = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
    probe = B.graph_op_probe(7, 3)
    assert (probe is not None) == (mode == "tf-graph") == B.runs_graph_ops
    if probe is not None:
        probe()
        assert B.to_numpy(probe()).tolist() == [14.0] * 3


def test_a_graph_that_runs_its_ops_one_by_one_counts_and_prices_them():
    """A tf-graph cell counts its program's ops (five adds) and prices an op inside a graph,
    at one element and at the counted size when it is large enough; tf-xla counts none. The
    cell's compiler counters hold its own graph only."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads.elementwise import WORKLOAD

    for mode, counted in (("tf-graph", True), ("tf-xla", False)):
        B, _ = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
        record, = measure_unit([Entry(B, WORKLOAD, ELEMENTWISE, {"seed": 1}, [3], mode=mode)],
                               Settings(1, 0.0))
        assert (record.why.ops == 5) == counted
        assert (list(record.why.graph_op_ns or {}) == ["1"]) == counted
        # the probes' chains, compiled after the count, are not the cell's graphs
        assert record.compiler["graphs"] == 1


def test_a_graphs_program_is_counted_before_it_is_traced_and_its_twin_still_agrees():
    """kfac's tf-graph program keeps a tensor made while tracing; run eagerly after the trace
    it failed half-way ("out of scope"), a step short of its eager twin. Counted before its
    first trace, it is counted, and both modes' checks compare the same step."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads import get_workload, mnist

    kfac, params = get_workload("kfac"), {"optimizer": "kfac", "batch": 64}
    ctx = {"seed": 1, "data": lambda batch: mnist.standin(batch, 1)}
    entries = [Entry(build(mode, "kfac", params, dtype="float32")[0], kfac, params, ctx, [2],
                     mode=mode) for mode in ("tf-eager", "tf-graph")]
    eager, graph = measure_unit(entries, Settings(1, 0.0))
    assert eager.status == graph.status == "ok"
    assert graph.why.ops > 0 and not [n for n in graph.why.notes if "ops" in n]
    assert eager.warm_check.keys() == graph.warm_check.keys()
    for key, value in eager.warm_check.items():
        assert graph.warm_check[key] == pytest.approx(value, rel=1e-3)


def test_every_mode_of_the_first_repeat_takes_the_counted_step_even_in_its_own_unit():
    """A 1 GiB cell runs each mode in a unit of its own: the eager mode's counted step put it
    a step ahead of its compiled twin, and their checks disagreed by a third. Every mode of
    the first repeat takes one more step; a count that fails once the step has run (JAX met
    a PRNG key's dtype) still leaves the step taken."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    class Counted(FakeBackend):
        def __init__(self, error=None, **kwargs):
            super().__init__(**kwargs)
            self.error = error

        def count_ops(self, fn, *args):
            out = fn(*args)
            return ({"error": self.error} if self.error else
                    {"ops": 1, "in_place": 1, "sizes": {8: 1}}), out

    params = {"size": 8, "ops": 1, "spin_us": 0, "fresh_mib": 0}
    checks = {}
    for name, B in (("counted", Counted(compiled=False)),
                    ("failed", Counted("boom", compiled=False)),
                    ("fused", FakeBackend(compiled=True))):
        record, = measure_unit([Entry(B, ADD, params, {"seed": 1}, [3], mode=name)],
                               Settings(2, 0.0))
        checks[name] = record.warm_check
        assert any("boom" in note for note in record.why.notes) == (name == "failed")
    assert checks["counted"] == checks["failed"] == checks["fused"]


def test_a_jax_step_holding_a_prng_key_is_counted_and_agrees_with_its_twin():
    """The count of what an op writes met a PRNG key's dtype (not NumPy's) and failed before
    the step ran: jax was a step behind jax-jit, their losses 0.22 and 0.13."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads import get_workload

    workload, params = get_workload("custom-gradient"), {"square": "plain", "noise": 1.0,
                                                          "batch": 64}
    entries = [Entry(build(mode, "custom-gradient", params, dtype="float32")[0], workload, params,
                     {"seed": 1}, [2], mode=mode) for mode in ("jax", "jax-jit")]
    eager, jitted = measure_unit(entries, Settings(2, 0.0))
    assert eager.why.ops > 0 and not eager.why.notes
    assert eager.warm_check and eager.warm_check.keys() == jitted.warm_check.keys()
    for key, value in eager.warm_check.items():
        assert jitted.warm_check[key] == pytest.approx(value, rel=1e-3)


def test_a_step_that_only_calls_compiled_steps_still_compiles_in_its_first_warm_up_call():
    """l-BFGS's tf-graph step is Python that calls its compiled steps: it has no eager program
    to count before the trace, so it is counted after the warm-up, and every trace of its
    graphs is charged to the warm-up."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads import get_workload, mnist

    lbfgs, params = get_workload("lbfgs"), {"history": 2, "batch": 20}
    ctx = {"seed": 1, "data": lambda batch: mnist.standin(batch, 1)}
    B, _ = build("tf-graph", "lbfgs", params, dtype="float32")
    record, = measure_unit([Entry(B, lbfgs, params, ctx, [2], mode="tf-graph")],
                           Settings(2, 0.0))
    assert record.why.ops >= 1
    assert record.traces_before_timing == record.compiler["graphs"] > 0


def test_a_jax_step_that_cannot_be_traced_still_steps_once_and_says_why():
    """JAX counts ops by running the step, then tracing it: a step whose trace fails where its
    run does not (it reads an array into NumPy, or updates modules in place) has still taken
    its step, and the count says why it is missing instead of leaving the state behind."""
    import numpy as np

    from eagerbench.frameworks.modes import get_mode

    B = get_mode("jax").make("cpu", "float32", 1)
    runs = []

    def step(st, mem):
        runs.append(float(np.asarray(st["w"]).sum()))   # a NumPy read: no tracer allowed
        return {"w": st["w"] + 1.0}, mem

    count, (st, _) = B.count_ops(step, {"w": B.asarray(np.zeros(3))}, {})
    assert "error" in count and "Tracer" in count["error"]
    assert runs == [0.0] and np.allclose(B.to_numpy(st["w"]), 1.0)
