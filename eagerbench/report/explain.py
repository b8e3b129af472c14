"""Why a cell takes its time: the decomposition of a step into dispatch, kernels and the rest,
its compiler's diagnostics and its memory, from stored results only.

Each part is an estimate with a stated method:

- **dispatch** = dispatches per call x the price of one dispatch in this mode. An eager mode
  dispatches every framework op its program issues (counted per call: a dispatch mode in
  PyTorch, op callbacks in TensorFlow, the jaxpr's top-level operations in JAX); a compiled
  mode launches one graph per call for each graph compiled for its step (a graph break makes
  more). The price is the median time of the mode's cheapest call, measured in the same
  process, in the why phase after the cell's samples: one op on a one-element tensor, making a
  new tensor or (for the ops that do) updating one in place; or one call of a trivial compiled
  function that takes and returns as many tensors as the step.
- **kernels** = the larger of memory traffic (bytes per call at the measured bandwidth: the
  machine's cache's when the data fits in half the cache below the last level, where that
  was measured, otherwise the stream of the framework's ``b += a`` on vectors of the data's
  size timed after the cell's samples, or the machine's) and compute
  (FLOPs at the measured rate of their kind): the time the math needs
  if nothing else costs anything (a roofline). The bytes are the workload's count of what its
  ops read and write, or in a compiled mode whose compiler counts them (XLA's cost analysis,
  Inductor's graph metrics, tf-xla's optimised HLO) the compiled graphs' own, after fusion
  (not for the values of an interleaved sweep: their graphs are counted together). Past the
  cache, what the counted ops write into new tensors larger than half of it is read
  first (write-allocate) and counts twice, less the fresh pages the call faulted in (zeroed
  at the fault, then written in cache). Matmul
  FLOPs are priced at the rate of the mode's own product of their FLOPs per op (its
  compiler's, in a mode that generates code: XLA, Inductor; else the framework's), timed
  after the cell's samples (the price of calling a product left out), or without it on the
  machine's ladder; element-wise FLOPs at the rate of a fused chain of adds on data in cache:
  in a mode that fuses, its own compiler's chains timed after the cell's samples, else the
  machine's (``jax.jit``, probed once per run).
- **pool** = what the size of each counted op costs beyond a one-element op and its traffic,
  in an eager mode: an add on tensors of the op's size (in cache, at most 2^17 elements) is
  timed after the cell's samples in each process (the ops counted in one more step, before
  the timing), and the one-element op's price and the add's
  traffic at the cache's bandwidth are taken out. The rest is mostly the framework handing
  the op to its intra-op threads (TensorFlow's add: +140 us per op from 100,000 elements on a
  2-core VM). Ops under 4,096 elements are not priced (under 512 in JAX on a CPU, whose
  client hands a program of 1,000 FLOPs or more, an eager op too, to a worker thread). A
  graph that runs its ops one by one (tf-graph) counts its program's ops too and prices them
  inside a graph (chains of adds): the one-element op's price is then dispatch, the rest of
  each size's price pool. Fusing compiled modes' ops are not counted; for an element-wise
  cell in cache from as many elements, their launch is priced on tensors of the cell's
  vectors' size too (of 512 elements where the framework hands the step to a worker thread
  and would not a smaller launch: JAX on a CPU runs a program of under 1,000 FLOPs on the
  caller's thread), and what that costs beyond a one-element launch and those tensors'
  traffic is pool, per graph.
- **allocation** = the page faults one call takes x the measured price of a fresh page (small
  and huge pages apart; its fault, zeroing and release): an allocator that returns memory to
  the system and asks for it again pays the kernel to zero every page each time. Where a call
  faults 1,000 small pages or more, it is the cell's own kernel time instead: the kernel's
  share of the process's CPU time over the timed blocks, of the median call (on a VM that
  hands freed memory to its host, a fault's price swings with the host).
- **host syncs**: device values read by Python per call, counted.
- **remainder** = the measured time minus dispatch, kernels and allocation: lost fusion, cache
  misses, Python. Negative when the estimates explain more than the time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from eagerbench.records.limits import MachineLimits
from eagerbench.records.model import CompilerCounts, Facts, Record
from eagerbench.records.why import PRICED_FAULTS, SIZE_MAX_ELEMENTS, SIZE_MIN_ELEMENTS
from eagerbench.report import cellstats
from eagerbench.report.rows import CellRow

PARTS = ("dispatch", "pool", "kernels", "allocation", "remainder")
NO_LIMITS = MachineLimits({}, "cpu", 0, {}, {}, {}, {})   # a run without --limits
MIB = 2**20


def _mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else np.nan


def _dispatches(rec: Record) -> float:
    """Dispatches per call: every op in an eager mode; in a compiled mode one launch per graph
    compiled for the step (a graph break splits it into more; recompiles in the warm-up
    overcount), one when the compiler does not say."""
    why = rec.result.why
    if not rec.measured.compiled:
        ops = why.ops
        return float(ops) if ops is not None else np.nan
    return float(max(1, (rec.result.compiler or {}).get("graphs") or 1))


def _why_mean(recs: list[Record], key: str) -> float:
    return _mean([getattr(r.result.why, key) for r in recs])


def _dispatch_ms(recs: list[Record]) -> tuple[float, float]:
    """A cell's dispatches per call, and their time at the measured prices (the processes'
    means: each process counts its ops and prices them). An eager op that
    updates a tensor in place is priced by the in-place probe (it makes no new tensor, and
    costs less), every other dispatch by the mode's plain probe."""
    dispatches = _mean([_dispatches(r) for r in recs])
    price = _why_mean(recs, "dispatch_ns")
    if not np.isfinite(price) or not np.isfinite(dispatches):
        return dispatches, np.nan
    in_place = 0.0 if recs[0].measured.compiled else \
        min(np.nan_to_num(_why_mean(recs, "ops_in_place")), dispatches)
    in_place_price = _why_mean(recs, "dispatch_ns_in_place")
    in_place_price = in_place_price if np.isfinite(in_place_price) else price
    return dispatches, ((dispatches - in_place) * price + in_place * in_place_price) / 1e6


