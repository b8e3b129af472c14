"""The machine's limits as a run records them (measured by ``measure/machine``): the best matmul
rate per dtype and size, the streaming and in-cache bandwidth, the fused element-wise rate, and
the contention probe; and the rates a report reads off them. Nothing here measures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

MATMUL_N = 2048         # the side of the square product the peak is measured on
SLOW = 1.3              # a unit this much slower than the fastest tenth ran while contended


def cache_fit_bytes(inner_cache_bytes: Optional[int], llc_bytes: Optional[int]) -> int:
    """The largest footprint whose data moves at the machine's cache bandwidth (its probe's
    vectors sit in the cache below the last level): half that cache, or half the last level
    where it is the only one known; 0 where neither is. A last level of 260 MiB that a VM's
    cores share moved a 1e7-float add's 80 MB at 35 GB/s, DRAM's rate, not the inner
    cache's 181 GB/s."""
    return int((inner_cache_bytes or llc_bytes or 0) // 2)


@dataclass(frozen=True)
class LibraryLimits:
    """What one library reached on this machine, in its own process."""

    matmul_gflops: dict[str, float]                  # dtype -> at the peak's side
    matmul_ladder: dict[str, dict[str, float]]       # dtype -> side (as text) -> GFLOP/s
    bandwidth_gbps: Optional[float] = None           # ``b += a`` past the caches
    cache_bandwidth_gbps: Optional[float] = None     # ``b += a`` in cache
    elementwise_gflops: dict[str, float] = field(default_factory=dict)   # a fused chain

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LibraryLimits":
        return cls(dict(data.get("matmul_gflops") or {}), dict(data.get("matmul_ladder") or {}),
                   data.get("bandwidth_gbps"), data.get("cache_bandwidth_gbps"),
                   dict(data.get("elementwise_gflops") or {}))


@dataclass(frozen=True)
class MachineLimits:
    """The limits measured on one host type, typed; ``raw`` is the record as stored (its JSON
    is written back as it was read, so that a run's files never change on a second read)."""

    raw: dict[str, Any]
    device: str
    matmul_n: int
    peak_gflops: dict[str, Optional[float]]
    matmul_ladder: dict[str, dict[str, float]]
    elementwise_gflops: dict[str, float]
    per_library: dict[str, LibraryLimits]
    bandwidth_gbps: Optional[float] = None
    cache_bandwidth_gbps: Optional[float] = None
    llc_bytes: Optional[int] = None
    inner_cache_bytes: Optional[int] = None
    probes: int = 1                  # 2: the best of a probe before and one after the run

    @classmethod
    def from_json(cls, data: Optional[dict[str, Any]]) -> Optional["MachineLimits"]:
        """The typed limits of a stored record (None where none were measured)."""
        if not data:
            return None
        return cls(data, data.get("device") or "cpu", int(data.get("matmul_n") or MATMUL_N),
                   dict(data.get("peak_gflops") or {}), dict(data.get("matmul_ladder") or {}),
                   dict(data.get("elementwise_gflops") or {}),
                   {lib: LibraryLimits.from_json(probe)
                    for lib, probe in (data.get("per_library") or {}).items()},
                   data.get("bandwidth_gbps"), data.get("cache_bandwidth_gbps"),
                   data.get("llc_bytes"), data.get("inner_cache_bytes"),
                   int(data.get("probes") or 1))

    def to_json(self) -> dict[str, Any]:
        return self.raw

    def peak(self, dtype: str) -> Optional[float]:
        return self.peak_gflops.get(dtype)

    def best_library(self, dtype: str) -> str:
        """The library that reached the peak in ``dtype``."""
        return max(self.per_library, key=lambda lib: self.per_library[lib].matmul_gflops.get(
            dtype) or 0)

    def cache_fit_bytes(self) -> int:
        """The largest footprint whose data moves at the machine's cache bandwidth
        (``cache_fit_bytes``)."""
        return cache_fit_bytes(self.inner_cache_bytes, self.llc_bytes)

    def cache_gbps(self) -> Optional[float]:
        """The bandwidth an op's traffic in cache is priced at: the cache's, or the stream's
        where no cache was probed."""
        return self.cache_bandwidth_gbps or self.bandwidth_gbps

    def elementwise_rate(self, dtype: str) -> Optional[float]:
        """The GFLOP/s of fused element-wise arithmetic measured here, if probed."""
        return self.elementwise_gflops.get(dtype)

    def matmul_rate(self, dtype: str, flops_per_op: Optional[float],
                    library: Optional[str] = None) -> Optional[float]:
        """The GFLOP/s measured for a square product of ``flops_per_op`` (its side from
        2 n^3 = flops; log-log between the ladder's sides, the peak from the peak's side up):
        the compute rate a kernel of that size has on this machine, in ``library`` where it
        was probed (the kernels a framework runs are its own), else the best of any."""
        own = self.per_library.get(library or "")
        if own is not None and own.matmul_ladder:
            ladder, peak = own.matmul_ladder, (own.matmul_gflops or self.peak_gflops).get(dtype)
        else:
            ladder, peak = self.matmul_ladder, self.peak(dtype)
        rates = {int(side): rate for side, rate in (ladder.get(dtype) or {}).items()}
        if not peak or not rates or not flops_per_op:
            return peak
        rates[self.matmul_n] = peak
        sides = sorted(rates)
        side = (flops_per_op / 2) ** (1 / 3)
        rate = float(np.exp(np.interp(np.log(side), np.log(sides),
                                      np.log([rates[s] for s in sides]))))
        return min(rate, peak)

    def merged(self, later: "MachineLimits") -> "MachineLimits":
        """The best of this probe and a later one (a probe taken in a slow spell understates
        the limits)."""
        best = MachineLimits.from_json(merge(self.raw, later.raw))
        assert best is not None
        return best


@dataclass(frozen=True)
class Contention:
    """The contention probe at one moment: a fixed pure-Python loop run for a while, in units
    of about 1 ms (``measure.machine.contention``)."""

    units: int
    fast_unit_us: float          # the fastest tenth's unit
    iqr_share: Optional[float]   # IQR over median of the units
    slow_share: float            # units at least SLOW times the fastest tenth
    slowdown: float              # how much slower those are (median)
    percentiles_us: tuple[float, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Contention":
        return cls(int(data.get("units") or 0), float(data.get("fast_unit_us") or np.nan),
                   data.get("iqr_share"), float(data.get("slow_share") or 0.0),
                   float(data.get("slowdown") or 1.0), tuple(data.get("percentiles_us") or ()))

    def slow_against(self, fast_us: float) -> float:
        """The share of this probe's units at least ``SLOW`` times ``fast_us`` (another
        probe's fastest tenth, say), from its percentiles."""
        values = self.percentiles_us
        return sum(v > SLOW * fast_us for v in values) / len(values) if values else float("nan")


def contention_of(env: dict[str, Any]) -> dict[str, Contention]:
    """A run's contention probes, by when they ran ("before", "after")."""
    return {when: Contention.from_json(probe) for when, probe in
            (env.get("contention") or {}).items()}


def merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
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


def best_ladder(probes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per dtype and matmul side, the best GFLOP/s any probe reached."""
    out: dict[str, Any] = {}
    for probe in probes:
        for dtype, rates in (probe.get("matmul_ladder") or {}).items():
            for side, rate in rates.items():
                if rate:
                    out.setdefault(dtype, {})[side] = max(rate, out.get(dtype, {}).get(side, 0))
    return out


def best_elementwise(probes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per dtype, the best fused element-wise GFLOP/s any probe reached."""
    out: dict[str, Any] = {}
    for probe in probes:
        for dtype, rate in (probe.get("elementwise_gflops") or {}).items():
            if rate:
                out[dtype] = max(rate, out.get(dtype, 0))
    return out
