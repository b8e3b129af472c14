"""How every figure reads: durations, ratios with their intervals, rates, shares and sizes, one
function each (pyperf's ``_formatter``). A value that was not measured (NaN) reads as ''."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np


def _finite(value: Optional[float]) -> bool:
    return value is not None and bool(np.isfinite(value))


def significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant figures, never rounded to zero (0.00061, 29.9,
    1.02); '' where it is not finite."""
    if not _finite(value):
        return ""
    return f"{value:#.{digits}g}".rstrip(".") if abs(value) < 10**digits else f"{value:.0f}"


def duration(ms: float) -> str:
    """A duration given in milliseconds: ``12.3 us``, ``4.56 ms``, ``1.35 s``."""
    if not _finite(ms):
        return ""
    if ms < 1:
        return f"{significant(ms * 1e3)} us"
    return f"{significant(ms)} ms" if ms < 1000 else f"{significant(ms / 1e3)} s"


def seconds(s: Optional[float]) -> str:
    """A duration given in seconds, as ``duration`` writes it."""
    return duration(s * 1e3) if s is not None and _finite(s) else ""


def times(value: float) -> str:
    """A ratio without its interval: ``2.71x``."""
    return f"{significant(value)}x" if _finite(value) else ""


def ratio(value: float, lo: float = math.nan, hi: float = math.nan) -> str:
    """``0.00061x [0.00058, 0.00064]``: three significant figures, never rounded to zero; the
    interval where there is one."""
    if not _finite(value):
        return ""
    text = times(value)
    if _finite(lo) and _finite(hi):
        text += f" [{significant(lo)}, {significant(hi)}]"
    return text


def half_width(lo: float, hi: float) -> float:
    """Half an interval's width on a log scale, as a share of its centre (0.05: +-5%)."""
    if not (_finite(lo) and _finite(hi)):
        return math.nan
    return float(np.exp((np.log(hi) - np.log(lo)) / 2) - 1)


def compact_ratio(value: float, lo: float = math.nan, hi: float = math.nan) -> str:
    """``1.80x +-13%``: the ratio and its interval's half-width on the log scale; past +-100%
    the interval itself, two figures each (``430x [220-870]``, never ``4.3e+02x``)."""
    if not _finite(value):
        return ""
    half = half_width(lo, hi)
    if _finite(half) and half > 1:
        ends = [significant(v, 2) for v in (value, lo, hi)]
        return f"{ends[0]}x [{ends[1]}-{ends[2]}]"
    return times(value) + (f" +-{half:.0%}" if _finite(half) else "")


def percent(share: float) -> str:
    """A share as a whole percentage: ``37%``."""
    return f"{share:.0%}" if _finite(share) else ""


def size(value: float) -> str:
    """A size to two significant figures, written out: 3,000; 41,000; 0.5."""
    rounded = float(f"{value:.2g}")
    return f"{rounded:,.0f}" if rounded >= 10 else f"{rounded:g}"


def rate(us_per_op: float, gflops: float, gbps: float, ops_per_call: float,
         limit_share: float = math.nan, limit: str = "") -> str:
    """Time per op where a call dispatches several (the dispatch view), else GFLOP/s; GB/s
    beside either where the bytes are known; the share of the machine's limit after. A
    one-op call's time per op is its time."""
    parts = []
    if _finite(us_per_op) and (ops_per_call > 1.5 or not _finite(gflops)):
        parts.append(f"{significant(us_per_op)} us/op")
    elif _finite(gflops):
        parts.append(f"{significant(gflops)} GFLOP/s")
    if parts and _finite(gbps):
        parts.append(f"{significant(gbps)} GB/s")
    if not parts:
        return ""
    text = ", ".join(parts)
    if _finite(limit_share):
        text += f" ({limit_share:.0%} of {limit})"
    return text
