"""Why a cell takes its time: op counts per framework, the compiler's diagnostics (a planted graph
break and a planted recompile), memory around a step, and the decomposition's arithmetic."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from eagerbench import explain, tables
from eagerbench import counters
from eagerbench.why import memory as diagnose, probes
from eagerbench import limits as machine
from tests.conftest import build, record
from tests.fake_backend import FakeBackend

ELEMENTWISE = {"size": 10, "ops": 5}


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


def test_the_memory_of_a_step_is_its_high_water_mark_above_what_was_held():
    held = np.ones(1 << 20)   # 8 MiB, held throughout

    def step(st, mem):
        scratch = np.ones(12_500_000)   # 100 MB, freed when the step returns
        return {"total": float(scratch.sum() + held[0])}, mem

    found, (st, _) = diagnose.step_memory(step, lambda tree: None, {}, {}, FakeBackend())
    assert st["total"] == 12_500_001
    assert found["rss_peak_bytes"] - found["rss_before_bytes"] >= 90e6
    assert found["device_peak_bytes"] is None
    # 100 MB of fresh pages: 4 KiB ones, or 2 MiB ones where NumPy asked for huge pages
    huge = found["huge_page_faults"] or 0
    assert (found["page_faults"] - huge) * 4096 + huge * (2 << 20) >= 90e6


def test_a_step_that_reuses_its_memory_takes_no_page_faults():
    buffer = np.zeros(12_500_000)
    buffer += 1   # mapped now

    def step(st, mem):
        np.add(buffer, 1.0, out=buffer)
        return st, mem

    found, _ = diagnose.step_memory(step, lambda tree: None, {}, {}, FakeBackend())
    assert found["page_faults"] < 100


def test_a_long_steps_memory_is_watched_in_its_first_timed_sample_not_an_extra_call():
    """A 64 MiB allocation per call (16,384 fresh 4 KiB pages, fewer where huge): the record
    holds its faults per call, and the step ran only for warm-up, timing and the op count."""
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    params = {"size": 8, "ops": 1, "spin_us": 0, "fresh_mib": 64}
    (res,) = measure_unit([Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3])],
                          Settings(2, 0.0))
    memory = res.why.memory
    huge = memory["huge_page_faults"] or 0
    assert (memory["page_faults"] - huge) * 4096 + huge * (2 << 20) >= 60 * 2**20
    assert res.block_calls == 1
    assert res.info["steps"] == len(res.warmup) + len(res.timed) + 1   # + op count


def test_page_faults_are_counted_over_every_timed_block_not_the_first_only():
    """jax at 1e7 elements took no fault in its first timed block and 9,766 a call in a loop
    by hand: an allocator that faults in some blocks only. Here every other call allocates
    64 MiB afresh, one call per block: a third or two thirds of the 3 blocks fault, never
    none or all."""
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    params = {"size": 8, "ops": 1, "spin_us": 60_000, "fresh_mib": 64, "fresh_every": 2}
    (res,) = measure_unit([Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3])],
                          Settings(2, 0.0))
    assert res.block_calls == 1 and len(res.timed) == 3
    memory = res.why.memory
    huge = memory["huge_page_faults"] or 0
    fresh = ((memory["page_faults"] - huge) * 4096 + huge * (2 << 20)) / (64 << 20)
    assert 0.25 < fresh < 0.75


def test_a_fresh_pages_price_includes_its_release(monkeypatch):
    """A step whose memory stays level hands back as many pages as it faults: the probe times
    the mapping's release with its faults."""
    import mmap
    import time

    class SlowRelease(mmap.mmap):
        def close(self):
            time.sleep(0.05)
            super().close()

    monkeypatch.setattr(mmap, "mmap", SlowRelease)
    elapsed, faults, _ = diagnose._touch_fresh_pages(False, 1)
    assert faults > 0 and elapsed >= 50e6


def test_a_blocked_steps_faults_are_per_call():
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    params = {"size": 8, "ops": 1, "spin_us": 0, "fresh_mib": 0}
    (res,) = measure_unit([Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3])],
                          Settings(2, 0.0))
    assert res.block_calls > 100
    assert res.why.memory["page_faults"] < 1   # a few faults over the block, per call


def test_every_repeat_counts_its_ops_and_prices_their_sizes():
    """One cell's two processes (tf-graph at 1e5 elements) took 4.5 and 10.8 ms a call: the
    second, which counted no ops, had no op sizes of its own priced, and the cell's remainder
    came out at 63%. Every process now counts its ops, before the timing."""
    from eagerbench.timing import QuietChannel
    from eagerbench.results import CellSpec
    from eagerbench.worker import measure_cells

    spec = CellSpec("elementwise", {"size": 100_000, "ops": 3}, "torch", threads=1, iters=3,
                    warmup=1, min_time_s=0.0)
    for repeat in (0, 1):
        ((record,),) = measure_cells([replace(spec, repeat=repeat)], QuietChannel())
        assert record.status == "ok"
        assert record.why.ops == 3 and record.why.op_sizes == {"100000": 3}
        assert record.why.size_ns["100000"] > 0


def test_an_eager_op_is_priced_in_each_unit_not_once_per_process():
    """This VM's speed drifts by up to 2x within minutes: a price taken at a process's start
    misjudged cells timed later."""
    from eagerbench.timing import Entry, Settings
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
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    units = []

    class Drifting(FakeBackend):   # each unit's launch is slower than the last's
        def dispatch_probe(self, kind="new", elements=1, tensors=1):
            units.append(kind)
            call, wait_s = super().dispatch_probe(kind, elements, tensors), 20e-6 * len(units)

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
    assert units == ["new", "new"] and seen[1] > seen[0] + 10e3


