"""The run's records turned into two tidy pandas tables: per sample and per cell.

A record is one cell measured in one process. A cell's row brings its processes together: the
time per call is the geometric mean of the processes' medians, and its ratios' intervals come
from ``stats`` (processes as the unit, pooled per mode, paired within a shared process).
"""

from __future__ import annotations

import json
from typing import Optional

import numpy as np
import pandas as pd

from eagerbench.report import stats
from eagerbench.records.model import CellResult, Facts, Record

CELL_KEYS = ["workload", "params", "mode"]
REFERENCE_MODE = "torch"


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


def _compiled_cold(rec: Record) -> bool:
    """Whether a record's process compiled its cell cold: a setting's first process (later
    ones load cached graphs), and no graph its step needed was in the cache already."""
    return rec.spec.repeat == 0 and not rec.result.compile_cache.get("graph_hits")


def first_call_costs(recs: list[Record]) -> dict:
    """A cell's first call and compile cost, from the processes that compiled it cold; never
    blank without a reason (``compile_note``) and never negative: warm-up calls that measured
    no slower than the steady state cost 0 above it, within noise."""
    cold = [r.result for r in recs if _compiled_cold(r) and r.result.warmup]
    if not cold:
        hit = any(r.spec.repeat == 0 and r.result.compile_cache.get("graph_hits") for r in recs)
        note = ("not measured: its first process found its graphs in the compile cache "
                "(another cell with the same graphs compiled them first)" if hit else
                "not measured: no process of its setting's first repeat ran it"
                if recs and not any(r.spec.repeat == 0 for r in recs) else
                "not measured: no warm-up call was timed")
        return {"first_call_ms": np.nan, "compile_ms": np.nan, "compile_note": note}
    cost = _median([compile_ms(r) for r in cold])
    return {"first_call_ms": _median([r.warmup[0].ns / 1e6 for r in cold]),
            "compile_ms": max(cost, 0.0),
            "compile_note": "within noise: warm-up calls no slower than the steady state"
            if cost < 0 else ""}


def iterations_table(records: list[Record]) -> pd.DataFrame:
    """One row per sample (warm-up calls and timed samples) of every successful cell."""
    rows = []
    for rec in records:
        cell, res = rec.spec, rec.result
        if not res.ok or rec.facts is None:
            continue
        base = {"workload": cell.workload, "params": params_label(cell.params),
                **{f"p_{k}": v for k, v in cell.params.items()},
                "mode": rec.facts.label, "device": cell.device, "dtype": cell.dtype,
                "threads": cell.threads, "repeat": cell.repeat}
        n = 0
        for phase in ("warmup", "timed"):
            for sample in getattr(res, phase):
                n += sample.calls
                rows.append({**base, "phase": phase, "iteration": sample.step or n,
                             "calls": sample.calls, "ms": sample.ms_per_call,
                             "gc_collections": sample.gc_collections,
                             "gc_ms": sample.gc_ns / 1e6, **sample.observed})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    timed = df["phase"] == "timed"
    med = df[timed].groupby(CELL_KEYS + ["repeat"])["ms"].transform("median")
    df["spike"] = False
    df.loc[timed, "spike"] = df.loc[timed, "ms"] > stats.SPIKE_FACTOR * med
    return df


LIMIT_MARGIN = 1.2   # a cell may beat a best-of-5 probe by noise, not by 20%
COPY_WARN_BYTES = 1 << 20   # donated buffers copied each step: a warning from 1 MiB on


