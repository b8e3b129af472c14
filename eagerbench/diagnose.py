"""What a step issues and holds, measured after its timed samples (outside the clock): the
memory it peaks at, the framework ops it dispatches, what one dispatch costs in this process,
and what the compiler did. ``explain`` turns these into the time decomposition of a report.
"""

from __future__ import annotations

import mmap
import re
import resource
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from eagerbench.timer import BLOCK_TARGET_NS, MAX_BLOCK_CALLS, block_size

# A sample is a block as long as a cell's, of as many calls at most (a one-element op: ~1 us)
PROBE_SAMPLES = 15    # samples at least; the median is kept (7 swung by 2x on this VM)


def _proc_number(path: str, pattern: str) -> Optional[int]:
    """The number ``pattern``'s group matches in a /proc file, None where there is none."""
    try:
        with open(path) as proc:
            match = re.search(pattern, proc.read(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _status_kib(field: str) -> Optional[int]:
    return _proc_number("/proc/self/status", rf"^{field}:\s+(\d+) kB")


def reset_peak_rss() -> bool:
    """Start a new high-water mark of this process's resident memory (Linux ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def minor_faults() -> int:
    """Page faults this process has taken that mapped memory without reading a disk: each is
    a fresh page the kernel zeroed, most often because an allocator returned memory to the
    system and asked for it again."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _cpu_ns() -> tuple[int, int]:
    """This process's CPU time so far, every thread's, in user and in kernel mode."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int(usage.ru_utime * 1e9), int(usage.ru_stime * 1e9)


def huge_page_faults() -> Optional[int]:
    """Faults that mapped a 2 MiB transparent huge page, machine-wide (Linux counts these
    only for the whole system; on a benchmark machine they are the worker's)."""
    return _proc_number("/proc/vmstat", r"^thp_fault_alloc (\d+)$")


@dataclass
class FaultTally:
    """Page faults summed over the blocks it watches (every timed block of a cell), small
    and huge: an allocator that keeps a freed buffer in one block and hands it back to the
    system in another faults in some blocks only (jax at 1e7 elements: none in the first
    block watched, 9,766 a call in a loop by hand)."""

    faults: int = 0
    huge: Optional[int] = 0
    calls: int = 0
    user_ns: int = 0      # the process's CPU time in user mode over the blocks, every thread's
    kernel_ns: int = 0    # and in the kernel (page faults, zeroing, releases, system calls)

    @contextmanager
    def watch(self, calls: int):
        """Count the faults of ``calls`` calls made inside (outside their clock), and the
        process's CPU time in user and kernel mode."""
        faults, huge, before = minor_faults(), huge_page_faults(), _cpu_ns()
        yield
        after = _cpu_ns()
        self.faults += minor_faults() - faults
        huge_after = huge_page_faults()
        self.huge = self.huge + huge_after - huge \
            if None not in (self.huge, huge, huge_after) else None
        self.calls += calls
        self.user_ns += after[0] - before[0]
        self.kernel_ns += after[1] - before[1]

    def kernel_share(self) -> Optional[float]:
        """The kernel's share of the process's CPU time over the blocks (summed over them all:
        a block's own share moves by a clock tick of the kernel's accounting, and an
        allocator faults in some blocks only); None before any CPU time is counted."""
        spent = self.user_ns + self.kernel_ns
        return self.kernel_ns / spent if spent > 0 else None

    def per_call(self) -> dict:
        """``page_faults`` and ``huge_page_faults`` per call (``watch_memory``'s); empty
        before any block."""
        if not self.calls:
            return {}
        return {"page_faults": self.faults / self.calls,
                "huge_page_faults": self.huge / self.calls if self.huge is not None else None}


@contextmanager
def watch_memory(backend, calls: int = 1):
    """Host and device memory around ``calls`` calls of a step made inside: resident before,
    the high-water mark during them (the step's transient allocations on top of what is
    held), and the page faults per call (fresh pages, small and huge). Reading them costs
    nothing while the calls run, so a timed sample can be watched."""
    found: dict = {}
    rss_before = _status_kib("VmRSS")
    fresh = reset_peak_rss()
    backend.reset_peak_device_memory()
    tally = FaultTally()
    with tally.watch(calls):
        yield found
    peak = _status_kib("VmHWM") if fresh else None
    found.update({
        "rss_before_bytes": rss_before * 1024 if rss_before is not None else None,
        "rss_peak_bytes": peak * 1024 if peak is not None else None,
        "device_peak_bytes": backend.peak_device_memory(),
        **tally.per_call()})


def step_memory(step: Callable, block: Callable, st: Any, mem: Any, backend) -> tuple[dict, Any]:
    """``watch_memory`` around one call of the step."""
    with watch_memory(backend) as found:
        st, mem = step(st, mem)
        block((st, mem))
    return found, (st, mem)


FAULT_PROBE_BYTES = 64 << 20
# Small page faults a call from which a cell's fresh pages are priced by its own kernel time
# (4 MiB; at 1 to 4 us a page, a millisecond or more a call, most of the process's kernel
# time).
PRICED_FAULTS = 1000
HUGE_WARM_UP = 6      # mappings of huge pages touched before the huge price is taken


def _touch_fresh_pages(huge: bool, threads: int) -> tuple[int, int, Optional[int]]:
    """Touch every page of a fresh anonymous mapping once, from ``threads`` threads (a kernel
    writing a fresh tensor faults from all its threads at once, and faults run in parallel),
    then hand it back: wall nanoseconds, faults taken, and how many of them mapped a huge
    page. The release is timed too: a step whose memory stays level releases as many pages
    as it faults (by hand, 0.08 to 0.2 us a small page: 40 ms of jax's 1 GiB add)."""
    import threading

    import numpy as np

    # Private, as an allocator maps it (a shared anonymous mapping is shmem, never huge).
    area = mmap.mmap(-1, FAULT_PROBE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        if huge:
            area.madvise(mmap.MADV_HUGEPAGE)
        view = np.frombuffer(area, dtype=np.uint8)
        share = FAULT_PROBE_BYTES // threads // (2 << 20) * (2 << 20)   # huge-page aligned
        parts = [view[i * share:(i + 1) * share if i < threads - 1 else None:4096]
                 for i in range(threads)]
        workers = [threading.Thread(target=part.fill, args=(1,)) for part in parts]
        faults, huge_faults = minor_faults(), huge_page_faults()
        started = time.perf_counter_ns()
        for worker in workers:   # NumPy lets the GIL go while it fills
            worker.start()
        for worker in workers:
            worker.join()
        del view, parts
        area.close()   # the release, on the clock; the counters are read off it
        elapsed = time.perf_counter_ns() - started
        faults, huge_after = minor_faults() - faults, huge_page_faults()
    finally:
        area.close()   # a no-op once closed
    return elapsed, faults, (huge_after - huge_faults if huge_faults is not None and
                             huge_after is not None else None)


def fault_ns(threads: int = 1) -> dict:
    """What one fresh page costs this process, in wall ns with ``threads`` threads faulting
    at once: ``small``, touching each page of a fresh anonymous 64 MiB mapping once and
    handing it back (the fault, the kernel zeroing the page, its release), per fault, the
    median of three; ``huge``, a 2 MiB transparent huge page priced the same way after
    ``HUGE_WARM_UP`` mappings (asked for with ``madvise``; the small pages at the mapping's
    unaligned ends are taken out at the small price), None where none could be had."""
    small = sorted(ns / max(n, 1) for ns, n, _ in
                   (_touch_fresh_pages(False, threads) for _ in range(3)))[1]
    huge = []
    if hasattr(mmap, "MADV_HUGEPAGE"):
        # A process's first few hundred MiB of huge pages cost ~10x more (the kernel compacts
        # memory to find them); a step that faults huge pages every call gets those it freed.
        for _ in range(HUGE_WARM_UP):
            _touch_fresh_pages(True, threads)
        for ns, n, hugepages in (_touch_fresh_pages(True, threads) for _ in range(3)):
            if hugepages:
                huge.append((ns - (n - hugepages) * small) / hugepages)
    return {"small": small, "huge": sorted(huge)[len(huge) // 2] if huge else None}


class Probe:
    """Samples of one dispatch probe's price: ns per call, waited on in blocks. ``sample`` may
    be called between a unit's timed rounds, so that the price sees the machine as the cell's
    samples did (on this VM, a probe run just after a cell priced its ops 25% dearer than the
    cell's whole ops took)."""

    def __init__(self, backend, call: Callable[[], Any], as_a_cell: bool = False) -> None:
        self.backend, self.call, self.samples = backend, call, []
        for _ in range(2):   # compile, and warm
            backend.block(call())
        started = time.perf_counter_ns()
        backend.block(call())
        elapsed = max(time.perf_counter_ns() - started, 1)
        self.calls = block_size(elapsed) if as_a_cell else \
            int(min(MAX_BLOCK_CALLS, max(5, BLOCK_TARGET_NS / elapsed)))
        self.warmed = not as_a_cell or self.calls > 1

    def sample(self) -> None:
        """One block of calls, after a waited call that leaves the queue empty and wakes the
        framework's threads, as a cell's block starts. A probe made ``as_a_cell`` is timed
        as a cell's sample is (``block_size``): a call of 1 ms or more alone and unwarmed,
        its data where the unit's other work left it (a warmed block of adds on 40 MB
        vectors ran at 62 GB/s beside a cell's single adds of that size at 38, the
        last-level cache holding the probe's vectors)."""
        call, block = self.call, self.backend.block
        if self.warmed:
            block(call())
        started = time.perf_counter_ns()
        for _ in range(self.calls - 1):
            call()
        block(call())
        self.samples.append((time.perf_counter_ns() - started) / self.calls)

    def price(self) -> float:
        """The median sample, after topping the samples up to ``PROBE_SAMPLES``."""
        while len(self.samples) < PROBE_SAMPLES:
            self.sample()
        ordered = sorted(self.samples)
        return ordered[len(ordered) // 2]


def probe(backend, kind: str = "new", elements: int = 1, tensors: int = 1) -> Optional[Probe]:
    """A ``Probe`` of the backend's dispatch probe of that kind (an op in an eager mode, a
    launch of ``tensors`` tensors in a compiled mode, compiled here), or None where the
    backend has none."""
    call = backend.dispatch_probe(kind, elements, tensors)
    return None if call is None else Probe(backend, call)


def dispatch_ns(backend, kind: str = "new", elements: int = 1) -> Optional[float]:
    """Median nanoseconds of one call of the backend's dispatch probe of that kind, taken now:
    the price of one op in an eager mode, of one graph launch in a compiled mode. None where
    the backend has no probe of that kind."""
    taken = probe(backend, kind, elements)
    return None if taken is None else taken.price()


def product_probes(backend, side: int) -> tuple[Probe, Probe]:
    """Probes of the product the mode runs, of two ``side`` x ``side`` matrices, and of a 1 x 1
    product: the second is the price of calling a product, which the first's kernel time
    leaves out. Each product takes the one before's (its values stay ``1 / side``). A mode
    that generates its own code (``fuses_ops``: XLA, Inductor) runs its compiler's product,
    compiled here (XLA's product of two 1024 x 1024 floats took 8.5 ms here, TensorFlow's
    own 6.8 ms); any other runs the framework's."""
    def product(pair):
        return backend.matmul(*pair)

    run = backend.compile_function(product, "product_probe") if backend.fuses_ops else product

    def chained(n: int) -> Callable[[], Any]:
        # Two tensors: a first call on one tensor twice would compile for that aliasing
        a = backend.asarray(np.full((n, n), 1.0 / n))
        last = [backend.asarray(np.full((n, n), 1.0 / n))]

        def call():
            last[0] = run((a, last[0]))
            return last[0]
        return call

    return Probe(backend, chained(side)), Probe(backend, chained(1))


def fused_add_probes(backend) -> Optional[tuple[Probe, Probe]]:
    """Probes of the mode's own compiled chains of ``CHAIN_ADDS`` adds (as the machine's
    probe: 20 and 80) on in-cache vectors of ``CHAIN_ELEMS``: their difference is the price of
    fused element-wise arithmetic, without the call or the vectors' traffic. None in a mode
    that does not fuse."""
    from eagerbench.limits import CHAIN_ADDS, CHAIN_ELEMS

    calls = [backend.fused_add_probe(adds, CHAIN_ELEMS) for adds in CHAIN_ADDS]
    return None if None in calls else (Probe(backend, calls[0]), Probe(backend, calls[1]))


STREAM_ELEMENTS = 1 << 25   # as the machine's probe: 128 MiB per float32 vector, past most caches


def stream_probe(backend, elements: int = STREAM_ELEMENTS) -> Probe:
    """A ``Probe`` of the framework's ``b += a`` on vectors of ``elements``, in place: what the
    machine's memory streams at in this process (3 x the vectors' bytes per call), each
    sample timed as a cell's is."""
    return Probe(backend, backend.stream_add(elements), as_a_cell=True)


# An op's size costs more than its traffic once the framework splits it over its intra-op
# thread pool (TensorFlow's eager add: 107 us per op at 92,682 elements, 248 us at 100,000, here).
# Sizes are priced from this many elements up (below, the extra is within the probe's noise:
# priced from 512, torch's 1,000-element adds came to 1.3x the cell with their dispatch), or
# from a backend's ``sized_from`` where it hands smaller ops to a thread; at most this many
# (a larger probe would leave the cache: a larger op is priced at this size).
SIZE_MIN_ELEMENTS = 1 << 12
SIZE_MAX_ELEMENTS = 1 << 17
SIZE_PROBES = 6        # the sizes with the most ops; the others take the nearest one's price


def probe_sizes(sizes: dict, smallest: int = SIZE_MIN_ELEMENTS) -> list[int]:
    """The op sizes to price (elements), from ``count_ops``'s ``{elements: ops}``, from
    ``smallest`` up."""
    clipped: Counter = Counter()
    for elements, ops in sizes.items():
        if int(elements) >= smallest:
            clipped[min(int(elements), SIZE_MAX_ELEMENTS)] += ops
    return sorted(n for n, _ in clipped.most_common(SIZE_PROBES))


# An op in a graph: two chains' difference per op (the call cancels). The call is ~0.5 ms in
# tf.function here and its median moves by tens of us, so the chains are 300 ops apart: 60 apart,
# an op at one element was priced at 0.08 to 0.51 us in three runs of one process, 300 apart
# at 0.20 to 0.40.
GRAPH_CHAIN_OPS = (20, 320)


class SizeProbes:
    """What a counted op costs at each of its sizes to price, sampled between a unit's timed
    rounds. In an eager mode: one add on tensors of each size (in place where the framework
    updates in place, as its cheapest op is priced), its dispatch, traffic and the
    framework's handing it to its threads. In a graph that runs its ops one by one: compiled
    chains of 320 and of 20 in-place adds, at one element and at each size, their medians'
    difference per add; the launch and the call's other fixed costs cancel, the executor's
    handing each op to a kernel and to the intra-op threads does not (tf.function here:
    0.37 us per add at one element, 24 us at 100,000)."""

    def __init__(self, backend, sizes: dict) -> None:
        self.in_graph = backend.runs_graph_ops
        if self.in_graph:
            self.probes = {n: [Probe(backend, backend.graph_op_probe(ops, n))
                               for ops in GRAPH_CHAIN_OPS]
                           for n in [1] + probe_sizes(sizes, backend.sized_from())}
        else:
            kind = "in_place" if backend.updates_in_place else "new"
            self.probes = {n: [probe(backend, kind, n)]
                           for n in probe_sizes(sizes, backend.sized_from())}

    @property
    def samples(self) -> int:
        """The fewest samples any of the probes has taken."""
        return min((len(p.samples) for chain in self.probes.values() for p in chain), default=0)

    def sample(self) -> None:
        """One sample of every probe, in turn (a graph's two chains side by side)."""
        for chain in self.probes.values():
            for each in chain:
                each.sample()

    def prices(self) -> dict[str, float]:
        """ns per op at each size (``{"1": ..., str(elements): ...}`` in a graph), the
        samples topped up to ``PROBE_SAMPLES``."""
        while self.probes and self.samples < PROBE_SAMPLES:
            self.sample()
        if not self.in_graph:
            return {str(n): chain[0].price() for n, chain in self.probes.items()}
        short, long = GRAPH_CHAIN_OPS
        return {str(n): max(0.0, (chains[1].price() - chains[0].price()) / (long - short))
                for n, chains in self.probes.items()}


def compiler_delta(before: dict, after: dict) -> dict:
    """The change of ``Backend.graph_diagnostics`` counters over one cell."""
    out: dict = {}
    if "graphs" in after:
        out["graphs"] = after["graphs"] - before.get("graphs", 0)
    if "bytes_accessed" in after:
        out["bytes_accessed"] = after["bytes_accessed"] - before.get("bytes_accessed", 0.0)
    if "graph_breaks" in after:
        old = before.get("graph_breaks", {})
        out["graph_breaks"] = {reason: n - old.get(reason, 0)
                               for reason, n in after["graph_breaks"].items()
                               if n - old.get(reason, 0) > 0}
    if "compile_split_s" in after:
        old = before.get("compile_split_s", {})
        out["compile_split_s"] = {phase: s - old.get(phase, 0.0)
                                  for phase, s in after["compile_split_s"].items()}
    return out


def compiler_plus(counters: dict, delta: dict) -> dict:
    """``graph_diagnostics`` counters advanced by a ``compiler_delta``: the baseline a unit's
    change is taken from, once the compiles of a probe built during the unit are left out."""
    out = dict(counters)
    for key in ("graphs", "bytes_accessed"):
        if key in delta:
            out[key] = counters.get(key, 0) + delta[key]
    for key in ("graph_breaks", "compile_split_s"):
        if key in delta:
            merged = dict(counters.get(key, {}))
            for name, value in delta[key].items():
                merged[name] = merged.get(name, 0) + value
            out[key] = merged
    return out