def test_no_probe_runs_between_the_units_timed_rounds_only_after_the_last(monkeypatch):
    """Each probe streams up to 128 MiB through the caches: one between a cache-resident
    cell's rounds is work in its window. Every probe call is made after the last timed round,
    in the why phase; a compiled probe is compiled before the unit's compiler counters are
    read, so the cell's graph count is its own. Without the observer, no probe runs at all."""
    from eagerbench import timing as measure
    from eagerbench.timing import Entry, Settings, measure_unit as bare
    from tests.conftest import measure_why
    from tests.fake_backend import ADD

    log = []
    timed_round = measure.timed_round
    monkeypatch.setattr(measure, "timed_round", lambda run, watch, observer: (
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
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from eagerbench.why.prices import _tensor_count
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


def test_a_fresh_page_has_a_measured_price():
    prices = diagnose.fault_ns()
    assert 0 < prices["small"] < 1e6
    assert prices["huge"] is None or prices["huge"] > prices["small"]


PLANTED = '''
import torch
from eagerbench import native

CALLS = [0]


def setup(params, env):
    w = torch.as_tensor(env.rng.standard_normal((8, 8)), dtype=env.dtype, device=env.device)
    return {"w": w}, {}


def breaking(st, mem):
    w = st["w"] * 0.5
    torch._dynamo.graph_break()
    return {"w": w + 0.1}, mem


def recompiling(st, mem):
    CALLS[0] += 1   # a Python value Dynamo guards on: a new graph every call
    return {"w": st["w"] * 0.5 + CALLS[0] % 3}, mem


BREAKING = native.workload("breaking", "torch", setup, breaking, iters=3, warmup=2)
RECOMPILING = native.workload("recompiling", "torch", setup, recompiling, iters=3, warmup=3)
'''


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Both planted workloads measured in one run (one torch.compile set-up), in torch and
    torch-compile: the run's records and its cells table."""
    from eagerbench import results
    from tests.conftest import eagerbench_cli

    folder = tmp_path_factory.mktemp("planted")
    path = folder / "planted.py"
    path.write_text(PLANTED)
    proc = eagerbench_cli("run", "-w", f"{path}:BREAKING,{path}:RECOMPILING", "--modes",
                          "torch,torch-compile", "--repeat", "1", "--min-time", "0",
                          "--threads", "1", "--no-limits", "-q", "--out", folder / "run")
    assert proc.returncode == 0, proc.stderr
    run = results.load(folder / "run")
    cells = tables.cells_table(run.latest())
    why = explain.why_table(run.latest(), cells, None)
    return {(r.workload, r.mode): r for r in why.itertuples()}, cells


def test_a_planted_graph_break_is_reported_with_its_reason(planted):
    why, _ = planted
    compiled = why[("breaking", "torch-compile")]
    assert compiled.graph_breaks >= 1
    assert "graph_break" in compiled.graph_break_reasons
    assert compiled.dispatches_per_call >= 2   # a graph on each side of the break
    assert compiled.graphs >= 2
    assert why[("breaking", "torch")].ops_per_call == 2   # mul and add: no break in eager


def test_a_planted_recompile_is_counted(planted):
    why, cells = planted
    assert why[("recompiling", "torch-compile")].graphs >= 3   # each warm-up saw a new value
    row = cells.set_index(["workload", "mode"]).loc[("recompiling", "torch-compile")]
    assert row["compiles_during_timing"] > 0
    assert "RECOMPILED" in tables.summary_table(cells).set_index(
        ["workload", "mode"]).loc[("recompiling", "torch-compile"), "note"]


LIMITS = {"bandwidth_gbps": 10.0, "cache_bandwidth_gbps": 100.0, "llc_bytes": 32 << 20,
          "peak_gflops": {"float32": 100.0, "float64": 50.0}}


def _cell(size: int, mode: str, ms: float, ops: int, dispatch_us: float, **why):
    samples = [{"ns": int(ms * 1e6), "calls": 1, "step": i + 2, "gc_collections": 0,
                "gc_ns": 0} for i in range(10)]
    return record({"workload": "elementwise", "params": {"size": size, "ops": ops},
                   "mode": mode, "dtype": "float32"},
                  {"status": "ok", "warmup": samples[:1], "timed": samples,
                   "process": {"pid": 1, "started": 0.0},
                   "why": {"ops": ops, "dispatch_ns": dispatch_us * 1e3, **why}})


def test_matmul_flops_are_priced_at_the_product_timed_alongside_the_cell():
    """Two processes ten seconds apart ran torch's 512 x 512 product at 1.9 and 3.1 ms here:
    the machine's ladder, probed once per run, misjudged cells timed later. A product of the
    cell's FLOPs per op timed between its samples (a 1 x 1 product's call price left out) sets
    the rate, each process's kernel time averaged."""
    from tests.test_report import _record

    side, flops = 512, 2 * 512**3
    cells = []
    for process, kernel_ms in ((1, 3.0), (2, 2.0)):
        cell = _record("matmul", {"size": side}, "torch", [3.0] * 6, process, process - 1)
        product = {"side": side, "ns": kernel_ms * 1e6 + 4e3, "call_ns": 4e3}
        cells.append(replace(cell, result=replace(cell.result, why={"product": product})))
    why = explain.why_table(cells, tables.cells_table(cells, LIMITS), LIMITS)
    assert why["compute_ms"].iloc[0] == pytest.approx(2.5)
    assert why["compute_rate_from"].iloc[0] == "product alongside"
    assert explain.product_gflops(cells) == pytest.approx(flops / 2.5e6)
    bare = [_record("matmul", {"size": side}, "torch", [3.0] * 6, 1, 0)]   # the ladder's rate
    ladder = explain.why_table(bare, tables.cells_table(bare, LIMITS), LIMITS)
    assert ladder["compute_rate_from"].iloc[0] == "machine ladder"
    assert ladder["compute_ms"].iloc[0] != pytest.approx(2.5)


def test_the_worker_times_a_product_of_the_cells_flops_per_op_alongside_it():
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from eagerbench.why.prices import product_side
    from tests.conftest import build
    from workloads.elementwise import WORKLOAD as ELEMENTWISE_WORKLOAD
    from workloads.matmul import WORKLOAD as MATMUL

    B, _ = build("torch", "matmul", {"size": 64}, dtype="float32")
    entry = Entry(B, MATMUL, {"size": 64}, {"seed": 1}, [3], mode="torch")
    assert product_side(MATMUL.work({"size": 64}, "float32", {})) == 64
    assert product_side(ELEMENTWISE_WORKLOAD.work(ELEMENTWISE, "float32", {})) is None
    record, = measure_unit([entry], Settings(1, 0.0))
    product = record.why.product
    assert product["side"] == 64 and product["ns"] > product["call_ns"] > 0


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


def test_streaming_traffic_is_priced_at_the_stream_timed_alongside_the_cell():
    """1e7 floats, one add: 120 MB per call. At the 20 and 30 GB/s two processes' streams
    ran at (their mean time per byte: 24 GB/s), 5 ms; a cell whose data fits in the cache
    keeps the cache's bandwidth."""
    from tests.test_report import _record

    cells = []
    for process, gbps in ((1, 20.0), (2, 30.0)):
        cell = _record("elementwise", {"size": 10**7, "ops": 1}, "torch", [6.0] * 6, process,
                       process - 1)
        cells.append(replace(cell, result=replace(cell.result, why={"stream_gbps": gbps})))
    row = explain.why_table(cells, tables.cells_table(cells, LIMITS), LIMITS).iloc[0]
    assert row["memory_ms"] == pytest.approx(5.0) and row["bandwidth_from"] == "stream alongside"
    small = _record("elementwise", {"size": 1000, "ops": 1}, "torch", [0.01] * 6, 1, 0)
    small = [replace(small, result=replace(small.result, why={"stream_gbps": 20.0}))]
    row = explain.why_table(small, tables.cells_table(small, LIMITS), LIMITS).iloc[0]
    assert row["bandwidth_from"] == "machine cache"
    assert row["memory_ms"] == pytest.approx(1.2e4 / 100.0 / 1e6)


def test_data_that_fits_the_last_level_but_not_the_cache_below_it_streams():
    """A VM reported a 260 MiB last-level cache, shared by its two cores, and a 2 MiB L2: a
    1e7-float add's 80 MB, within half the last level, moved at 35 GB/s, DRAM's rate, not
    at the 181 GB/s measured on 256 KiB vectors. The cache bandwidth holds up to half the
    cache below the last level; past it the stream alongside prices the traffic, and a new
    40 MB output is write-allocated; without that cache's size, half the last level's."""
    from tests.test_report import _record

    limits = {**LIMITS, "llc_bytes": 260 << 20, "inner_cache_bytes": 2 << 20}
    n = 10**7
    cell = _record("elementwise", {"size": n, "ops": 1}, "jax", [4.0] * 6, 1, 0)
    cells = [replace(cell, result=replace(cell.result, why={
        "stream_gbps": 40.0, "fresh_outputs": {str(4 * n): 1}}))]
    row = explain.why_table(cells, tables.cells_table(cells, limits), limits).iloc[0]
    assert row["bandwidth_from"] == "stream alongside"
    assert row["write_allocated_bytes_per_call"] == 4 * n
    assert row["memory_ms"] == pytest.approx(16 * n / 40e9 * 1e3)
    mid = _record("elementwise", {"size": 10**5, "ops": 1}, "jax", [0.01] * 6, 1, 0)
    row = explain.why_table([mid], tables.cells_table([mid], limits), limits).iloc[0]
    assert row["bandwidth_from"] == "machine cache"   # 800 KB: within half the L2
    older = {**limits, "inner_cache_bytes": None}
    row = explain.why_table(cells, tables.cells_table(cells, older), older).iloc[0]
    assert row["bandwidth_from"] == "machine cache"


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
    from eagerbench.why import prices as worker
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


def test_a_write_into_fresh_pages_is_not_read_first():
    """jax's eager add of 2^28 floats faulted in its whole 1 GiB output every call: the
    kernel zeroed each page at its fault (priced as allocation), and the add's write found
    the lines in cache. Counting the write-allocate too put the parts 21% over the call;
    the faulted bytes are left out of it, down to none."""
    from tests.test_report import _record

    n = 10**7
    cell = _record("elementwise", {"size": n, "ops": 1}, "jax", [9.0] * 6, 1, 0)
    for faults, allocated in ((4 * n / 4096, 0.0), (n / 4096, 3 * n), (4 * n, 0.0)):
        why = {"stream_gbps": 20.0, "fresh_outputs": {str(4 * n): 1},
               "memory": {"page_faults": faults, "huge_page_faults": 0}}
        cells = [replace(cell, result=replace(cell.result, why=why))]
        row = explain.why_table(cells, tables.cells_table(cells, LIMITS), LIMITS).iloc[0]
        assert row["write_allocated_bytes_per_call"] == pytest.approx(allocated)
    huge = {"page_faults": 10, "huge_page_faults": 10}   # 20 MiB in huge pages
    cells = [replace(cell, result=replace(cell.result, why={
        "fresh_outputs": {str(4 * n): 1}, "memory": huge}))]
    row = explain.why_table(cells, tables.cells_table(cells, LIMITS), LIMITS).iloc[0]
    assert row["write_allocated_bytes_per_call"] == pytest.approx(4 * n - 10 * (2 << 20))


def test_a_write_into_a_new_tensor_past_the_caches_counts_twice():
    """JAX's eager add of 1e7 floats writes a new 40 MB array: past the caches each line is
    read before it is written, so the 120 MB the add reads and writes move 160 MB (8 ms at
    20 GB/s). Outputs under half the cache (16 MiB here) add nothing, nor does a cell whose
    data stays in the cache, nor a compiler's own count of what its graph moves."""
    from tests.test_report import _record

    n = 10**7
    fresh = {str(4 * n): 1, str(4096): 3}
    cell = _record("elementwise", {"size": n, "ops": 1}, "jax", [9.0] * 6, 1, 0)
    cells = [replace(cell, result=replace(cell.result, why={"stream_gbps": 20.0,
                                                            "fresh_outputs": fresh}))]
    row = explain.why_table(cells, tables.cells_table(cells, LIMITS), LIMITS).iloc[0]
    assert row["write_allocated_bytes_per_call"] == 4 * n
    assert row["memory_ms"] == pytest.approx(16 * n / 20e9 * 1e3)
    small = _record("elementwise", {"size": 1000, "ops": 1}, "jax", [0.01] * 6, 1, 0)
    small = [replace(small, result=replace(small.result, why={"fresh_outputs": {"4000": 1}}))]
    row = explain.why_table(small, tables.cells_table(small, LIMITS), LIMITS).iloc[0]
    assert row["write_allocated_bytes_per_call"] == 0
    assert row["memory_ms"] == pytest.approx(1.2e4 / 100.0 / 1e6)
    compiled = _record("elementwise", {"size": n, "ops": 1}, "jax-jit", [9.0] * 6, 1, 0)
    compiled = [replace(compiled, result=replace(
        compiled.result, why={"stream_gbps": 20.0, "fresh_outputs": fresh},
        compiler={"graphs": 1, "bytes_accessed": 12.0 * n}))]
    row = explain.why_table(compiled, tables.cells_table(compiled, LIMITS), LIMITS).iloc[0]
    assert row["memory_ms"] == pytest.approx(12 * n / 20e9 * 1e3)


def test_the_worker_records_what_the_counted_ops_write_into_new_tensors():
    from eagerbench.timing import Entry, Settings
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

    from eagerbench import timing as measure
    from eagerbench.workload import Work
    from tests.conftest import measure_why
    from tests.fake_backend import ADD

    log = []
    timed_round = measure.timed_round
    monkeypatch.setattr(measure, "timed_round", lambda run, watch, observer: (
        log.append("round"), timed_round(run, watch, observer)))

    class Streamed(FakeBackend):
        def stream_add(self, elements):
            log.append("stream")
            buf, x = np.zeros(4), np.ones(4)
            return lambda: np.add(buf, x, out=buf)

    for footprint, streamed in ((1e12, True), (1e3, False)):
        log.clear()
        work = replaced(ADD, work=lambda p, d, o, f=footprint: Work(ops=1, bytes=1e3, footprint=f))
        record, = measure_why([measure.Entry(Streamed(compiled=False), work,
                                             params_of_add(), {"seed": 1}, [3])],
                              measure.Settings(1, 0.0))
        assert (record.why.stream_gbps is not None) == streamed
        assert ("stream" in log) == streamed
        if streamed:   # made in the why phase, after the last timed round
            assert log.index("stream") > max(i for i, e in enumerate(log) if e == "round")


def test_in_place_ops_are_priced_by_the_in_place_probe():
    """Ten ops, four of them in place: 6 x 20 us + 4 x 5 us."""
    records = [_cell(1000, "torch", 1.0, 10, 20.0, ops_in_place=4, dispatch_ns_in_place=5e3)]
    why = explain.why_table(records, tables.cells_table(records, LIMITS), LIMITS)
    assert why["dispatch_ms"].iloc[0] == pytest.approx(0.14)
    assert why["us_per_dispatch"].iloc[0] == pytest.approx(14.0)
    assert why["in_place_ops_per_call"].iloc[0] == 4


def test_ops_counted_in_one_process_are_priced_with_every_processs_probe():
    """A process whose count failed still prices a dispatch: the cell's count is the other
    process's, and its price the mean of both processes' probes."""
    first = _cell(1000, "torch", 1.0, 10, 20.0)
    second = _cell(1000, "torch", 1.0, 10, 40.0)
    second = replace(second, result=replace(second.result, why={"dispatch_ns": 40e3},
                                            process={"pid": 2, "started": 0.0}))
    records = [first, second]
    why = explain.why_table(records, tables.cells_table(records, LIMITS), LIMITS)
    assert why["ops_per_call"].iloc[0] == 10
    assert why["dispatch_ms"].iloc[0] == pytest.approx(10 * 30e-3)


def test_page_faults_are_priced_as_allocation():
    """1,000 small faults at 2 us and 3 huge ones at 300 us: 2.9 ms of the call's 10 ms; a
    huge page with no measured price costs 512 small ones."""
    memory = {"page_faults": 1003, "huge_page_faults": 3}
    records = [_cell(1 << 24, "torch", 10.0, 10, 1.0, memory=memory,
                     fault_ns={"small": 2e3, "huge": 300e3}),
               _cell(1000, "torch", 10.0, 10, 1.0, memory=memory,
                     fault_ns={"small": 2e3, "huge": None})]
    why = explain.why_table(records, tables.cells_table(records, LIMITS), LIMITS)
    rows = {r.params: r for r in why.itertuples()}
    big = rows[f"size={1 << 24} ops=10"]
    assert big.allocation_ms == pytest.approx(2.9)
    assert big.page_faults_per_call == 1003
    assert big.remainder_ms == pytest.approx(10.0 - big.dispatch_ms - big.kernels_ms - 2.9)
    assert rows["size=1000 ops=10"].allocation_ms == pytest.approx(2.0 + 3 * 512 * 2e-3)
    assert "fresh pages" in " ".join(explain.sentences(why))


def test_a_call_that_faults_many_pages_is_priced_by_its_own_kernel_time():
    """jax's 1 GiB add faulted 262,145 pages a call in 330 ms calls and in 1.8 s ones (this
    VM's host takes freed memory back): from 1,000 small faults a call, the kernel's share
    of the cell's CPU time, of its median call, is its allocation; below, the probe's price."""
    many = {"page_faults": 20_000, "huge_page_faults": 0, "kernel_share": 0.7}
    few = {"page_faults": 999, "huge_page_faults": 0, "kernel_share": 0.7}
    records = [_cell(1 << 24, "torch", 10.0, 10, 1.0, memory=many,
                     fault_ns={"small": 2e3, "huge": None}),
               _cell(1000, "torch", 10.0, 10, 1.0, memory=few,
                     fault_ns={"small": 2e3, "huge": None})]
    why = explain.why_table(records, tables.cells_table(records, LIMITS), LIMITS)
    rows = {r.params: r for r in why.itertuples()}
    big = rows[f"size={1 << 24} ops=10"]
    assert big.allocation_ms == pytest.approx(0.7 * big.median_ms)
    assert rows["size=1000 ops=10"].allocation_ms == pytest.approx(999 * 2e-3)


def test_the_kernels_share_is_summed_over_every_watched_block(monkeypatch):
    """A block's own share moves by a tick of the kernel's accounting (user 0 to 18 ms of
    jax's 14 ms add at 1e7 elements): the share is the blocks' sums."""
    clock = iter([(0, 0), (100, 300), (100, 300), (300, 500), (300, 500), (300, 500)])
    monkeypatch.setattr(diagnose, "_cpu_ns", lambda: next(clock))
    tally = diagnose.FaultTally()
    assert tally.kernel_share() is None
    for calls in (1, 2, 1):
        with tally.watch(calls):
            pass
    assert tally.kernel_share() == pytest.approx(500 / 800) and tally.calls == 4


def test_a_step_that_faults_records_its_kernels_share():
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    params = {"size": 8, "ops": 1, "spin_us": 0, "fresh_mib": 64, "small_pages": 1}
    (res,) = measure_unit([Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3])],
                          Settings(2, 0.0))
    assert 0 < res.why.memory["kernel_share"] <= 1


