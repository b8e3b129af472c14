"""The why decomposition's arithmetic (``explain``): dispatch, kernels at their rates, pool,
allocation and the rest, from records with known prices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from eagerbench.records.limits import MachineLimits
from eagerbench.report import explain, summary
from eagerbench.report.pages import why_section
from eagerbench.worker import machine
from tests.conftest import record
from tests.why_cells import LIMITS
from tests.why_cells import priced_cell as _cell


def _why(records, limits: dict, significant=None):
    """The why table of ``records`` under the limits recorded as ``limits``, each tax's
    significance overridden where ``significant`` says."""
    typed = MachineLimits.from_json(limits)
    rows = summary.cell_rows(records, typed)
    if significant is not None:
        def interval(v: float) -> dict:   # one that excludes 1, or one that holds it
            return ({"lo": 0.9 * v, "hi": 1.1 * v} if significant else
                    {"lo": min(v, 1.0) / 10, "hi": max(v, 1.0) * 10})

        rows = [replace(r, vs_eager=replace(r.vs_eager, **interval(r.vs_eager.value)))
                if r.vs_eager is not None and r.compiled else r for r in rows]
    return explain.why_table(records, rows, typed)


def _rows_of(why) -> list:
    """A why table's lines as the typed rows it was written from."""
    return [explain.WhyRow(**line) for line in why.to_dict("records")]


def _rate(limits: dict, *args):
    return MachineLimits.from_json(limits).matmul_rate(*args)


def test_matmul_flops_are_priced_at_the_product_timed_alongside_the_cell():
    """Two processes ten seconds apart ran torch's 512 x 512 product at 1.9 and 3.1 ms here:
    the machine's ladder, probed once per run, misjudged cells timed later. A product of the
    cell's FLOPs per op timed between its samples (a 1 x 1 product's call price left out) sets
    the rate, each process's kernel time averaged."""
    from tests.recorded_runs import record_of as _record

    side, flops = 512, 2 * 512**3
    cells = []
    for process, kernel_ms in ((1, 3.0), (2, 2.0)):
        cell = _record("matmul", {"size": side}, "torch", [3.0] * 6, process, process - 1)
        product = {"side": side, "ns": kernel_ms * 1e6 + 4e3, "call_ns": 4e3}
        cells.append(replace(cell, result=replace(cell.result, why={"product": product})))
    why = _why(cells, LIMITS)
    assert why["compute_ms"].iloc[0] == pytest.approx(2.5)
    assert why["compute_rate_from"].iloc[0] == "product alongside"
    assert explain.product_gflops(cells) == pytest.approx(flops / 2.5e6)
    bare = [_record("matmul", {"size": side}, "torch", [3.0] * 6, 1, 0)]   # the ladder's rate
    ladder = _why(bare, LIMITS)
    assert ladder["compute_rate_from"].iloc[0] == "machine ladder"
    assert ladder["compute_ms"].iloc[0] != pytest.approx(2.5)


def test_streaming_traffic_is_priced_at_the_stream_timed_alongside_the_cell():
    """1e7 floats, one add: 120 MB per call. At the 20 and 30 GB/s two processes' streams
    ran at (their mean time per byte: 24 GB/s), 5 ms; a cell whose data fits in the cache
    keeps the cache's bandwidth."""
    from tests.recorded_runs import record_of as _record

    cells = []
    for process, gbps in ((1, 20.0), (2, 30.0)):
        cell = _record("elementwise", {"size": 10**7, "ops": 1}, "torch", [6.0] * 6, process,
                       process - 1)
        cells.append(replace(cell, result=replace(cell.result, why={"stream_gbps": gbps})))
    row = _why(cells, LIMITS).iloc[0]
    assert row["memory_ms"] == pytest.approx(5.0) and row["bandwidth_from"] == "stream alongside"
    small = _record("elementwise", {"size": 1000, "ops": 1}, "torch", [0.01] * 6, 1, 0)
    small = [replace(small, result=replace(small.result, why={"stream_gbps": 20.0}))]
    row = _why(small, LIMITS).iloc[0]
    assert row["bandwidth_from"] == "machine cache"
    assert row["memory_ms"] == pytest.approx(1.2e4 / 100.0 / 1e6)