def _work_rates(facts: list[Facts], dtype: str, median_ms: float,
                limits: dict | None, stream: float | None = None) -> dict:
    """Rates from the work each process's cell did (stored when it was measured), and their
    share of the measured limit: for bytes, the faster of the machine's stream and the one
    timed after the cell in its process (``stream``; this VM's machine stream ran at 24 GB/s in one run
    and 41 in the next, and flagged 1 GiB adds at 37 GB/s as invalid)."""
    def mean(name: str):
        values = [getattr(f, name) for f in facts if getattr(f, name)]
        return float(np.mean(values)) if values else None

    flops, nbytes, ops, footprint = mean("flops"), mean("bytes"), mean("ops"), mean("footprint")
    seconds = median_ms / 1e3
    out = {"gflops": flops / seconds / 1e9 if flops else np.nan,
           "gbps": nbytes / seconds / 1e9 if nbytes else np.nan,
           "us_per_op": median_ms * 1e3 / ops if ops else np.nan,
           "limit_share": np.nan, "limit": "", "invalid": ""}
    if not limits:
        return out
    bandwidth = max(limits.get("bandwidth_gbps") or 0.0, stream or 0.0)
    if nbytes and bandwidth:
        out["limit_share"] = out["gbps"] / bandwidth
        out["limit"] = "bandwidth"
        llc = limits.get("llc_bytes") or 0
        in_memory = footprint is None or footprint > 2 * llc
        if out["limit_share"] > LIMIT_MARGIN and in_memory:
            out["invalid"] = (f"claims {out['limit_share']:.0%} of the measured bandwidth: "
                              f"work skipped or fused")
    elif flops and (limits.get("peak_gflops") or {}).get(dtype):
        out["limit_share"] = out["gflops"] / limits["peak_gflops"][dtype]
        out["limit"] = "peak matmul"
        if out["limit_share"] > LIMIT_MARGIN:
            out["invalid"] = (f"claims {out['limit_share']:.0%} of the peak matmul rate: "
                              f"work skipped")
    return out


def _shown(names: tuple[str, ...], results: list[CellResult]) -> dict:
    """Each observed value the workload shows, as its range over the timed samples."""
    out = {}
    for name in names:
        values = [s.observed[name] for res in results for s in res.timed if name in s.observed]
        if values:
            lo, hi = min(values), max(values)
            out[name] = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
    return out


def _bimodality(results: list[CellResult]) -> str:
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
                             f"{a:.0%} near {_duration(ca)}, {b:.0%} near {_duration(cb)}")
                break
    return "; ".join(notes)


def _duration(ms: float) -> str:
    if ms < 1:
        return f"{stats.significant_figures(ms * 1e3)} us"
    return f"{stats.significant_figures(ms)} ms"


