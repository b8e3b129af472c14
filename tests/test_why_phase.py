"""The why phase (``why.WhyObserver``): its probes are made before the warm-up and sampled only
after the last timed round; what each prices (dispatch, launch, product, stream, op sizes, fused
chains), per unit, per mode."""

from __future__ import annotations

import time

import numpy as np
import pytest

from eagerbench.records.limits import MachineLimits
from eagerbench.report import explain, summary
from eagerbench.worker.why import probes
from tests.conftest import build
from tests.fake_backend import FakeBackend
from tests.why_cells import ELEMENTWISE, LIMITS
from tests.why_cells import priced_cell as _cell


def test_an_eager_op_is_priced_in_each_unit_not_once_per_process():
    """This VM's speed drifts by up to 2x within minutes: a price taken at a process's start
    misjudged cells timed later."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    asked = []

    class Probed(FakeBackend):
        def dispatch_probe(self, kind="new", elements=1, tensors=1):
            asked.append(kind)
            return super().dispatch_probe(kind, elements, tensors)

    params = {"size": 8, "ops": 1, "spin_us": 2000, "fresh_mib": 0}
    for _ in range(2):
        measure_unit([Entry(Probed(compiled=False), ADD, params, {"seed": 1}, [3])],
                     Settings(1, 0.0))
    assert asked == ["new", "in_place"] * 2


def test_a_compiled_launch_is_priced_in_each_unit_too():
    """A launch priced once, at the process's start (after the compiler's warm-up), came out
    dearer than whole calls of the cells timed later (jax-jit: 24 against 18 us per call)."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    units = []

    class Drifting(FakeBackend):   # each unit's launch is 200 us slower than the last's
        def dispatch_probe(self, kind="new", elements=1, tensors=1):
            units.append(kind)
            call, wait_s = super().dispatch_probe(kind, elements, tensors), 200e-6 * len(units)

            def slow():
                end = time.perf_counter() + wait_s
                while time.perf_counter() < end:
                    pass
                return call()
            return slow

    seen = []
    for _ in range(2):
        record, = measure_unit([Entry(Drifting(compiled=True), ADD, params_of_add(),
                                      {"seed": 1}, [3], mode="fake-compiled")], Settings(1, 0.0))
        seen.append(record.why.dispatch_ns)
    # half the planted step: on a loaded machine a step of 20 us once read as -3 us
    assert units == ["new", "new"] and seen[1] > seen[0] + 100e3


def test_no_probe_runs_between_the_units_timed_rounds_only_after_the_last(monkeypatch):
    """Each probe streams up to 128 MiB through the caches: one between a cache-resident
    cell's rounds is work in its window. Every probe call is made after the last timed round,
    in the why phase; a compiled probe is compiled before the unit's compiler counters are
    read, so the cell's graph count is its own. Without the observer, no probe runs at all."""
    from eagerbench.worker import loop
    from eagerbench.worker.loop import Entry, Settings
    from eagerbench.worker.loop import measure_unit as bare
    from tests.conftest import measure_why
    from tests.fake_backend import ADD

    log = []
    timed_round = loop.timed_round
    monkeypatch.setattr(loop, "timed_round", lambda run, watch, observer: (
        log.append("round"), timed_round(run, watch, observer)))

    class Logged(FakeBackend):
        def dispatch_probe(self, kind="new", elements=1, tensors=1):
            call = super().dispatch_probe(kind, elements, tensors)

            def logged():
                log.append("probe")
                return call()
            return logged

    def unit():
        return [Entry(Logged(compiled=True), ADD, params_of_add(), {"seed": 1}, [6],
                      mode="fake-compiled")]

    record, = measure_why(unit(), Settings(1, 0.0))
    rounds = [i for i, event in enumerate(log) if event == "round"]
    timed = [i for i, event in enumerate(log) if event == "probe" and i > rounds[0]]
    assert len(rounds) == 6 and len(timed) >= 15 and min(timed) > rounds[-1]
    assert record.compiler["graphs"] == 1 and record.why.dispatch_ns > 0
    log.clear()
    plain, = bare(unit(), Settings(1, 0.0))
    assert "probe" not in log and log.count("round") == 6
    assert not plain.why.taken and plain.compiler["graphs"] == 1