def test_data_that_fits_the_last_level_but_not_the_cache_below_it_streams():
    """A VM reported a 260 MiB last-level cache, shared by its two cores, and a 2 MiB L2: a
    1e7-float add's 80 MB, within half the last level, moved at 35 GB/s, DRAM's rate, not
    at the 181 GB/s measured on 256 KiB vectors. The cache bandwidth holds up to half the
    cache below the last level; past it the stream alongside prices the traffic, and a new
    40 MB output is write-allocated; without that cache's size, half the last level's."""
    from tests.recorded_runs import record_of as _record

    limits = {**LIMITS, "llc_bytes": 260 << 20, "inner_cache_bytes": 2 << 20}
    n = 10**7
    cell = _record("elementwise", {"size": n, "ops": 1}, "jax", [4.0] * 6, 1, 0)
    cells = [replace(cell, result=replace(cell.result, why={
        "stream_gbps": 40.0, "fresh_outputs": {str(4 * n): 1}}))]
    row = _why(cells, limits).iloc[0]
    assert row["bandwidth_from"] == "stream alongside"
    assert row["write_allocated_bytes_per_call"] == 4 * n
    assert row["memory_ms"] == pytest.approx(16 * n / 40e9 * 1e3)
    mid = _record("elementwise", {"size": 10**5, "ops": 1}, "jax", [0.01] * 6, 1, 0)
    row = _why([mid], limits).iloc[0]
    assert row["bandwidth_from"] == "machine cache"   # 800 KB: within half the L2
    older = {**limits, "inner_cache_bytes": None}
    row = _why(cells, older).iloc[0]
    assert row["bandwidth_from"] == "machine cache"


def test_a_write_into_fresh_pages_is_not_read_first():
    """jax's eager add of 2^28 floats faulted in its whole 1 GiB output every call: the
    kernel zeroed each page at its fault (priced as allocation), and the add's write found
    the lines in cache. Counting the write-allocate too put the parts 21% over the call;
    the faulted bytes are left out of it, down to none."""
    from tests.recorded_runs import record_of as _record

    n = 10**7
    cell = _record("elementwise", {"size": n, "ops": 1}, "jax", [9.0] * 6, 1, 0)
    for faults, allocated in ((4 * n / 4096, 0.0), (n / 4096, 3 * n), (4 * n, 0.0)):
        why = {"stream_gbps": 20.0, "fresh_outputs": {str(4 * n): 1},
               "memory": {"page_faults": faults, "huge_page_faults": 0}}
        cells = [replace(cell, result=replace(cell.result, why=why))]
        row = _why(cells, LIMITS).iloc[0]
        assert row["write_allocated_bytes_per_call"] == pytest.approx(allocated)
    huge = {"page_faults": 10, "huge_page_faults": 10}   # 20 MiB in huge pages
    cells = [replace(cell, result=replace(cell.result, why={
        "fresh_outputs": {str(4 * n): 1}, "memory": huge}))]
    row = _why(cells, LIMITS).iloc[0]
    assert row["write_allocated_bytes_per_call"] == pytest.approx(4 * n - 10 * (2 << 20))


def test_a_write_into_a_new_tensor_past_the_caches_counts_twice():
    """JAX's eager add of 1e7 floats writes a new 40 MB array: past the caches each line is
    read before it is written, so the 120 MB the add reads and writes move 160 MB (8 ms at
    20 GB/s). Outputs under half the cache (16 MiB here) add nothing, nor does a cell whose
    data stays in the cache, nor a compiler's own count of what its graph moves."""
    from tests.recorded_runs import record_of as _record

    n = 10**7
    fresh = {str(4 * n): 1, str(4096): 3}
    cell = _record("elementwise", {"size": n, "ops": 1}, "jax", [9.0] * 6, 1, 0)
    cells = [replace(cell, result=replace(cell.result, why={"stream_gbps": 20.0,
                                                            "fresh_outputs": fresh}))]
    row = _why(cells, LIMITS).iloc[0]
    assert row["write_allocated_bytes_per_call"] == 4 * n
    assert row["memory_ms"] == pytest.approx(16 * n / 20e9 * 1e3)
    small = _record("elementwise", {"size": 1000, "ops": 1}, "jax", [0.01] * 6, 1, 0)
    small = [replace(small, result=replace(small.result, why={"fresh_outputs": {"4000": 1}}))]
    row = _why(small, LIMITS).iloc[0]
    assert row["write_allocated_bytes_per_call"] == 0
    assert row["memory_ms"] == pytest.approx(1.2e4 / 100.0 / 1e6)
    compiled = _record("elementwise", {"size": n, "ops": 1}, "jax-jit", [9.0] * 6, 1, 0)
    compiled = [replace(compiled, result=replace(
        compiled.result, why={"stream_gbps": 20.0, "fresh_outputs": fresh},
        compiler={"graphs": 1, "bytes_accessed": 12.0 * n}))]
    row = _why(compiled, LIMITS).iloc[0]
    assert row["memory_ms"] == pytest.approx(12 * n / 20e9 * 1e3)