def _cache_gbps(limits: Optional[MachineLimits]) -> Optional[float]:
    """The bandwidth an op's traffic in cache is priced at: the machine's cache's, or its
    stream's where no cache was probed."""
    return limits.cache_gbps() if limits else None


def _size_excess_ms(sizes: dict, prices: dict, base: float | None, dtype: str,
                    limits: Optional[MachineLimits], smallest: int = SIZE_MIN_ELEMENTS) -> float:
    """What ops of the counted sizes (``{elements: ops}``) cost beyond a one-element op's
    ``base`` price and their traffic at the cache's bandwidth, each at the price (ns) of the
    nearest probed size, from ``smallest`` elements (the process's ``sized_from``); NaN
    without sizes, prices or a bandwidth. An op whose ``b += a``
    would not fit the cache (``cache_fit_bytes``) is left out: its traffic is priced at a
    stream of that add, which holds its hand-off to the threads (in a spell when the VM's
    second core was taken, a torch add cost 6 ms at 2^17 elements, and its stream alongside
    ran at 16 GB/s: counted in both, the parts came to 1.7x the call)."""
    bandwidth = _cache_gbps(limits)
    if not sizes or not prices or base is None or not bandwidth:
        return np.nan
    item = np.dtype(dtype).itemsize
    fit = limits.cache_fit_bytes() if limits else 0
    excess = {int(n): max(0.0, ns - base - 3 * item * int(n) / bandwidth)
              for n, ns in prices.items()}
    probed = np.array(sorted(excess))
    total = 0.0
    for elements, ops in sizes.items():
        if int(elements) < smallest or (fit and 2 * item * int(elements) > fit):
            continue
        size = min(int(elements), SIZE_MAX_ELEMENTS)
        nearest = probed[np.argmin(np.abs(np.log(probed) - np.log(size)))]
        total += ops * excess[int(nearest)]
    return total / 1e6


def _launch_pool_ms(rec: Record, dtype: str, limits: Optional[MachineLimits]) -> float:
    """A fused compiled mode's launches: what a launch on tensors of the cell's vectors' size
    cost beyond a one-element launch and the sized tensors' traffic (each read and written
    once) at the cache's bandwidth, per graph; NaN where the process priced no sized launch."""
    why = rec.result.why
    sized, launch = why.launch_sized, why.dispatch_ns
    bandwidth = _cache_gbps(limits)
    if not sized or launch is None or not np.isfinite(launch) or not bandwidth:
        return np.nan
    traffic = 2 * sized["tensors"] * np.dtype(dtype).itemsize * sized["elements"] / bandwidth
    return _dispatches(rec) * max(0.0, sized["ns"] - launch - traffic) / 1e6