def test_a_compiled_launch_is_priced_with_as_many_tensors_as_the_step_takes():
    """tf.function's call cost 497 us with one tensor and 556 us with a matmul step's three,
    here: a launch of one tensor underpriced the steps. ``b += a`` holds two."""
    from eagerbench.worker.loop import Entry, Settings
    from eagerbench.worker.why.prices import _tensor_count
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    asked = []

    class Counted(FakeBackend):
        def dispatch_probe(self, kind="new", elements=1, tensors=1):
            asked.append((self.compiled, kind, tensors))
            return super().dispatch_probe(kind, elements, tensors)

    for compiled in (True, False):
        measure_unit([Entry(Counted(compiled=compiled), ADD, params_of_add(), {"seed": 1}, [3],
                            mode=f"fake-{compiled}")], Settings(1, 0.0))
    assert asked == [(True, "new", 2), (False, "new", 1), (False, "in_place", 1)]
    assert _tensor_count(({"a": np.ones(2), "b": [np.ones(1)] * 2, "n": 3, "s": None}, {})) == 3


def params_of_add() -> dict:
    return {"size": 8, "ops": 1, "spin_us": 200, "fresh_mib": 0}


def test_the_worker_times_a_product_of_the_cells_flops_per_op_alongside_it():
    from eagerbench.worker.loop import Entry, Settings
    from eagerbench.worker.why.prices import product_side
    from tests.conftest import build
    from tests.conftest import measure_why as measure_unit
    from workloads.elementwise import WORKLOAD as ELEMENTWISE_WORKLOAD
    from workloads.matmul import WORKLOAD as MATMUL

    B, _ = build("torch", "matmul", {"size": 64}, dtype="float32")
    entry = Entry(B, MATMUL, {"size": 64}, {"seed": 1}, [3], mode="torch")
    assert product_side(MATMUL.work({"size": 64}, "float32", {})) == 64
    assert product_side(ELEMENTWISE_WORKLOAD.work(ELEMENTWISE, "float32", {})) is None
    record, = measure_unit([entry], Settings(1, 0.0))
    product = record.why.product
    assert product["side"] == 64 and product["ns"] > product["call_ns"] > 0


