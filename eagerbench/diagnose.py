"""What a step issues and holds, measured after its timed samples (outside the clock): the
memory it peaks at, the framework ops it dispatches, what one dispatch costs in this process,
and what the compiler did. ``explain`` turns these into the time decomposition of a report.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Optional

PROBE_CALLS = 200     # calls of the dispatch probe per sample
PROBE_SAMPLES = 7     # samples; the median is kept


def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as status:
            match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def reset_peak_rss() -> bool:
    """Start a new high-water mark of this process's resident memory (Linux ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def step_memory(step: Callable, block: Callable, st: Any, mem: Any, backend) -> tuple[dict, Any]:
    """Host and device memory around one call of the step: resident before, and the
    high-water mark during it (the step's transient allocations on top of what is held)."""
    rss_before = _status_kib("VmRSS")
    fresh = reset_peak_rss()
    backend.reset_peak_device_memory()
    st, mem = step(st, mem)
    block((st, mem))
    peak = _status_kib("VmHWM") if fresh else None
    out = {"rss_before_bytes": rss_before * 1024 if rss_before is not None else None,
           "rss_peak_bytes": peak * 1024 if peak is not None else None,
           "device_peak_bytes": backend.peak_device_memory()}
    return out, (st, mem)


def dispatch_ns(backend, probe: Optional[Callable[[], Any]] = None) -> float:
    """Median nanoseconds of one call of ``probe`` (by default the backend's dispatch probe),
    waited on in blocks: the price of one op in an eager mode, of one graph launch in a
    compiled mode."""
    probe = probe or backend.dispatch_probe()
    for _ in range(3):   # compile, and warm
        backend.block(probe())
    samples = []
    for _ in range(PROBE_SAMPLES):
        started = time.perf_counter_ns()
        for _ in range(PROBE_CALLS - 1):
            probe()
        backend.block(probe())
        samples.append((time.perf_counter_ns() - started) / PROBE_CALLS)
    samples.sort()
    return samples[len(samples) // 2]


def compiler_delta(before: dict, after: dict) -> dict:
    """The change of ``Backend.graph_diagnostics`` counters over one cell."""
    out: dict = {}
    if "graphs" in after:
        out["graphs"] = after["graphs"] - before.get("graphs", 0)
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
