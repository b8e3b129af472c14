"""One cell's statistics from its records (one record per process): its samples, its level over
processes, its compile and first-call cost, its rates against the machine's limits, what it
showed, and how far its results are from its eager twin's. ``summary`` puts them in a row."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from eagerbench.records.limits import MachineLimits
from eagerbench.records.model import CellResult, Facts, Record
from eagerbench.report import stats
from eagerbench.report.format import duration

LIMIT_MARGIN = 1.2   # a cell may beat a best-of-5 probe by noise, not by 20%
# Largest relative difference of the values checked after the warm-up (same start, same steps)
# between a mode and its eager twin, by dtype: compiled code reorders float sums.
AGREEMENT_RTOL = {"float32": 1e-3, "float64": 1e-7}


def params_label(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def per_call_ms(result: CellResult, phase: str = "timed") -> np.ndarray:
    return np.array([s.ms_per_call for s in getattr(result, phase)])


def latency_ms(result: CellResult) -> np.ndarray:
    """One call waited on: measured apart for blocked steps, the samples themselves otherwise."""
    if result.latency_ns:
        return np.asarray(result.latency_ns, dtype=float) / 1e6
    return per_call_ms(result)


def compile_ms(result: CellResult) -> float:
    """Every compile before the timed loop: the warm-up calls' time over what the same calls
    cost in the steady state (the latency median), summed over all of them."""
    warm = [s.ns / 1e6 for s in result.warmup]
    steady = latency_ms(result)
    if not warm or not steady.size:
        return np.nan
    return float(sum(warm) - len(warm) * np.median(steady))


def compiled_cold(rec: Record) -> bool:
    """Whether a record's process compiled its cell cold: a setting's first process (later
    ones load cached graphs), and its unit started from an empty cache (any graph it found
    there, it had compiled itself: a model's graph again after a recompile) or, where the
    record does not say so, no graph its step needed was in the cache already."""
    cache = rec.result.compile_cache
    return rec.spec.repeat == 0 and bool(cache.get("cold_unit") or not cache.get("graph_hits"))


def median(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else np.nan


def first_call_costs(recs: list[Record]) -> tuple[float, float, str]:
    """A cell's first call and compile cost (ms), from the processes that compiled it cold,
    and a note where either is missing or zero: never blank without a reason and never
    negative (warm-up calls that measured no slower than the steady state cost 0 above it,
    within noise)."""
    cold = [r.result for r in recs if compiled_cold(r) and r.result.warmup]
    if not cold:
        hit = any(r.spec.repeat == 0 and r.result.compile_cache.get("graph_hits") for r in recs)
        note = ("not measured: its first process found its graphs in the compile cache "
                "(another cell with the same graphs compiled them first)" if hit else
                "not measured: no process of its setting's first repeat ran it"
                if recs and not any(r.spec.repeat == 0 for r in recs) else
                "not measured: no warm-up call was timed")
        return np.nan, np.nan, note
    cost = median([compile_ms(r) for r in cold])
    return (median([r.warmup[0].ns / 1e6 for r in cold]), max(cost, 0.0),
            "within noise: warm-up calls no slower than the steady state" if cost < 0 else "")


@dataclass(frozen=True)
class WorkRates:
    """A cell's rates from the work its calls did, and their share of the machine's limit."""

    gflops: float = math.nan
    gbps: float = math.nan
    us_per_op: float = math.nan
    limit_share: float = math.nan
    limit: str = ""                  # "bandwidth" or "peak matmul"
    invalid: str = ""                # why a rate past the limit means work was skipped


def work_rates(facts: list[Facts], dtype: str, median_ms: float,
               limits: Optional[MachineLimits], stream: Optional[float] = None) -> WorkRates:
    """Rates from the work each process's cell did (stored when it was measured), and their
    share of the measured limit: for bytes, the faster of the machine's stream and the one
    timed after the cell in its process (``stream``; this VM's machine stream ran at 24 GB/s
    in one run and 41 in the next, and flagged 1 GiB adds at 37 GB/s as invalid)."""
    def mean(name: str) -> Optional[float]:
        values = [getattr(f, name) for f in facts if getattr(f, name)]
        return float(np.mean(values)) if values else None

    flops, nbytes, ops, footprint = mean("flops"), mean("bytes"), mean("ops"), mean("footprint")
    seconds = median_ms / 1e3
    rates = WorkRates(gflops=flops / seconds / 1e9 if flops else math.nan,
                      gbps=nbytes / seconds / 1e9 if nbytes else math.nan,
                      us_per_op=median_ms * 1e3 / ops if ops else math.nan)
    if not limits:
        return rates
    bandwidth = max(limits.bandwidth_gbps or 0.0, stream or 0.0)
    peak = limits.peak(dtype)
    if nbytes and bandwidth:
        share = rates.gbps / bandwidth
        in_memory = footprint is None or footprint > 2 * (limits.llc_bytes or 0)
        invalid = (f"claims {share:.0%} of the measured bandwidth: work skipped or fused"
                   if share > LIMIT_MARGIN and in_memory else "")
        return replace(rates, limit_share=share, limit="bandwidth", invalid=invalid)
    if flops and peak:
        share = rates.gflops / peak
        invalid = (f"claims {share:.0%} of the peak matmul rate: work skipped"
                   if share > LIMIT_MARGIN else "")
        return replace(rates, limit_share=share, limit="peak matmul", invalid=invalid)
    return rates


def shown_ranges(names: tuple[str, ...], results: list[CellResult]) -> dict[str, str]:
    """Each observed value the workload shows, as its range over the timed samples."""
    out = {}
    for name in names:
        values = [s.observed[name] for res in results for s in res.timed if name in s.observed]
        if values:
            lo, hi = min(values), max(values)
            out[name] = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
    return out


def bimodality(results: list[CellResult]) -> str:
    """Where a process's per-call times or latencies fall into two modes, say so."""
    notes = []
    for what, series in (("time per call", per_call_ms), ("latency", latency_ms)):
        if what == "latency" and not any(r.latency_ns for r in results):
            continue
        for i, res in enumerate(results):
            found = stats.bimodal(series(res))
            if found:
                (a, b), (ca, cb) = found["shares"], found["centres_ms"]
                notes.append(f"{what} bimodal in process {i + 1} of {len(results)}: "
                             f"{a:.0%} near {duration(ca)}, {b:.0%} near {duration(cb)}")
                break
    return "; ".join(notes)


def by_cell(records: list[Record]) -> dict[tuple[str, str, str], list[Record]]:
    """Records grouped by cell, ``(workload, params label, mode label)``, in run order."""
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for rec in records:
        if rec.facts is None:   # not a measurement (a verify or prepare job)
            continue
        key = (rec.spec.workload, params_label(rec.spec.params), rec.facts.label)
        groups.setdefault(key, []).append(rec)
    return groups


def cell_level(recs: list[Record]) -> Optional[stats.Level]:
    """A cell's time over its processes (None when no process measured it)."""
    ok = [r.result for r in recs if r.result.ok]
    return stats.level([per_call_ms(r) for r in ok], [r.process_id() for r in ok])


# A checked value smaller than this share of the largest one is compared against that floor,
# not against itself: a batch norm's betas of norm 1e-9 beside weights of norm 27 are rounding
# noise, and their relative difference (0.43 between torch and torch-compile, for the same
# MobileNet step) measured nothing.
NEGLIGIBLE_SHARE = 1e-6


def relative_difference(a: dict, b: dict) -> float:
    """The largest difference between two modes' checked values, each relative to its own
    magnitude, or to ``NEGLIGIBLE_SHARE`` of the largest value where it is smaller."""
    keys = [k for k in a if k in b and isinstance(a[k], (int, float)) and
            isinstance(b[k], (int, float))]
    scale = max([max(abs(a[k]), abs(b[k])) for k in keys] or [0.0])
    floor = max(NEGLIGIBLE_SHARE * scale, 1e-300)
    diffs = [abs(a[k] - b[k]) / max(abs(a[k]), abs(b[k]), floor) for k in keys]
    return float(max(diffs)) if diffs else np.nan


def agreement(recs: list[Record], twin: list[Record]) -> float:
    """How far a cell's checked values after the warm-up are from its eager twin's: compared
    process by process where they shared one (the same data), else repeat by repeat."""
    by_process = {r.result.process_id(): r for r in twin if r.result.ok and r.result.warm_check}
    by_repeat = {r.spec.repeat: r for r in twin if r.result.ok and r.result.warm_check}
    diffs = []
    for rec in recs:
        if not (rec.result.ok and rec.result.warm_check):
            continue
        other = by_process.get(rec.result.process_id()) or by_repeat.get(rec.spec.repeat)
        if other is not None:
            diffs.append(relative_difference(rec.result.warm_check, other.result.warm_check))
    diffs = [d for d in diffs if np.isfinite(d)]
    return float(max(diffs)) if diffs else np.nan