def test_a_matmul_cell_compiles_its_graph_cold_beside_the_why_phases_product_probe(
        tmp_path, monkeypatch):
    """The why phase compiles a product probe before the warm-up; for a matmul cell that is
    the cell's own graph. In the cell's cache, the cell's first compile found it (one hit, no
    miss) and every torch-compile matmul row read 'compile cost not measured'."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads.matmul import WORKLOAD as MATMUL

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    B, _ = build("torch-compile", "matmul", {"size": 48}, dtype="float32")
    entry = Entry(B, MATMUL, {"size": 48}, {"seed": 1}, [3], mode="torch-compile")
    try:
        record, = measure_unit([entry], Settings(1, 0.0))
    finally:   # Dynamo caches by code object: the probe's product would be found by later
        B.reset()  # tests (the backend's reset, which also re-registers its compile callbacks)
    assert record.why.product["side"] == 48                     # the probe was made
    assert record.compile_cache["graph_hits"] == 0, record.compile_cache
    assert record.compile_cache["graph_misses"] >= 1


@pytest.mark.parametrize("mode,compiled", [("jax-jit", True), ("jax", False),
                                           ("tf-xla", True), ("tf-graph", False),
                                           ("torch-compile", True)])
def test_a_mode_that_generates_code_prices_its_compilers_product(mode, compiled):
    """XLA's product of two 1024 x 1024 floats took 8.5 ms here, TensorFlow's own 6.8 ms: a
    tf-xla cell priced at TensorFlow's left 27-33% of its time unexplained. A mode that
    generates its code (XLA, Inductor) is priced at its compiler's product, compiled for
    both sizes; one that runs the framework's kernels (eager, tf-graph) at the framework's."""
    B, _ = build(mode, "matmul", {"size": 8}, dtype="float32")
    before = B.graph_diagnostics().get("graphs", 0)
    product, call = probes.product_probes(B, 8)
    assert B.graph_diagnostics().get("graphs", 0) - before == (2 if compiled else 0)
    assert np.allclose(B.to_numpy(product.call()), 1.0 / 8)   # each product takes the last
    assert product.price() > 0 and call.price() > 0


def test_a_stream_probes_sample_is_timed_as_a_cells_sample():
    """A warmed block of adds on 40 MB vectors ran at 62 GB/s beside a cell whose samples
    were single adds of the same size at 38 GB/s: a stream probe of 1 ms or more a call is
    now timed one call at a time, unwarmed, as a cell is; a faster one in a block after a
    waited call, as a cell is. Other probes keep their warmed blocks of 5 calls or more."""
    calls = []

    def slow():
        calls.append("slow")
        time.sleep(0.0015)

    for as_a_cell, block in ((True, 1), (False, 5)):
        probe = probes.Probe(FakeBackend(), slow, as_a_cell=as_a_cell)
        calls.clear()
        probe.sample()
        assert probe.calls == block and len(calls) == block + (not as_a_cell)

    fast_calls = []
    probe = probes.Probe(FakeBackend(), lambda: fast_calls.append(1), as_a_cell=True)
    fast_calls.clear()
    probe.sample()
    assert probe.calls > 2 and len(fast_calls) == probe.calls + 1

    class Streamed(FakeBackend):
        def stream_add(self, elements):
            return slow

    stream = probes.stream_probe(Streamed(), 1 << 10)
    assert stream.calls == 1 and not stream.warmed


def test_a_stream_probe_is_the_size_of_the_cells_data(monkeypatch):
    """The stream alongside a cell moves two vectors of half its footprint each, at the
    cell's level of the memory hierarchy; a 2 GiB cell's at most 128 MiB or the last-level
    cache, whichever is larger, each. Only data past half the L2 streams."""
    from eagerbench.worker.why import prices as worker
    from eagerbench.workload import Work

    monkeypatch.setattr(worker, "_CACHES", {"inner_cache_bytes": 2 << 20,
                                            "llc_bytes": 260 << 20})
    work = Work(bytes=1.2e8, footprint=8e7)
    assert worker.streams(work)
    assert worker.stream_elements(work, 4) == 10**7
    assert worker.stream_elements(Work(bytes=1.0, footprint=2.0**31), 4) == (260 << 20) // 4
    assert not worker.streams(Work(bytes=1.2e6, footprint=8e5))
    monkeypatch.setattr(worker, "_CACHES", {"inner_cache_bytes": None, "llc_bytes": 4 << 20})
    assert worker.stream_elements(Work(bytes=1.0, footprint=2.0**31), 4) == 1 << 25


def test_the_worker_records_what_the_counted_ops_write_into_new_tensors():
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads.elementwise import WORKLOAD

    for mode, fresh in (("jax", {"40": 5}), ("torch", {})):
        B, _ = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
        record, = measure_unit([Entry(B, WORKLOAD, ELEMENTWISE, {"seed": 1}, [3], mode=mode)],
                               Settings(1, 0.0))
        assert record.why.fresh_outputs == fresh


def test_the_stream_is_timed_alongside_a_cell_whose_data_streams_after_its_watched_sample(
        monkeypatch):
    """The stream's two 128 MiB vectors are made after each run's first sample, whose memory
    is watched (the cell's peak is its own); a cell whose data fits in the cache has none."""
    from dataclasses import replace as replaced

    from eagerbench.worker import loop
    from eagerbench.workload import Work
    from tests.conftest import measure_why
    from tests.fake_backend import ADD

    log = []
    timed_round = loop.timed_round
    monkeypatch.setattr(loop, "timed_round", lambda run, watch, observer: (
        log.append("round"), timed_round(run, watch, observer)))

    class Streamed(FakeBackend):
        def stream_add(self, elements):
            log.append("stream")
            buf, x = np.zeros(4), np.ones(4)
            return lambda: np.add(buf, x, out=buf)

    for footprint, streamed in ((1e12, True), (1e3, False)):
        log.clear()
        work = replaced(ADD, work=lambda p, d, o, f=footprint: Work(ops=1, bytes=1e3, footprint=f))
        record, = measure_why([loop.Entry(Streamed(compiled=False), work,
                                             params_of_add(), {"seed": 1}, [3])],
                              loop.Settings(1, 0.0))
        assert (record.why.stream_gbps is not None) == streamed
        assert ("stream" in log) == streamed
        if streamed:   # made in the why phase, after the last timed round
            assert log.index("stream") > max(i for i, e in enumerate(log) if e == "round")


def test_the_worker_prices_the_sizes_of_the_ops_it_counted():
    """A unit whose step adds 8,192-element vectors records that size and its probe's price,
    in the process that counted the ops; a unit of 8-element adds prices no size."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    class Counted(FakeBackend):
        updates_in_place = False   # priced by new-tensor adds (the fake has no buffers)

        def count_ops(self, fn, *args):
            out = fn(*args)
            size = int(np.size(args[1]["b"]))
            return {"ops": 2, "in_place": 2, "sizes": {size: 2}}, out

    for size, priced in ((8192, True), (8, False)):
        record, = measure_unit([Entry(Counted(compiled=False), ADD,
                                      {"size": size, "ops": 2, "spin_us": 100, "fresh_mib": 0},
                                      {"seed": 1}, [3])], Settings(1, 0.0))
        assert record.why.op_sizes == {str(size): 2}
        assert (list(record.why.size_ns or {}) == [str(size)]) == priced


@pytest.mark.parametrize("mode,priced", [("jax", True), ("torch", False)])
def test_jax_prices_its_eager_ops_from_the_size_it_hands_to_a_thread(mode, priced):
    """JAX's client on a CPU hands a program of 1,000 FLOPs or more to a worker thread, an eager
    add of 1,000 elements too: 14.3 us an op, against 10.5 at one element. Its ops are priced
    from 512 elements, and the report leaves none out from there; torch's from 4,096 (priced
    from 512, its 1,000-element adds came to 1.3x the cell with their dispatch)."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads.elementwise import WORKLOAD

    params = {"size": 1000, "ops": 2}
    B, _ = build(mode, "elementwise", params, dtype="float32")
    record, = measure_unit([Entry(B, WORKLOAD, params, {"seed": 1}, [3], mode=mode)],
                           Settings(1, 0.0))
    assert record.why.op_sizes == {"1000": 2}
    assert (list(record.why.size_ns or {}) == ["1000"]) == priced
    if priced:
        assert record.why.sized_from == 512
        why = {**record.why.to_json(), "dispatch_ns": 0.0, "size_ns": {"1000": 5000.0}}
        limits = MachineLimits.from_json(LIMITS)
        assert explain._size_excess_ms(why["op_sizes"], why["size_ns"], 1000.0, "float32",
                                       limits, why["sized_from"]) > 0
        assert explain._size_excess_ms(why["op_sizes"], why["size_ns"], 1000.0, "float32",
                                       limits) == 0