def test_a_small_product_is_held_to_the_rate_measured_at_its_size():
    limits = {**LIMITS, "matmul_n": 2048,
              "matmul_ladder": {"float32": {"128": 25.0, "512": 50.0, "1024": 80.0}}}
    assert machine.matmul_rate(limits, "float32", 2 * 128**3) == pytest.approx(25.0)
    assert machine.matmul_rate(limits, "float32", 2 * 256**3) == pytest.approx(
        np.sqrt(25.0 * 50.0))                                       # log-log halfway
    assert machine.matmul_rate(limits, "float32", 2 * 4096**3) == 100.0   # the peak
    assert machine.matmul_rate(limits, "float32", 2.0) == pytest.approx(25.0)
    assert machine.matmul_rate(LIMITS, "float32", 2 * 128**3) == 100.0   # no ladder: peak
    # a framework's own library, where it was probed: its ladder and its peak
    limits["per_library"] = {"tensorflow": {"matmul_gflops": {"float32": 60.0},
                                            "matmul_ladder": {"float32": {"128": 10.0}}}}
    assert machine.matmul_rate(limits, "float32", 2 * 128**3, "tensorflow") == pytest.approx(10.0)
    assert machine.matmul_rate(limits, "float32", 2 * 4096**3, "tensorflow") == pytest.approx(60.0)
    assert machine.matmul_rate(limits, "float32", 2 * 128**3, "jax") == pytest.approx(25.0)


