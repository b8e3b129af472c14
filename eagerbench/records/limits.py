"""The machine's limits as a run records them (measured by ``measure/machine``): the best matmul
rate per dtype and size, the streaming and in-cache bandwidth, the fused element-wise rate, and
the contention probe; and the rates a report reads off them. Nothing here measures."""

from __future__ import annotations

import numpy as np

MATMUL_N = 2048         # the side of the square product the peak is measured on
SLOW = 1.3              # a unit this much slower than the fastest tenth ran while contended


def slow_against(probe: dict, fast_us: float) -> float:
    """The share of a probe's units at least ``SLOW`` times ``fast_us`` (another probe's
    fastest tenth, say), from its percentiles."""
    values = probe.get("percentiles_us") or []
    return sum(v > SLOW * fast_us for v in values) / len(values) if values else float("nan")


def merge(first: dict, second: dict) -> dict:
    """The best of two probes of the limits (a probe taken in a slow spell understates them)."""
    best = {key: max((v for v in (first["peak_gflops"].get(key), second["peak_gflops"].get(key))
                      if v), default=None)
            for key in dict.fromkeys([*first["peak_gflops"], *second["peak_gflops"]])}
    bandwidths = [b for b in (first.get("bandwidth_gbps"), second.get("bandwidth_gbps")) if b]
    cached = [b for b in (first.get("cache_bandwidth_gbps"), second.get("cache_bandwidth_gbps"))
              if b]
    libs = {}
    for lib in dict.fromkeys([*first["per_library"], *second["per_library"]]):
        probes = [p["per_library"][lib] for p in (first, second) if lib in p["per_library"]]
        gbps = [p["bandwidth_gbps"] for p in probes if p.get("bandwidth_gbps")]
        libs[lib] = {**probes[-1],   # per library, the better probe of each figure
                     "matmul_gflops": {d: max(p["matmul_gflops"].get(d) or 0 for p in probes)
                                       for d in dict.fromkeys(
                                           d for p in probes for d in p["matmul_gflops"])},
                     "matmul_ladder": best_ladder(probes),
                     "elementwise_gflops": best_elementwise(probes),
                     "bandwidth_gbps": max(gbps) if gbps else None}
    return {**first, "per_library": libs, "peak_gflops": best,
            "matmul_ladder": best_ladder([first, second]),
            "elementwise_gflops": best_elementwise([first, second]),
            "bandwidth_gbps": max(bandwidths) if bandwidths else None,
            "cache_bandwidth_gbps": max(cached) if cached else None, "probes": 2}


def best_ladder(probes: list[dict]) -> dict:
    """Per dtype and matmul side, the best GFLOP/s any probe reached."""
    out: dict = {}
    for probe in probes:
        for dtype, rates in (probe.get("matmul_ladder") or {}).items():
            for side, rate in rates.items():
                if rate:
                    out.setdefault(dtype, {})[side] = max(rate, out.get(dtype, {}).get(side, 0))
    return out


def best_elementwise(probes: list[dict]) -> dict:
    """Per dtype, the best fused element-wise GFLOP/s any probe reached."""
    out: dict = {}
    for probe in probes:
        for dtype, rate in (probe.get("elementwise_gflops") or {}).items():
            if rate:
                out[dtype] = max(rate, out.get(dtype, 0))
    return out


def elementwise_rate(limits: dict, dtype: str) -> float | None:
    """The GFLOP/s of fused element-wise arithmetic measured on this machine, if probed."""
    return (limits.get("elementwise_gflops") or {}).get(dtype)


def matmul_rate(limits: dict, dtype: str, flops_per_op: float | None,
                library: str | None = None) -> float | None:
    """The GFLOP/s measured for a square product of ``flops_per_op`` (its side from
    2 n^3 = flops; log-log between the ladder's sides, the peak from the peak's side up): the
    compute rate a kernel of that size has on this machine, in ``library`` where it was
    probed (the kernels a framework runs are its own), else the best of any library."""
    own = (limits.get("per_library") or {}).get(library or "") or {}
    source = own if own.get("matmul_ladder") else limits
    peak = ((own.get("matmul_gflops") if own.get("matmul_ladder") else None)
            or limits.get("peak_gflops") or {}).get(dtype)
    rates = {int(side): rate for side, rate in
             ((source.get("matmul_ladder") or {}).get(dtype) or {}).items()}
    if not peak or not rates or not flops_per_op:
        return peak
    rates[int(limits.get("matmul_n") or MATMUL_N)] = peak
    sides = sorted(rates)
    side = (flops_per_op / 2) ** (1 / 3)
    rate = float(np.exp(np.interp(np.log(side), np.log(sides),
                                  np.log([rates[s] for s in sides]))))
    return min(rate, peak)


def cache_fit_bytes(limits: dict) -> int:
    """The largest footprint whose data moves at the machine's cache bandwidth (its probe's
    vectors sit in the cache below the last level): half that cache, or half the last level
    where it is the only one known; 0 where neither is. A last level of 260 MiB that a VM's
    cores share moved a 1e7-float add's 80 MB at 35 GB/s, DRAM's rate, not the inner
    cache's 181 GB/s."""
    return int((limits.get("inner_cache_bytes") or limits.get("llc_bytes") or 0) // 2)