def test_a_graphs_ops_are_priced_inside_a_graph():
    """tf-graph, 100 adds of 100,000 elements: one launch (400 us) and 100 ops at 0.5 us
    each are dispatch; each op's 20 us at its size, less the one-element op and its traffic
    (12 us at 100 GB/s), is pool: 0.75 ms."""
    n = 100_000
    cell = _cell(n, "tf-graph", 2.0, 100, 400.0, op_sizes={str(n): 100},
                 graph_op_ns={"1": 500.0, str(n): 20e3})
    limits = MachineLimits.from_json(LIMITS)
    row = explain.why_table([cell], summary.cell_rows([cell], limits), limits).iloc[0]
    assert row["dispatch_ms"] == pytest.approx(0.45)
    assert row["us_per_dispatch"] == pytest.approx(400.0)
    assert row["us_per_graph_op"] == pytest.approx(0.5)
    assert row["pool_ms"] == pytest.approx(0.75)


@pytest.mark.parametrize("mode", ["tf-graph", "tf-xla", "tf-eager", "torch", "torch-compile",
                                  "jax", "jax-jit"])
def test_only_a_mode_that_fuses_has_a_fused_add_probe(mode):
    """XLA and Inductor fuse a chain of adds into one loop; eager modes and tf.function's
    executor do not. Each call of the chain of 7 adds takes the one before's result; in
    tf-xla the adds go into a variable, as a step keeps its state (XLA took 11x as long for
    such an add as for one of plain tensors)."""
    B, _ = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
    probe = B.fused_add_probe(7, 3)
    assert (probe is not None) == (mode in ("tf-xla", "torch-compile", "jax-jit")) == B.fuses_ops
    if probe is not None:
        first = probe()
        assert B.to_numpy(probe()).tolist() == [14 / 1024] * 3
        assert (probe() is first) == (mode == "tf-xla")