def test_the_cache_bandwidth_leaves_out_the_price_of_calling_an_add(monkeypatch):
    """200 adds of 2^16 floats in 2 ms, 200 adds of 16 floats in 0.5 ms: the data moved in
    1.5 ms, not 2."""
    monkeypatch.setattr(machine, "_adds_s",
                        lambda lib, device, elems, repeats: 2e-3 if elems > 16 else 0.5e-3)
    assert machine._stream("numpy", "cpu", 1 << 16, 200) == pytest.approx(
        3 * 4 * (1 << 16) * 200 / 1.5e-3 / 1e9)
    assert machine._stream("numpy", "cpu", 1 << 16, 1) == pytest.approx(
        3 * 4 * (1 << 16) / 2e-3 / 1e9)   # streaming: one add, nothing to take out


def test_the_decomposition_is_dispatch_plus_kernels_and_the_rest():
    """10 ops at 20 us each are 0.2 ms of dispatch; 2^24 floats (a 128 MiB footprint, beyond
    the cache) move 3 x 4 B x 2^24 x 10 at 10 GB/s: 201 ms; the rest of 250 ms remains. At
    1000 floats the data stays in cache: 100 GB/s."""
    big, small = 1 << 24, 1000
    records = [_cell(big, "torch", 250.0, 10, 20.0), _cell(small, "torch", 0.25, 10, 20.0)]
    why = explain.why_table(records, tables.cells_table(records, LIMITS), LIMITS)
    rows = {r.params: r for r in why.itertuples()}
    large = rows[f"size={big} ops=10"]
    assert large.dispatch_ms == pytest.approx(0.2)
    assert large.memory_ms == pytest.approx(3 * 4 * big * 10 / 10e9 * 1e3)
    assert large.bound == "memory"
    assert large.remainder_ms == pytest.approx(250.0 - 0.2 - large.memory_ms)
    assert large.dispatch_share + large.kernels_share + large.remainder_share == \
        pytest.approx(1.0)
    cached = rows[f"size={small} ops=10"]
    assert cached.memory_ms == pytest.approx(3 * 4 * small * 10 / 100e9 * 1e3)
    assert "torch at elementwise size=16777216 ops=10: 0% dispatch, 81% memory, 19% unexplained, 20.0 us per op over 10 ops" in \
        " ".join(explain.sentences(why))