def _pool_ms(rec: Record, dtype: str, limits: Optional[MachineLimits]) -> float:
    """An eager mode's counted ops: what their sizes cost beyond a one-element op and their
    traffic (see the module's docstring); a fused compiled mode's launches, what their size
    costs (``_launch_pool_ms``); NaN where the process priced neither."""
    if rec.measured.compiled:
        return _launch_pool_ms(rec, dtype, limits)
    why = rec.result.why
    return _size_excess_ms(_sizes_to_pool(rec), why.size_ns or {},
                           why.dispatch_ns_in_place or why.dispatch_ns,
                           dtype, limits, why.sized_from or SIZE_MIN_ELEMENTS)


def _sizes_to_pool(rec: Record) -> dict:
    """The counted ops' sizes (``{elements: ops}``) whose cost beyond a one-element op is the
    pool's. A product timed at its size in the mode (``product_gflops``) holds its hand-off to
    the threads in its kernel time (only a 1 x 1 product's call is left out): the workload's
    products at that size are left out here (jax at 128 x 128: a 9.1 us pool on top of a
    product that held it, -39%)."""
    why = rec.result.why
    sizes = dict(why.op_sizes or {})
    product, products = why.product, rec.measured.ops
    key = str(product["side"] ** 2) if product else None
    if key in sizes and products:
        sizes[key] = max(0, sizes[key] - int(products))
    return sizes


def _graph_ops_ms(rec: Record, dtype: str, limits: Optional[MachineLimits]) -> tuple[float, float]:
    """A graph that runs its ops one by one: its ops at the price of one inside a graph (the
    executor's dispatch), and what their sizes cost beyond that and their traffic; NaN where
    the process priced no graph ops."""
    why = rec.result.why
    prices, ops = why.graph_op_ns or {}, why.ops
    if "1" not in prices or ops is None:
        return np.nan, np.nan
    sized = {n: ns for n, ns in prices.items() if n != "1"}
    pool = _size_excess_ms(_sizes_to_pool(rec), sized, prices["1"], dtype, limits,
                           why.sized_from or SIZE_MIN_ELEMENTS) if sized else 0.0
    return ops * prices["1"] / 1e6, pool


def _allocation_ms(rec: Record, median_ms: float) -> float:
    """Fresh pages per call at their measured prices: the page faults one call took (an
    allocator that hands memory back to the system and asks for it again pays the kernel to
    zero every page, each time), small and huge pages priced apart. A call that faults
    ``PRICED_FAULTS`` small pages or more is priced by the cell's own kernel time instead: the
    kernel's share of the process's CPU time over its timed blocks, of its median call
    ``median_ms`` (what a fault costs on a VM swings with the host)."""
    why = rec.result.why
    memory, prices = why.memory or {}, why.fault_ns or {}
    small = prices.get("small")
    if memory.get("page_faults") is None or small is None:
        return np.nan
    small_pages, huge_pages = _fresh_pages(rec)
    kernel_share = memory.get("kernel_share")
    if small_pages >= PRICED_FAULTS and kernel_share is not None:
        return kernel_share * median_ms
    huge_price = prices.get("huge") or small * 512   # a 2 MiB page is 512 small ones
    return (small_pages * small + huge_pages * huge_price) / 1e6


def _fresh_pages(rec: Record) -> tuple[float, float]:
    """Small and huge pages one call faulted in (0 where none were counted)."""
    memory = rec.result.why.memory or {}
    faults = memory.get("page_faults") or 0
    huge = min(memory.get("huge_page_faults") or 0, faults)
    return faults - huge, huge


def bandwidth_gbps(facts: Facts, limits: MachineLimits,
                   stream: Optional[float] = None) -> tuple[Optional[float], str]:
    """The bandwidth the cell's data moves at, and what it was measured on: the cache's when
    its footprint fits in the cache that was measured in (256 KiB vectors; ``cache_fit_bytes``),
    else the ``b += a`` timed after the cell on vectors of its data's size, where there
    is one, else the machine's stream past the caches."""
    fit = limits.cache_fit_bytes()
    if facts.footprint and fit and facts.footprint <= fit and limits.cache_bandwidth_gbps:
        return limits.cache_bandwidth_gbps, "machine cache"
    if stream:
        return stream, "stream alongside"
    return limits.bandwidth_gbps, "machine stream"