@pytest.mark.parametrize("mode,size,ops,elements", [
    ("jax-jit", 8192, 5, 8192), ("jax", 8192, 5, None), ("jax-jit", 1000, 5, 1000),
    ("jax-jit", 100, 5, None), ("jax-jit", 10, 100, 512), ("jax-jit", 10, 99, None)])
def test_the_worker_prices_a_fused_launch_on_the_cells_size(mode, size, ops, elements):
    """A fused element-wise cell in cache from 512 elements prices its launch on tensors of
    its vectors' size, beside the one-element launch (jax.jit's launch on 1,000-element
    tensors: 14.5 us, on one-element ones 8.6); an eager cell or a smaller one not, unless
    its step is launched as a larger one is: XLA's CPU client runs a program of 1,000 FLOPs
    or more on a worker thread (100 adds of 10 floats: 8.6 to 10 us a call, 99 adds 4.6)."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads.elementwise import WORKLOAD

    params = {"size": size, "ops": ops}
    B, _ = build(mode, "elementwise", params, dtype="float32")
    record, = measure_unit([Entry(B, WORKLOAD, params, {"seed": 1}, [3], mode=mode)],
                           Settings(1, 0.0))
    launch = record.why.launch_sized
    assert (launch and launch["elements"]) == elements
    if elements:
        assert launch["tensors"] == 2 and launch["ns"] > 0
        assert record.compiler["graphs"] == 1   # the probes' compiles left out


def test_an_element_wise_workload_without_a_footprint_is_measured_in_a_fused_mode():
    """A user's element-wise workload that declares no footprint has no size to price its
    launch at: the cell is measured, without that price."""
    from dataclasses import replace as replaced

    from eagerbench.worker.loop import Entry, Settings
    from eagerbench.workload import Work
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    workload = replaced(ADD, work=lambda params, dtype, observed: Work(
        ops=params["ops"], flops=8.0, arithmetic="elementwise"))
    params = {"size": 8, "ops": 1, "spin_us": 0, "fresh_mib": 0}
    record, = measure_unit([Entry(FakeBackend(compiled=True), workload, params, {"seed": 1},
                                  [3], mode="fake-fused")], Settings(1, 0.0))
    assert record.status == "ok" and record.why.launch_sized is None


@pytest.mark.parametrize("mode", ["jax-jit", "jax"])
def test_the_worker_times_the_modes_fused_chain_alongside_an_element_wise_cell(mode):
    """A jax-jit element-wise cell in cache times jax.jit's own chains of 20 and 80 adds
    between its samples, compiled before the cell's compiler counters are read (its graphs
    stay its step's one); an eager cell times none."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads.elementwise import WORKLOAD

    B, _ = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
    record, = measure_unit([Entry(B, WORKLOAD, ELEMENTWISE, {"seed": 1}, [3], mode=mode)],
                           Settings(1, 0.0))
    chains = record.why.fused_adds
    assert (chains is not None) == (mode == "jax-jit")
    if chains is not None:
        assert chains["adds"] == [20, 80] and chains["ns"][1] > chains["ns"][0] > 0
        assert record.compiler["graphs"] == 1