def test_an_ops_size_is_priced_beyond_its_traffic_and_the_one_element_op():
    """100 adds of 100,000 floats, each add of that size timed at 130 us against a one-element
    in-place add's 20 us; its traffic (1.2 MB at 100 GB/s in cache) is 12 us: 98 us per op is
    the pool's, 9.8 ms. Ops under 4,096 elements are not priced, an op beyond the probed
    sizes takes the price of the largest, and one whose add would not fit the cache (16 MiB
    here) none: its hand-off is in the stream's price."""
    n = 100_000
    priced = _cell(n, "torch", 30.0, 100, 20.0, dispatch_ns_in_place=20e3,
                   op_sizes={str(n): 100, "10": 7, str(1 << 20): 2, str(1 << 22): 5},
                   size_ns={str(n): 130e3})
    why = explain.why_table([priced], tables.cells_table([priced], LIMITS), LIMITS)
    row = why.iloc[0]
    excess_ns = 130e3 - 20e3 - 3 * 4 * n / 100.0
    assert row.pool_ms == pytest.approx((100 + 2) * excess_ns / 1e6)
    assert row.remainder_ms == pytest.approx(30.0 - row.dispatch_ms - row.pool_ms
                                             - row.kernels_ms)
    assert row.pool_share + row.dispatch_share + row.kernels_share + row.remainder_share == \
        pytest.approx(1.0)
    assert "op sizes (thread pool)" in " ".join(explain.sentences(why))
    unpriced = _cell(n, "torch", 30.0, 100, 20.0)   # no sizes counted: no pool, not zero
    assert np.isnan(explain.why_table([unpriced], tables.cells_table([unpriced], LIMITS),
                                      LIMITS)["pool_ms"].iloc[0])