def stream_gbps(recs: list[Record]) -> float | None:
    """GB/s of the framework's ``b += a`` past the caches, timed after the cell's samples in
    each of its processes (their mean time per byte); None where none was timed."""
    rates = [rate for rate in (r.result.why.stream_gbps for r in recs) if rate]
    return len(rates) / float(np.sum([1.0 / rate for rate in rates])) if rates else None


def compiled_bytes(recs: list[Record]) -> float | None:
    """The bytes per call the compiler counted in its graphs (the most any process saw: one
    that loaded its graphs from a cache counted none), None where it counted none."""
    counted = [(r.result.compiler or {}).get("bytes_accessed") or 0 for r in recs]
    return max(counted) if counted and max(counted) > 0 else None


def product_gflops(recs: list[Record]) -> float | None:
    """GFLOP/s of the mode's own product of the cell's FLOPs per op, timed between the
    cell's samples in each of its processes, the price of calling a product (a 1 x 1 one's)
    left out; None where no process timed one."""
    kernel_ns: list[float] = []
    side = 0
    for rec in recs:
        product = rec.result.why.product
        if product and product["ns"] > product["call_ns"]:
            kernel_ns.append(product["ns"] - product["call_ns"])
            side = product["side"]
    return 2.0 * side**3 / float(np.mean(kernel_ns)) if kernel_ns else None


def fused_add_gflops(recs: list[Record]) -> float | None:
    """GFLOP/s of the mode's own compiled chains of adds on in-cache vectors, timed between
    the cell's samples in each of its processes: the longer chain's extra adds over its extra
    time (the call and the vectors' traffic cancel), the processes' mean time per add; None
    where no process timed them."""
    ns_per_flop = []
    for rec in recs:
        chains = rec.result.why.fused_adds
        if chains and chains["ns"][1] > chains["ns"][0]:
            flops = (chains["adds"][1] - chains["adds"][0]) * chains["elements"]
            ns_per_flop.append((chains["ns"][1] - chains["ns"][0]) / flops)
    return 1.0 / float(np.mean(ns_per_flop)) if ns_per_flop else None


def _compute_rate(facts: Facts, dtype: str, limits: MachineLimits, product_rate: float | None,
                  fused_rate: float | None = None) -> tuple[float | None, str]:
    """GFLOP/s for the cell's FLOPs, and what it was measured on."""
    if facts.arithmetic == "elementwise" and fused_rate:
        return fused_rate, "fused adds alongside"
    if facts.arithmetic == "elementwise" and limits.elementwise_rate(dtype):
        return limits.elementwise_rate(dtype), "fused adds"
    # A product timed in the cell's process, just after it, saw nearly the machine the cell
    # did: two processes ten seconds apart ran torch's 512 x 512 product at 1.9 and 3.1 ms.
    if product_rate:
        return product_rate, "product alongside"
    # Else, for a workload that declares its ops, the rate of a product of its FLOPs per op
    # from the machine's ladder: a small matmul cannot run at the peak of a large one. The rate
    # is the framework's own library's (probed in each), the kernels it runs.
    return limits.matmul_rate(dtype, facts.flops / facts.ops if facts.flops and facts.ops
                       else None, facts.framework), "machine ladder"


def _faulted_bytes(rec: Record) -> float:
    """Bytes per call of the fresh pages one call faulted in (small and huge pages apart)."""
    small, huge = _fresh_pages(rec)
    return small * 4096 + huge * (2 << 20)


def write_allocated_bytes(recs: list[Record], limits: Optional[MachineLimits]) -> float:
    """Bytes per call the counted ops write into new tensors that do not fit the cache
    (``cache_fit_bytes``; the processes' mean; NaN where none counted them): such a write
    reads each line before it overwrites it (write-allocate), so it moves twice the bytes it
    writes. Here a torch add of 1e7 floats into another tensor past the caches took 1.33x
    and 1.42x the time of the same add in place, against 4/3 predicted. A fresh page is
    not read: the kernel zeroed it at its fault (priced as allocation), and the write finds
    its lines in cache, so the bytes a call faulted in are left out. (TensorFlow may hand an
    input's buffer to its result, which the count cannot see: there it is an upper bound.)"""
    fit = limits.cache_fit_bytes() if limits else 0
    return _mean([max(0.0, sum(int(size) * n for size, n in fresh.items() if int(size) > fit)
                      - _faulted_bytes(rec))
                  for rec, fresh in ((r, r.result.why.fresh_outputs) for r in recs)
                  if fresh is not None])