def test_in_place_ops_are_priced_by_the_in_place_probe():
    """Ten ops, four of them in place: 6 x 20 us + 4 x 5 us."""
    records = [_cell(1000, "torch", 1.0, 10, 20.0, ops_in_place=4, dispatch_ns_in_place=5e3)]
    why = _why(records, LIMITS)
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
    why = _why(records, LIMITS)
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
    why = _why(records, LIMITS)
    rows = {r.params: r for r in why.itertuples()}
    big = rows[f"size={1 << 24} ops=10"]
    assert big.allocation_ms == pytest.approx(2.9)
    assert big.page_faults_per_call == 1003
    assert big.remainder_ms == pytest.approx(10.0 - big.dispatch_ms - big.kernels_ms - 2.9)
    assert rows["size=1000 ops=10"].allocation_ms == pytest.approx(2.0 + 3 * 512 * 2e-3)
    assert "fresh pages" in " ".join(why_section.sentences(_rows_of(why)))


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
    why = _why(records, LIMITS)
    rows = {r.params: r for r in why.itertuples()}
    big = rows[f"size={1 << 24} ops=10"]
    assert big.allocation_ms == pytest.approx(0.7 * big.median_ms)
    assert rows["size=1000 ops=10"].allocation_ms == pytest.approx(999 * 2e-3)


def test_a_small_product_is_held_to_the_rate_measured_at_its_size():
    limits = {**LIMITS, "matmul_n": 2048,
              "matmul_ladder": {"float32": {"128": 25.0, "512": 50.0, "1024": 80.0}}}
    assert _rate(limits, "float32", 2 * 128**3) == pytest.approx(25.0)
    assert _rate(limits, "float32", 2 * 256**3) == pytest.approx(
        np.sqrt(25.0 * 50.0))                                       # log-log halfway
    assert _rate(limits, "float32", 2 * 4096**3) == 100.0   # the peak
    assert _rate(limits, "float32", 2.0) == pytest.approx(25.0)
    assert _rate(LIMITS, "float32", 2 * 128**3) == 100.0   # no ladder: peak
    # a framework's own library, where it was probed: its ladder and its peak
    limits["per_library"] = {"tensorflow": {"matmul_gflops": {"float32": 60.0},
                                            "matmul_ladder": {"float32": {"128": 10.0}}}}
    assert _rate(limits, "float32", 2 * 128**3, "tensorflow") == pytest.approx(10.0)
    assert _rate(limits, "float32", 2 * 4096**3, "tensorflow") == pytest.approx(60.0)
    assert _rate(limits, "float32", 2 * 128**3, "jax") == pytest.approx(25.0)


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
    why = _why(records, LIMITS)
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
    assert ("torch at elementwise size=16777216 ops=10: 0% dispatch, 81% memory, "
            "19% unexplained, 20.0 us per op over 10 ops") in \
        " ".join(why_section.sentences(_rows_of(why)))


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
    why = _why([priced], LIMITS)
    row = why.iloc[0]
    excess_ns = 130e3 - 20e3 - 3 * 4 * n / 100.0
    assert row.pool_ms == pytest.approx((100 + 2) * excess_ns / 1e6)
    assert row.remainder_ms == pytest.approx(30.0 - row.dispatch_ms - row.pool_ms
                                             - row.kernels_ms)
    assert row.pool_share + row.dispatch_share + row.kernels_share + row.remainder_share == \
        pytest.approx(1.0)
    assert "op sizes (thread pool)" in " ".join(why_section.sentences(_rows_of(why)))
    unpriced = _cell(n, "torch", 30.0, 100, 20.0)   # no sizes counted: no pool, not zero
    assert np.isnan(_why([unpriced], LIMITS)["pool_ms"].iloc[0])


def test_a_product_timed_at_its_size_is_not_pooled_again():
    """JAX hands a 128 x 128 product to a worker thread: the product probe's time at that size
    holds the hand-off (its 1 x 1 product's call left out), and the add probe's price at
    16,384 elements counted it a second time (jax at 128: -39%). The workload's one product
    leaves the pool; an add of the same size in the step stays in it."""
    from tests.recorded_runs import record_of as _record

    side, excess_ns = 128, 9e3
    why = {"ops": 2, "dispatch_ns": 10e3, "op_sizes": {str(side**2): 2},
           "size_ns": {str(side**2): 10e3 + excess_ns + 3 * 4 * side**2 / 100.0},
           "product": {"side": side, "ns": 40e3, "call_ns": 10e3}}

    def pool_ms(why: dict) -> float:
        cell = _record("matmul", {"size": side}, "jax", [0.1] * 6, 1, 0)
        cell = replace(cell, result=replace(cell.result, why=why))
        return _why([cell], LIMITS)["pool_ms"].iloc[0]

    assert pool_ms(why) == pytest.approx(excess_ns / 1e6)   # the add's; the product's left
    assert pool_ms({**why, "product": None}) == pytest.approx(2 * excess_ns / 1e6)


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
    why = _why(cells, LIMITS)
    rows = {r.mode: r for r in why.itertuples()}
    assert rows["jax-jit"].compiled_bytes_per_call == fused
    assert rows["jax-jit"].memory_ms == pytest.approx(fused / 100e9 * 1e3)
    assert rows["jax"].memory_ms == pytest.approx(3 * 4 * n * 100 / 100e9 * 1e3)
    # The values of an interleaved sweep share one count: it is not any one value's
    swept = [replace(c, spec=replace(c.spec, interleaved={"ops": [100, 200]})) for c in cells]
    why = _why(swept, LIMITS)
    assert why.set_index("mode")["compiled_bytes_per_call"].isna().all()