def test_a_product_timed_at_its_size_is_not_pooled_again():
    """JAX hands a 128 x 128 product to a worker thread: the product probe's time at that size
    holds the hand-off (its 1 x 1 product's call left out), and the add probe's price at
    16,384 elements counted it a second time (jax at 128: -39%). The workload's one product
    leaves the pool; an add of the same size in the step stays in it."""
    from tests.test_report import _record

    side, excess_ns = 128, 9e3
    why = {"ops": 2, "dispatch_ns": 10e3, "op_sizes": {str(side**2): 2},
           "size_ns": {str(side**2): 10e3 + excess_ns + 3 * 4 * side**2 / 100.0},
           "product": {"side": side, "ns": 40e3, "call_ns": 10e3}}

    def pool_ms(why: dict) -> float:
        cell = _record("matmul", {"size": side}, "jax", [0.1] * 6, 1, 0)
        cell = replace(cell, result=replace(cell.result, why=why))
        return explain.why_table([cell], tables.cells_table([cell], LIMITS),
                                 LIMITS)["pool_ms"].iloc[0]

    assert pool_ms(why) == pytest.approx(excess_ns / 1e6)   # the add's; the product's left
    assert pool_ms({**why, "product": None}) == pytest.approx(2 * excess_ns / 1e6)


def test_the_probe_prices_the_ops_largest_sizes_clipped_to_the_cache():
    sizes = {"10": 50, "4096": 3, "100000": 100, str(1 << 24): 9, "1000": 40, "500": 60}
    assert probes.probe_sizes(sizes) == [4096, 100_000, 1 << 17]
    assert probes.probe_sizes(sizes, 512) == [1000, 4096, 100_000, 1 << 17]
    many = {str(5000 + i): 10 + i for i in range(10)}
    assert probes.probe_sizes(many) == [5004 + i for i in range(6)]   # the six with most ops


def test_the_worker_prices_the_sizes_of_the_ops_it_counted():
    """A unit whose step adds 8,192-element vectors records that size and its probe's price,
    in the process that counted the ops; a unit of 8-element adds prices no size."""
    from eagerbench.timing import Entry, Settings
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
    from eagerbench.timing import Entry, Settings
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
        why = {**record.why, "dispatch_ns": 0.0, "size_ns": {"1000": 5000.0}}
        assert explain._size_excess_ms(why["op_sizes"], why["size_ns"], 1000.0, "float32",
                                       LIMITS, why["sized_from"]) > 0
        assert explain._size_excess_ms(why["op_sizes"], why["size_ns"], 1000.0, "float32",
                                       LIMITS) == 0