def _kernels_ms(facts: Facts, dtype: str, limits: Optional[MachineLimits],
                graph_bytes: float | None = None,
                product_rate: float | None = None, stream: float | None = None,
                fused_rate: float | None = None, write_allocated: float = np.nan) -> dict:
    """Memory traffic, compute and kernels (the larger) in ms per call, and what the
    bandwidth and the compute rate were measured on. Past the caches, the workload's bytes
    gain the reads of the lines its ops write into new tensors (``write_allocated``): a
    compiler's count already holds what its graphs write."""
    if limits is None:
        limits = NO_LIMITS
    bandwidth, bandwidth_from = bandwidth_gbps(facts, limits, stream)
    moved = graph_bytes or facts.bytes
    if moved and not graph_bytes and bandwidth_from != "machine cache":
        moved += np.nan_to_num(write_allocated)
    memory = moved / bandwidth / 1e6 if moved and bandwidth else np.nan
    peak, rate_from = _compute_rate(facts, dtype, limits, product_rate, fused_rate)
    compute = facts.flops / peak / 1e6 if facts.flops and peak else np.nan
    both = [v for v in (memory, compute) if np.isfinite(v)]
    return {"memory_ms": memory, "compute_ms": compute,
            "kernels_ms": max(both) if both else np.nan,
            "bandwidth_from": bandwidth_from if np.isfinite(memory) else "",
            "compute_rate_from": rate_from if np.isfinite(compute) else ""}


def _memory(ok: list[Record]) -> dict:
    mem = [r.result.why.memory for r in ok if r.result.why.taken]
    peak = _mean([m.get("rss_peak_bytes") for m in mem])
    before = _mean([m.get("rss_before_bytes") for m in mem])
    return {"rss_peak_mib": peak / MIB, "step_transient_mib": (peak - before) / MIB,
            "device_peak_mib": _mean([m.get("device_peak_bytes") for m in mem]) / MIB}


def _compiler(ok: list[Record]) -> dict[str, Any]:
    first = next((r.result.compiler for r in ok if r.result.compiler), CompilerCounts())
    breaks = first.get("graph_breaks") or {}
    split = first.get("compile_split_s") or {}
    return {"graphs": first.get("graphs", np.nan),
            "graph_breaks": sum(breaks.values()) if "graph_breaks" in first else np.nan,
            # Dynamo's reasons run to paragraphs (explanation, hints, a link): the first line
            "graph_break_reasons": "; ".join(f"{reason.strip().splitlines()[0]} (x{n})"
                                             for reason, n in breaks.items()),
            "compile_split": ", ".join(f"{phase} {s:.3g} s" for phase, s in split.items())}


def cell_row(recs: list[Record], median_ms: float, limits: Optional[MachineLimits]) -> dict:
    """One cell's decomposition, diagnostics and memory (its processes averaged)."""
    ok = [r for r in recs if r.result.ok]
    facts, spec = ok[0].measured, ok[0].spec
    ops = _why_mean(ok, "ops")
    dispatches, dispatch_ms = _dispatch_ms(ok)
    dispatch_us = dispatch_ms / dispatches * 1e3 if dispatches else np.nan
    # A sweep's values share one process and one count of the graphs compiled for them all
    graph_bytes = compiled_bytes(ok) if facts.compiled and not spec.interleaved else None
    write_allocated = write_allocated_bytes(ok, limits)
    kernels = _kernels_ms(facts, spec.dtype, limits, graph_bytes, product_gflops(ok),
                          stream_gbps(ok), fused_add_gflops(ok), write_allocated)
    memory_ms, kernels_ms = kernels["memory_ms"], kernels["kernels_ms"]
    allocation_ms = _mean([_allocation_ms(r, median_ms) for r in ok])
    pool_ms = _mean([_pool_ms(r, spec.dtype, limits) for r in ok])
    in_graph = [_graph_ops_ms(r, spec.dtype, limits) for r in ok]
    graph_ops_ms = _mean([ms for ms, _ in in_graph])
    if np.isfinite(graph_ops_ms):   # the graph's own dispatches, and its ops' sizes
        dispatch_ms += graph_ops_ms
        pool_ms = _mean([pool for _, pool in in_graph])
    explained = np.nansum([dispatch_ms, pool_ms, kernels_ms, allocation_ms]) \
        if np.isfinite(dispatch_ms) else np.nan
    remainder_ms = median_ms - explained
    row = {"ops_per_call": ops,
           "in_place_ops_per_call": _why_mean(ok, "ops_in_place"),
           "dispatches_per_call": dispatches,
           "us_per_dispatch": dispatch_us,
           "us_per_graph_op": _mean([(r.result.why.graph_op_ns or {}).get("1")
                                     for r in ok]) / 1e3,
           "dispatch_ms": dispatch_ms, "pool_ms": pool_ms,
           "compiled_bytes_per_call": graph_bytes if graph_bytes else np.nan,
           "write_allocated_bytes_per_call": write_allocated,
           **kernels,
           "bound": "" if not np.isfinite(kernels_ms) else
           ("memory" if kernels_ms == memory_ms else "compute"),
           "page_faults_per_call": _mean([(r.result.why.memory or {})
                                          .get("page_faults") for r in ok]),
           "allocation_ms": allocation_ms,
           "host_syncs_per_call": _mean([r.result.host_reads_per_call for r in ok]),
           "remainder_ms": remainder_ms,
           "notes": "; ".join(sorted({n for r in ok for n in r.result.why.notes}))}
    for part in PARTS:
        row[f"{part}_share"] = row[f"{part}_ms"] / median_ms if median_ms else np.nan
    return {**row, **_compiler(ok), **_memory(ok)}