def test_element_wise_flops_are_priced_at_the_fused_add_rate():
    """An element-wise workload's FLOPs are adds: priced at the fused chain's 20 GFLOP/s, not a
    matmul rate; a workload that says nothing keeps the matmul rate."""
    limits = {**LIMITS, "elementwise_gflops": {"float32": 20.0}}
    records = [_cell(100_000, "jax-jit", 1.0, 100, 20.0)]
    why = _why(records, limits)
    assert why["compute_ms"].iloc[0] == pytest.approx(100_000 * 100 / 20e9 * 1e3)
    matmul = record({"workload": "matmul", "params": {"size": 128}, "mode": "jax",
                     "dtype": "float32"}, records[0].result.to_json())
    why = _why([matmul], limits)
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
    row = _why(cells, limits).iloc[0]
    ns_per_add = np.mean([0.3e6, 0.5e6]) / (60 * elements)
    assert row["compute_ms"] == pytest.approx(100 * n * ns_per_add / 1e6)
    assert row["compute_rate_from"] == "fused adds alongside"
    bare = [_cell(n, "jax-jit", 1.0, 100, 20.0)]
    row = _why(bare, limits).iloc[0]
    assert row["compute_rate_from"] == "fused adds"
    assert row["compute_ms"] == pytest.approx(100 * n / 20e9 * 1e3)


def test_a_fused_launch_on_the_cells_size_is_pool_beyond_its_traffic():
    """tf-xla's one add into a variable took 327 us at 1e5 elements and 137 us at one: XLA
    hands a loop that long to its threads. A launch on two tensors of 1e5 floats priced at
    400 us against the one-element launch's 250: 150 us less their traffic (1.6 MB at
    100 GB/s, 16 us) is the pool's, per graph; none without the sized launch."""
    n = 100_000
    sized = {"elements": n, "tensors": 2, "ns": 400e3}
    cell = _cell(n, "tf-xla", 1.0, 100, 250.0, launch_sized=sized)
    row = _why([cell], LIMITS).iloc[0]
    assert row["pool_ms"] == pytest.approx((400e3 - 250e3 - 2 * 2 * 4 * n / 100.0) / 1e6)
    assert row["dispatch_ms"] == pytest.approx(0.25)
    two = replace(cell, result=replace(cell.result, compiler={"graphs": 2}))
    row = _why([two], LIMITS).iloc[0]
    assert row["pool_ms"] == pytest.approx(2 * (400e3 - 250e3 - 16e3) / 1e6)
    bare = _cell(n, "tf-xla", 1.0, 100, 250.0)
    assert np.isnan(_why([bare], LIMITS)["pool_ms"].iloc[0])


def test_the_tax_is_explained_only_where_there_is_one():
    records = [_cell(1000, "torch", 1.0, 100, 9.0), _cell(1000, "torch-compile", 0.2, 100, 30.0),
               _cell(10, "torch", 0.1, 10, 9.0), _cell(10, "torch-compile", 0.3, 10, 30.0)]
    why = _why(records, LIMITS, significant=True)
    taxes = why_section.tax_table(_rows_of(why)).set_index("params")
    paying = taxes.loc["size=1000 ops=100"]
    assert paying["tax_ms"] == pytest.approx(0.8)
    # eager dispatch 100 x 9 us = 0.9 ms; compiled one launch of 30 us: 0.87 ms of the 0.8 ms
    assert paying["dispatch_explains"] == pytest.approx((0.9 - 0.03) / 0.8)
    assert np.isnan(taxes.loc["size=10 ops=10", "dispatch_explains"])   # compiled is slower


def test_a_tax_within_its_interval_is_not_split_into_shares():
    records = [_cell(1000, "torch", 1.0, 100, 9.0), _cell(1000, "torch-compile", 0.2, 100, 30.0)]
    taxes = why_section.tax_table(_rows_of(_why(records, LIMITS, significant=False)))
    assert taxes["tax_ms"].iloc[0] == pytest.approx(0.8)
    assert taxes[[f"{p}_explains" for p in explain.PARTS]].isna().all(axis=None)
