"""What a step holds and faults: its memory around a timed sample, its page faults over every
timed block (``FaultTally``), and what one fresh page costs this process (``fault_ns``). The
counters are read outside the clock, around a block, never inside it."""

from __future__ import annotations

import mmap
import re
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from eagerbench.frameworks.backends.base import Backend
from eagerbench.records.why import FaultPrices, MemoryUse
from eagerbench.worker.clock import Step


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
    def watch(self, calls: int) -> Iterator[None]:
        """Count the faults of ``calls`` calls made inside (outside their clock), and the
        process's CPU time in user and kernel mode."""
        faults, huge, before = minor_faults(), huge_page_faults(), _cpu_ns()
        yield
        after = _cpu_ns()
        self.faults += minor_faults() - faults
        huge_after = huge_page_faults()
        self.huge = self.huge + huge_after - huge \
            if self.huge is not None and huge is not None and huge_after is not None else None
        self.calls += calls
        self.user_ns += after[0] - before[0]
        self.kernel_ns += after[1] - before[1]

    def kernel_share(self) -> Optional[float]:
        """The kernel's share of the process's CPU time over the blocks (summed over them all:
        a block's own share moves by a clock tick of the kernel's accounting, and an
        allocator faults in some blocks only); None before any CPU time is counted."""
        spent = self.user_ns + self.kernel_ns
        return self.kernel_ns / spent if spent > 0 else None

    def per_call(self) -> MemoryUse:
        """``page_faults`` and ``huge_page_faults`` per call (``watch_memory``'s); empty
        before any block."""
        if not self.calls:
            return MemoryUse()
        return MemoryUse(page_faults=self.faults / self.calls,
                         huge_page_faults=self.huge / self.calls if self.huge is not None
                         else None)


@contextmanager
def watch_memory(backend: Backend, calls: int = 1) -> Iterator[MemoryUse]:
    """Host and device memory around ``calls`` calls of a step made inside: resident before,
    the high-water mark during them (the step's transient allocations on top of what is
    held), and the page faults per call (fresh pages, small and huge). Reading them costs
    nothing while the calls run, so a timed sample can be watched."""
    found = MemoryUse()
    rss_before = _status_kib("VmRSS")
    fresh = reset_peak_rss()
    backend.reset_peak_device_memory()
    tally = FaultTally()
    with tally.watch(calls):
        yield found
    peak = _status_kib("VmHWM") if fresh else None
    found.update(MemoryUse(
        rss_before_bytes=rss_before * 1024 if rss_before is not None else None,
        rss_peak_bytes=peak * 1024 if peak is not None else None,
        device_peak_bytes=backend.peak_device_memory(), **tally.per_call()))


def step_memory(step: Step, block: Callable[[Any], None], st: Any, mem: Any,
                backend: Backend) -> tuple[MemoryUse, Any]:
    """``watch_memory`` around one call of the step."""
    with watch_memory(backend) as found:
        st, mem = step(st, mem)
        block((st, mem))
    return found, (st, mem)


FAULT_PROBE_BYTES = 64 << 20
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


def fault_ns(threads: int = 1) -> FaultPrices:
    """What one fresh page costs this process, in wall ns with ``threads`` threads faulting
    at once: ``small``, touching each page of a fresh anonymous 64 MiB mapping once and
    handing it back (the fault, the kernel zeroing the page, its release), per fault, the
    median of three; ``huge``, a 2 MiB transparent huge page priced the same way after
    ``HUGE_WARM_UP`` mappings (asked for with ``madvise``; the small pages at the mapping's
    unaligned ends are taken out at the small price), None where none could be had."""
    small = sorted(ns / max(n, 1) for ns, n, _ in
                   (_touch_fresh_pages(False, threads) for _ in range(3)))[1]
    huge: list[float] = []
    if hasattr(mmap, "MADV_HUGEPAGE"):
        # A process's first few hundred MiB of huge pages cost ~10x more (the kernel compacts
        # memory to find them); a step that faults huge pages every call gets those it freed.
        for _ in range(HUGE_WARM_UP):
            _touch_fresh_pages(True, threads)
        for ns, n, hugepages in (_touch_fresh_pages(True, threads) for _ in range(3)):
            if hugepages:
                huge.append((ns - (n - hugepages) * small) / hugepages)
    return FaultPrices(small=small, huge=sorted(huge)[len(huge) // 2] if huge else None)