def test_the_ops_are_counted_before_the_timing_and_their_sizes_priced_after_its_rounds(
        monkeypatch):
    """The count is one more step after the warm-up, which the unit's other modes take too
    (their checks compare the same step); the sizes' probes are sampled in the why phase, after
    the last timed round (a probe between rounds is work in the cells' window)."""
    from eagerbench import timing as measure
    from eagerbench.timing import Entry, Settings
    from eagerbench.why import probes as diag
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    log = []
    timed_round, sample = measure.timed_round, diag.SizeProbes.sample
    monkeypatch.setattr(measure, "timed_round", lambda run, watch, observer: (
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
    from eagerbench.timing import Entry, Settings
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
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads import get_workload, mnist

    kfac, params = get_workload("kfac"), {"optimizer": "kfac", "batch": 64}
    ctx = {"seed": 1, "data": lambda batch: mnist.standin(batch, 1)}
    entries = [Entry(build(mode, "kfac", params, dtype="float32")[0], kfac, params, ctx, [2],
                     mode=mode) for mode in ("tf-eager", "tf-graph")]
    eager, graph = measure_unit(entries, Settings(1, 0.0))
    assert eager["status"] == graph["status"] == "ok"
    assert graph["why"]["ops"] > 0 and not [n for n in graph["why"]["notes"] if "ops" in n]
    assert eager["warm_check"].keys() == graph["warm_check"].keys()
    for key, value in eager["warm_check"].items():
        assert graph["warm_check"][key] == pytest.approx(value, rel=1e-3)


def test_every_mode_of_the_first_repeat_takes_the_counted_step_even_in_its_own_unit():
    """A 1 GiB cell runs each mode in a unit of its own: the eager mode's counted step put it
    a step ahead of its compiled twin, and their checks disagreed by a third. Every mode of
    the first repeat takes one more step; a count that fails once the step has run (JAX met
    a PRNG key's dtype) still leaves the step taken."""
    from eagerbench.timing import Entry, Settings
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
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads import get_workload

    workload, params = get_workload("custom-gradient"), {"square": "plain", "noise": 1.0,
                                                          "batch": 64}
    entries = [Entry(build(mode, "custom-gradient", params, dtype="float32")[0], workload, params,
                     {"seed": 1}, [2], mode=mode) for mode in ("jax", "jax-jit")]
    eager, jitted = measure_unit(entries, Settings(2, 0.0))
    assert eager["why"]["ops"] > 0 and not eager["why"]["notes"]
    assert eager["warm_check"] and eager["warm_check"].keys() == jitted["warm_check"].keys()
    for key, value in eager["warm_check"].items():
        assert jitted["warm_check"][key] == pytest.approx(value, rel=1e-3)


def test_a_step_that_only_calls_compiled_steps_still_compiles_in_its_first_warm_up_call():
    """l-BFGS's tf-graph step is Python that calls its compiled steps: it has no eager program
    to count before the trace, so it is counted after the warm-up, and every trace of its
    graphs is charged to the warm-up."""
    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from workloads import get_workload, mnist

    lbfgs, params = get_workload("lbfgs"), {"history": 2, "batch": 20}
    ctx = {"seed": 1, "data": lambda batch: mnist.standin(batch, 1)}
    B, _ = build("tf-graph", "lbfgs", params, dtype="float32")
    record, = measure_unit([Entry(B, lbfgs, params, ctx, [2], mode="tf-graph")],
                           Settings(2, 0.0))
    assert record.why.ops >= 1
    assert record.traces_before_timing == record.compiler["graphs"] > 0


def test_a_graphs_ops_are_priced_inside_a_graph():
    """tf-graph, 100 adds of 100,000 elements: one launch (400 us) and 100 ops at 0.5 us
    each are dispatch; each op's 20 us at its size, less the one-element op and its traffic
    (12 us at 100 GB/s), is pool: 0.75 ms."""
    n = 100_000
    cell = _cell(n, "tf-graph", 2.0, 100, 400.0, op_sizes={str(n): 100},
                 graph_op_ns={"1": 500.0, str(n): 20e3})
    row = explain.why_table([cell], tables.cells_table([cell], LIMITS), LIMITS).iloc[0]
    assert row["dispatch_ms"] == pytest.approx(0.45)
    assert row["us_per_dispatch"] == pytest.approx(400.0)
    assert row["us_per_graph_op"] == pytest.approx(0.5)
    assert row["pool_ms"] == pytest.approx(0.75)


def test_a_compiled_cell_moves_the_bytes_its_compiler_counted_after_fusion():
    """100 fused adds of 100,000 floats read a and b and write b once: 1.2 MB per call (XLA's
    count, Inductor's), not the 120 MB of 100 separate adds; the process that loaded its graph
    from a cache counted none, and the other's count is kept."""
    n, fused = 100_000, 1.2e6
    cells = []
    for mode, counted in (("jax-jit", [fused, 0.0]), ("jax", [None, None])):
        for pid, bytes_accessed in enumerate(counted):
            cell = _cell(n, mode, 0.5, 100, 20.0)
            compiler = {} if bytes_accessed is None else {"graphs": 1,
                                                          "bytes_accessed": bytes_accessed}
            cells.append(replace(cell, result=replace(cell.result, compiler=compiler,
                                                      process={"pid": pid, "started": 0.0})))
    why = explain.why_table(cells, tables.cells_table(cells, LIMITS), LIMITS)
    rows = {r.mode: r for r in why.itertuples()}
    assert rows["jax-jit"].compiled_bytes_per_call == fused
    assert rows["jax-jit"].memory_ms == pytest.approx(fused / 100e9 * 1e3)
    assert rows["jax"].memory_ms == pytest.approx(3 * 4 * n * 100 / 100e9 * 1e3)
    # The values of an interleaved sweep share one count: it is not any one value's
    swept = [replace(c, spec=replace(c.spec, interleaved={"ops": [100, 200]})) for c in cells]
    why = explain.why_table(swept, tables.cells_table(swept, LIMITS), LIMITS)
    assert why.set_index("mode")["compiled_bytes_per_call"].isna().all()


def test_element_wise_flops_are_priced_at_the_fused_add_rate():
    """An element-wise workload's FLOPs are adds: priced at the fused chain's 20 GFLOP/s, not a
    matmul rate; a workload that says nothing keeps the matmul rate."""
    limits = {**LIMITS, "elementwise_gflops": {"float32": 20.0}}
    records = [_cell(100_000, "jax-jit", 1.0, 100, 20.0)]
    why = explain.why_table(records, tables.cells_table(records, limits), limits)
    assert why["compute_ms"].iloc[0] == pytest.approx(100_000 * 100 / 20e9 * 1e3)
    matmul = record({"workload": "matmul", "params": {"size": 128}, "mode": "jax",
                     "dtype": "float32"}, records[0].result.to_json())
    why = explain.why_table([matmul], tables.cells_table([matmul], limits), limits)
    assert why["compute_ms"].iloc[0] == pytest.approx(2 * 128**3 / 100e9 * 1e3)


def test_element_wise_flops_are_priced_at_the_modes_fused_chain_timed_alongside_the_cell():
    """The machine's chain, probed once per run, ran 1.5x faster than a cell's fused loop
    timed minutes later here. Two processes' chains of 20 and 80 adds on 2^17 elements, their
    60 extra adds taking 0.3 and 0.5 ms (26.2 and 15.7 GFLOP/s: 0.05 ns per add on average),
    price 100 adds of 100,000 elements at 0.5 ms; without them the machine's rate stays."""
    limits = {**LIMITS, "elementwise_gflops": {"float32": 20.0}}
    n, elements = 100_000, 1 << 17
    cells = []
    for pid, extra_ms in ((1, 0.3), (2, 0.5)):
        chains = {"elements": elements, "adds": [20, 80], "ns": [1e5, 1e5 + extra_ms * 1e6]}
        cell = _cell(n, "jax-jit", 1.0, 100, 20.0, fused_adds=chains)
        cells.append(replace(cell, result=replace(cell.result,
                                                  process={"pid": pid, "started": 0.0})))
    row = explain.why_table(cells, tables.cells_table(cells, limits), limits).iloc[0]
    ns_per_add = np.mean([0.3e6, 0.5e6]) / (60 * elements)
    assert row["compute_ms"] == pytest.approx(100 * n * ns_per_add / 1e6)
    assert row["compute_rate_from"] == "fused adds alongside"
    bare = [_cell(n, "jax-jit", 1.0, 100, 20.0)]
    row = explain.why_table(bare, tables.cells_table(bare, limits), limits).iloc[0]
    assert row["compute_rate_from"] == "fused adds"
    assert row["compute_ms"] == pytest.approx(100 * n / 20e9 * 1e3)


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


def test_a_fused_launch_on_the_cells_size_is_pool_beyond_its_traffic():
    """tf-xla's one add into a variable took 327 us at 1e5 elements and 137 us at one: XLA
    hands a loop that long to its threads. A launch on two tensors of 1e5 floats priced at
    400 us against the one-element launch's 250: 150 us less their traffic (1.6 MB at
    100 GB/s, 16 us) is the pool's, per graph; none without the sized launch."""
    n = 100_000
    sized = {"elements": n, "tensors": 2, "ns": 400e3}
    cell = _cell(n, "tf-xla", 1.0, 100, 250.0, launch_sized=sized)
    row = explain.why_table([cell], tables.cells_table([cell], LIMITS), LIMITS).iloc[0]
    assert row["pool_ms"] == pytest.approx((400e3 - 250e3 - 2 * 2 * 4 * n / 100.0) / 1e6)
    assert row["dispatch_ms"] == pytest.approx(0.25)
    two = replace(cell, result=replace(cell.result, compiler={"graphs": 2}))
    row = explain.why_table([two], tables.cells_table([two], LIMITS), LIMITS).iloc[0]
    assert row["pool_ms"] == pytest.approx(2 * (400e3 - 250e3 - 16e3) / 1e6)
    bare = _cell(n, "tf-xla", 1.0, 100, 250.0)
    assert np.isnan(explain.why_table([bare], tables.cells_table([bare], LIMITS),
                                      LIMITS)["pool_ms"].iloc[0])


@pytest.mark.parametrize("mode,size,ops,elements", [
    ("jax-jit", 8192, 5, 8192), ("jax", 8192, 5, None), ("jax-jit", 1000, 5, 1000),
    ("jax-jit", 100, 5, None), ("jax-jit", 10, 100, 512), ("jax-jit", 10, 99, None)])
def test_the_worker_prices_a_fused_launch_on_the_cells_size(mode, size, ops, elements):
    """A fused element-wise cell in cache from 512 elements prices its launch on tensors of
    its vectors' size, beside the one-element launch (jax.jit's launch on 1,000-element
    tensors: 14.5 us, on one-element ones 8.6); an eager cell or a smaller one not, unless
    its step is launched as a larger one is: XLA's CPU client runs a program of 1,000 FLOPs
    or more on a worker thread (100 adds of 10 floats: 8.6 to 10 us a call, 99 adds 4.6)."""
    from eagerbench.timing import Entry, Settings
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

    from eagerbench.timing import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from eagerbench.workload import Work
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
    from eagerbench.timing import Entry, Settings
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


@pytest.mark.parametrize("mode", ["jax-jit", "torch-compile"])
def test_the_compiler_counts_a_fused_chains_bytes_without_compiling_again(mode):
    """Five adds of 4,096 floats, fused: 3 x 4 B x 4,096 per call, once. Taking XLA's count
    compiles nothing (its executable is the first call's)."""
    B, task = build(mode, "elementwise", {"size": 4096, "ops": 5}, dtype="float32")
    before = B.graph_diagnostics()
    st, mem = task.step(task.st, task.mem)
    st, mem = task.step(st, mem)
    compiles = B.compile_events()["count"]
    delta = counters.compiler_delta(before, B.graph_diagnostics())
    assert delta["bytes_accessed"] == 3 * 4 * 4096
    assert B.compile_events()["count"] == compiles


@pytest.mark.parametrize("size,ops", [(4096, 5), (10**7, 1)])
def test_tensorflows_xla_bytes_are_read_from_its_optimised_hlo_without_tracing_again(size, ops):
    """tf-xla: five adds of 4,096 floats into a variable fuse into one loop (a and b in, b
    out): 3 reads and writes of 4 B x 4,096 per call; the input the step hands back unchanged
    is handed back outside the graph, not copied by XLA (2 more). TensorFlow has no cost
    analysis; its HLO says as much. Arguments of 80 MB (1e7 floats) are made again for it
    too."""
    B, task = build("tf-xla", "elementwise", {"size": size, "ops": ops}, dtype="float32")
    before = B.graph_diagnostics()
    st, mem = task.step(task.st, task.mem)
    traces = B.trace_count()
    delta = counters.compiler_delta(before, B.graph_diagnostics())
    assert delta["bytes_accessed"] == 3 * 4 * size
    assert B.trace_count() == traces
    assert st["a"] is task.st["a"]


HLO = """HloModule step, entry_computation_layout={(f32[10]{0}, f32[10]{0})->(f32[10]{0})}

%fused (p0: f32[10], p1: f32[10]) -> f32[10] {
  %p0 = f32[10]{0} parameter(0)
  ROOT %add = f32[10]{0} add(%p0, %p0)
}

ENTRY %main (a: f32[10], b: f32[20]) -> (f32[10], f32[10]) {
  %a = f32[10]{0} parameter(0), parameter_replication={false}
  %b = f32[20]{0} parameter(1)
  %copy = f32[10]{0} copy(%a)
  %fusion = f32[10]{0} fusion(%a, %b), kind=kLoop, calls=%fused, metadata={op_name="x(y)"}
  ROOT %tuple = (f32[10]{0}, f32[10]{0}) tuple(%copy, %fusion)
}
"""


def test_an_hlo_programs_bytes_are_its_top_level_instructions_operands_and_results():
    """A copy (40 B in, 40 out) and a fusion (40 + 80 in, 40 out); parameters and tuples
    move nothing, and a fused computation's inside is not counted again. A loop's count is
    unknown."""
    from eagerbench.backends.hlo import entry_bytes

    assert entry_bytes(HLO) == 80 + 160
    looping = HLO.replace("copy(%a)", "while(%a), condition=%c, body=%fused")
    assert entry_bytes(looping) is None and entry_bytes("HloModule empty") is None


def test_the_tax_is_explained_only_where_there_is_one():
    records = [_cell(1000, "torch", 1.0, 100, 9.0), _cell(1000, "torch-compile", 0.2, 100, 30.0),
               _cell(10, "torch", 0.1, 10, 9.0), _cell(10, "torch-compile", 0.3, 10, 30.0)]
    cells = tables.cells_table(records, LIMITS).assign(vs_eager_significant=True)
    why = explain.why_table(records, cells, LIMITS)
    taxes = explain.tax_table(why).set_index("params")
    paying = taxes.loc["size=1000 ops=100"]
    assert paying["tax_ms"] == pytest.approx(0.8)
    # eager dispatch 100 x 9 us = 0.9 ms; compiled one launch of 30 us: 0.87 ms of the 0.8 ms
    assert paying["dispatch_explains"] == pytest.approx((0.9 - 0.03) / 0.8)
    assert np.isnan(taxes.loc["size=10 ops=10", "dispatch_explains"])   # compiled is slower


def test_a_tax_within_its_interval_is_not_split_into_shares():
    records = [_cell(1000, "torch", 1.0, 100, 9.0), _cell(1000, "torch-compile", 0.2, 100, 30.0)]
    cells = tables.cells_table(records, LIMITS).assign(vs_eager_significant=False)
    taxes = explain.tax_table(explain.why_table(records, cells, LIMITS))
    assert taxes["tax_ms"].iloc[0] == pytest.approx(0.8)
    assert taxes[[f"{p}_explains" for p in explain.PARTS]].isna().all(axis=None)