@dataclass(frozen=True)
class WhyRow:
    """One measured cell's decomposition (ms per call and shares of its time), its compiler's
    diagnostics and its memory, its processes averaged; NaN where a part was not priced.
    ``why.csv`` has these columns, in this order."""

    workload: str
    params: str
    mode: str
    eager_twin: str
    compiled: bool
    median_ms: float
    vs_eager_significant: bool
    ops_per_call: float                   # framework ops dispatched per call (eager)
    in_place_ops_per_call: float
    dispatches_per_call: float            # ops, or graphs launched (compiled)
    us_per_dispatch: float
    us_per_graph_op: float                # an op inside a graph that runs them one by one
    dispatch_ms: float
    pool_ms: float
    compiled_bytes_per_call: float        # the compiler's count, after fusion
    write_allocated_bytes_per_call: float
    memory_ms: float
    compute_ms: float
    kernels_ms: float                     # the larger of memory and compute
    bandwidth_from: str                   # what the bandwidth was measured on
    compute_rate_from: str                # what the compute rate was measured on
    bound: str                            # "memory", "compute" or ''
    page_faults_per_call: float
    allocation_ms: float
    host_syncs_per_call: float
    remainder_ms: float
    notes: str
    dispatch_share: float
    pool_share: float
    kernels_share: float
    allocation_share: float
    remainder_share: float
    graphs: float
    graph_breaks: float
    graph_break_reasons: str
    compile_split: str
    rss_peak_mib: float
    step_transient_mib: float
    device_peak_mib: float

    def ms(self, part: str) -> float:
        """A part's time per call (``PARTS``)."""
        return float(getattr(self, f"{part}_ms"))

    def share(self, part: str) -> float:
        """A part's share of the time per call (``PARTS``)."""
        return float(getattr(self, f"{part}_share"))


def why_rows(records: list[Record], cells: list[CellRow],
             limits: Optional[MachineLimits]) -> list[WhyRow]:
    """One row per measured cell: its time, the decomposition, the compiler's diagnostics and
    memory."""
    groups = cellstats.by_cell(records)
    rows = []
    for r in cells:
        recs = groups.get(r.key)
        if not r.ok or not recs:
            continue
        rows.append(WhyRow(workload=r.workload, params=r.params, mode=r.mode,
                           eager_twin=r.eager_twin, compiled=r.compiled, median_ms=r.median_ms,
                           vs_eager_significant=bool(r.vs_eager and r.vs_eager.significant),
                           **cell_row(recs, r.median_ms, limits)))
    return rows


def why_frame(rows: list[WhyRow]) -> pd.DataFrame:
    """The rows as ``why.csv``'s table."""
    return pd.DataFrame([dataclasses.asdict(row) for row in rows])


def why_table(records: list[Record], cells: list[CellRow],
              limits: Optional[MachineLimits]) -> pd.DataFrame:
    """``why_rows`` as ``why.csv``'s table."""
    return why_frame(why_rows(records, cells, limits))