def _median(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else np.nan


def _row_ok(recs: list[Record], limits: dict | None) -> tuple[dict, object]:
    """The statistics of a measured cell, and its level (for ratios)."""
    results = [r.result for r in recs]
    ids = [r.process_id() for r in results]
    per_process = [per_call_ms(r) for r in results]
    lv = cell_level(recs)
    latency = stats.level([latency_ms(r) for r in results], ids)
    cold = [r.result for r in recs if _compiled_cold(r)]
    donation = [r.donation for r in results if r.donation]
    first = recs[0]
    row = dict(
        status="ok", reason="", processes=len(results),
        **stats.summarize(np.concatenate(per_process)),
        median_ms=lv.estimate, latency_ms=latency.estimate if latency else np.nan,
        process_spread=lv.spread(),
        block_calls=int(np.median([r.block_calls for r in results])),
        calls_timed=int(sum(s.calls for r in results for s in r.timed)),
        **first_call_costs(recs),
        compile_events=max(r.compiles_before_timing for r in results),
        compile_events_s=_median([r.compile_events_s or 0.0 for r in cold]),
        setup_s=_median([r.setup_s for r in results]),
        gc_iters=sum(1 for r in results for s in r.timed if s.gc_collections),
        floor_us=_median([r.floor_ns for r in results]) / 1e3,
        traces_during_timing=max(r.traces_during_timing for r in results),
        compiles_during_timing=max(r.compiles_during_timing for r in results),
        donation_copied=max((d["donated"] - d["reused"] for d in donation), default=0),
        donation_copied_bytes=max((d.get("copied_bytes", 0) for d in donation), default=0),
        host_reads_per_call=_median([r.host_reads_per_call for r in results]),
        threads_applied=json.dumps(first.result.threads_applied),
        device_name=first.result.device_name,
        allocator=json.dumps((first.result.process.get("allocator") or {}).get("env", {}),
                             sort_keys=True),
        stopped=next((r.stopped for r in results if r.stopped), None) or "",
        bimodal=_bimodality(results),
        shown=",".join(first.facts.shown),
        **_shown(first.facts.shown, results),
        **_work_rates([r.facts for r in recs], first.spec.dtype, lv.estimate, limits,
                      max([r.result.why.stream_gbps or 0.0 for r in recs])))
    return row, lv


def by_cell(records: list[Record]) -> dict[tuple, list[Record]]:
    """Records grouped by cell, ``(workload, params label, mode label)``, in run order."""
    groups: dict[tuple, list[Record]] = {}
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


# Largest relative difference of the values checked after the warm-up (same start, same steps)
# between a mode and its eager twin, by dtype: compiled code reorders float sums.
AGREEMENT_RTOL = {"float32": 1e-3, "float64": 1e-7}


def _relative_difference(a: dict, b: dict) -> float:
    keys = [k for k in a if k in b and isinstance(a[k], (int, float)) and
            isinstance(b[k], (int, float))]
    diffs = [abs(a[k] - b[k]) / max(abs(a[k]), abs(b[k])) for k in keys
             if max(abs(a[k]), abs(b[k])) > 1e-12]
    return float(max(diffs)) if diffs else (0.0 if keys else np.nan)


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
            diffs.append(_relative_difference(rec.result.warm_check, other.result.warm_check))
    diffs = [d for d in diffs if np.isfinite(d)]
    return float(max(diffs)) if diffs else np.nan


def cells_table(records: list[Record], limits: dict | None = None) -> pd.DataFrame:
    """One row per cell (its processes together): status, times, rates, ratios, agreement."""
    rows, levels = [], {}
    groups = by_cell(records)
    for (workload, _, label), recs in groups.items():
        cell, facts = recs[0].spec, recs[0].facts
        ok = [r for r in recs if r.result.ok]
        row = {"workload": workload, "params": params_label(cell.params), "mode": label,
               **{f"p_{k}": v for k, v in cell.params.items()},
               "device": cell.device, "dtype": cell.dtype, "threads": cell.threads,
               "repeats": len(recs), "framework": facts.framework,
               "eager_twin": facts.eager_twin or "", "compiled": facts.compiled,
               # Values measured in the same process, round-robin (see Workload.interleave).
               "interleaved": "; ".join(f"{k}={','.join(map(str, v))}"
                                        for k, v in (cell.interleaved or {}).items())}
        if not ok:
            rows.append({**row, "status": recs[0].result.status,
                         "reason": recs[0].result.reason})
            continue
        stats_row, lv = _row_ok(ok, limits)
        levels[(workload, row["params"], label)] = lv
        twin = groups.get((workload, row["params"], facts.eager_twin))
        rows.append({**row, **stats_row, "agreement_rel_diff":
                     agreement(ok, twin) if twin else np.nan,
                     "agreement_rtol": AGREEMENT_RTOL.get(cell.dtype, 1e-3)})
    df = pd.DataFrame(rows)
    return _with_ratios(df, levels)


def _with_ratios(df: pd.DataFrame, levels: dict) -> pd.DataFrame:
    """``slowdown`` (against PyTorch eager) and ``vs_eager`` (against the eager twin), each with
    its interval, its half-width, whether it is significant, and (paired ratios) the p-value of
    the processes' disagreement. Variances are moderated among the cells of one workload."""
    wanted, names = {}, {}
    for col, ref_of in (("slowdown", lambda r: REFERENCE_MODE),
                        ("vs_eager", lambda r: r["eager_twin"] or None)):
        for i, r in df.iterrows():
            ref = ref_of(r)
            num = (r["workload"], r["params"], r["mode"])
            den = (r["workload"], r["params"], ref) if ref else None
            if num in levels and den in levels and ref != r["mode"]:
                wanted[(col, i)] = (num, den)
            elif num in levels and ref == r["mode"]:
                names[(col, i)] = stats.Ratio(1.0)            # the reference itself
    found = stats.ratios(levels, {key: key[0] for key in levels}, wanted)
    found.update(names)
    for col in ("slowdown", "vs_eager"):
        out = [found.get((col, i)) for i in df.index]
        df[col] = [x.value if x else np.nan for x in out]
        df[f"{col}_lo"] = [x.lo if x else np.nan for x in out]
        df[f"{col}_hi"] = [x.hi if x else np.nan for x in out]
        df[f"{col}_half_width"] = [x.half_width if x else np.nan for x in out]
        df[f"{col}_significant"] = [x.significant if x else False for x in out]
        df[f"{col}_df"] = [x.df if x else np.nan for x in out]
        df[f"{col}_disagreement_p"] = [x.disagreement_p if x else np.nan for x in out]
    return df


def fmt_ratio(r, lo, hi) -> str:
    """``0.00061x [0.00058, 0.00064]``: three significant figures, never rounded to zero."""
    if not np.isfinite(r):
        return ""
    text = f"{stats.significant_figures(r)}x"
    if np.isfinite(lo):
        text += f" [{stats.significant_figures(lo)}, {stats.significant_figures(hi)}]"
    return text


def _rate(r) -> str:
    """Time per op where a call dispatches several (the dispatch view), else GFLOP/s; GB/s
    beside either where the bytes are known. A one-op call's time per op is its time."""
    per_op, gflops, gbps = (r.get(k, np.nan) for k in ("us_per_op", "gflops", "gbps"))
    ops = r.get("median_ms", np.nan) * 1e3 / per_op if np.isfinite(per_op) and per_op else 0
    parts = []
    if np.isfinite(per_op) and (ops > 1.5 or not np.isfinite(gflops)):
        parts.append(f"{stats.significant_figures(per_op)} us/op")
    elif np.isfinite(gflops):
        parts.append(f"{stats.significant_figures(gflops)} GFLOP/s")
    if parts and np.isfinite(gbps):
        parts.append(f"{stats.significant_figures(gbps)} GB/s")
    if not parts:
        return ""
    rate = ", ".join(parts)
    if np.isfinite(r.get("limit_share", np.nan)):
        rate += f" ({r['limit_share']:.0%} of {r['limit']})"
    return rate


def notes(r) -> list[str]:
    note = []
    text = lambda key: r.get(key) if isinstance(r.get(key), str) else ""  # noqa: E731

    def count(key: str) -> int:   # NaN in the row of a cell that was not measured
        try:
            value = float(r.get(key))
        except (TypeError, ValueError):
            return 0
        return int(value) if np.isfinite(value) else 0

    if text("invalid"):
        note.append(f"INVALID: {text('invalid')}")
    diff = r.get("agreement_rel_diff")
    if isinstance(diff, float) and np.isfinite(diff) and diff > r.get("agreement_rtol", 1e-3):
        note.append(f"DISAGREES with {r.get('eager_twin')} after the warm-up: relative "
                    f"difference {diff:.2g} (tolerance {r.get('agreement_rtol'):.0e})")
    if count("traces_during_timing"):
        note.append(f"RETRACED {count('traces_during_timing')}x while timing")
    if count("compiles_during_timing"):
        note.append(f"RECOMPILED {count('compiles_during_timing')}x while timing")
    if count("donation_copied"):
        size = count("donation_copied_bytes")
        flag = "COPIED" if size >= COPY_WARN_BYTES else "copied"
        note.append(f"{flag}: {count('donation_copied')} donated buffer(s) of {size:,} bytes "
                    f"not reused, copied every step")
    if text("stopped"):
        note.append(f"stopped early: {text('stopped')}")
    if text("flags"):
        note.append(f"[{text('flags')}]")
    if text("bimodal"):
        note.append(text("bimodal"))
    if count("gc_iters"):
        note.append(f"GC in {count('gc_iters')} samples")
    return note


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The human-readable view printed after a run and shown in results/README.md."""
    out = []
    shown = list(dict.fromkeys(name for names in cells.get("shown", pd.Series(dtype=str))
                               .fillna("") for name in names.split(",") if name in cells))
    for _, r in cells.iterrows():
        row = {"workload": r["workload"], "params": r["params"], "mode": r["mode"]}
        if r["status"] != "ok":
            row.update({"time per call": "", "latency": "", "vs torch": "", "vs eager twin": "",
                        "rate": "", "compile": "", **{c: "" for c in shown},
                        "note": f"{r['status']}: {r['reason']}"})
            out.append(row)
            continue
        block = int(r.get("block_calls", 1) or 1)
        per_call = _duration(r["median_ms"]) + (f" (x{block})" if block > 1 else "")
        row.update({"time per call": per_call,
                    "latency": _duration(r["latency_ms"]) if block > 1 else "",
                    "vs torch": fmt_ratio(r["slowdown"], r["slowdown_lo"], r["slowdown_hi"]),
                    "vs eager twin": fmt_ratio(r["vs_eager"], r["vs_eager_lo"],
                                               r["vs_eager_hi"]),
                    "rate": _rate(r),
                    "compile": _duration(r["compile_ms"]) if np.isfinite(r["compile_ms"])
                    and r["compile_ms"] > 0.05 * r["median_ms"] else "",
                    **{c: (r[c] if isinstance(r[c], str) else "") for c in shown},
                    "note": "; ".join(notes(r))})
        out.append(row)
    return pd.DataFrame(out)
