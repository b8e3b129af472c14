"""The run's records turned into two tidy pandas tables: per sample and per cell.

A record is one cell measured in one process. A cell's row brings its processes together: the
time per call is the geometric mean of the processes' medians, and its ratios' intervals come
from ``stats`` (processes as the unit, pooled per mode, paired within a shared process).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Optional

import numpy as np
import pandas as pd

from eagerbench import stats
from workloads import get_workload

CELL_KEYS = ["workload", "params", "mode"]
REFERENCE_MODE = "torch"
DEFAULT_OPTIONS = {"compile_mode": "default", "allocator": "default"}


def params_label(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def mode_label(cell: dict) -> str:
    """The mode, with each setting that differs from the default appended (``torch +thp``)."""
    from eagerbench.modes import all_modes

    mode = all_modes().get(cell["mode"])
    taken = set(mode.options) if mode else set()
    tags = [str(v) for k, v in (cell.get("options") or {}).items()
            if v != DEFAULT_OPTIONS.get(k) and (k in taken or k == "allocator")]
    return " ".join([cell["mode"]] + [f"+{t}" for t in tags])


def eager_twin(label: str) -> Optional[str]:
    """What a mode label's eager tax is read against: the eager mode of its framework with the
    same settings; for an eager mode with settings, the same mode without them."""
    from eagerbench.modes import all_modes

    base, *tags = label.split(" ")
    mode = all_modes().get(base)
    if mode is None:
        return None
    if mode.baseline != base:
        return " ".join([mode.baseline] + tags)
    return base if tags else None


def process_id(result: dict) -> str:
    process = result.get("process") or {}
    return f"{process.get('pid', '?')}@{process.get('started', '?')}"


def per_call_ms(result: dict, phase: str = "timed") -> np.ndarray:
    return np.array([s["ns"] / s.get("calls", 1) / 1e6 for s in result.get(phase, [])])


def latency_ms(result: dict) -> np.ndarray:
    """One call waited on: measured apart for blocked steps, the samples themselves otherwise."""
    if result.get("latency_ns"):
        return np.asarray(result["latency_ns"], dtype=float) / 1e6
    return per_call_ms(result)


def compile_ms(result: dict) -> float:
    """Every compile before the timed loop: the warm-up calls' time over what the same calls
    cost in the steady state (the latency median), summed over all of them."""
    warm = [s["ns"] / 1e6 for s in result.get("warmup", [])]
    steady = latency_ms(result)
    if not warm or not steady.size:
        return np.nan
    return float(sum(warm) - len(warm) * np.median(steady))


def iterations_table(records: list[dict]) -> pd.DataFrame:
    """One row per sample (warm-up calls and timed samples) of every successful cell."""
    rows = []
    for rec in records:
        cell, res = rec["cell"], rec["result"]
        if res.get("status") != "ok":
            continue
        base = {"workload": cell["workload"], "params": params_label(cell["params"]),
                **{f"p_{k}": v for k, v in cell["params"].items()},
                "mode": mode_label(cell), "device": cell["device"], "dtype": cell["dtype"],
                "threads": cell["threads"], "repeat": cell.get("repeat", 0)}
        n = 0
        for phase in ("warmup", "timed"):
            for sample in res[phase]:
                n += sample.get("calls", 1)
                extra = {k: v for k, v in sample.items()
                         if k not in ("ns", "calls", "step", "gc_collections", "gc_ns")}
                rows.append({**base, "phase": phase, "iteration": sample.get("step") or n,
                             "calls": sample.get("calls", 1),
                             "ms": sample["ns"] / sample.get("calls", 1) / 1e6,
                             "gc_collections": sample["gc_collections"],
                             "gc_ms": sample["gc_ns"] / 1e6, **extra})
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


def _observed_means(results: list[dict]) -> dict:
    values = defaultdict(list)
    for res in results:
        for s in res["timed"]:
            for k, v in s.items():
                if k not in ("ns", "calls", "step", "gc_collections", "gc_ns") and \
                        isinstance(v, (int, float)):
                    values[k].append(v)
    return {k: float(np.mean(v)) for k, v in values.items()}


def _work_rates(cell: dict, median_ms: float, observed: dict, limits: dict | None) -> dict:
    wl = get_workload(cell["workload"])
    work = wl.work(cell["params"], cell["dtype"], observed)
    seconds = median_ms / 1e3
    out = {"gflops": work.flops / seconds / 1e9 if work.flops else np.nan,
           "gbps": work.bytes / seconds / 1e9 if work.bytes else np.nan,
           "us_per_op": median_ms * 1e3 / work.ops if work.ops else np.nan,
           "limit_share": np.nan, "limit": "", "invalid": ""}
    if not limits:
        return out
    if work.bytes and limits.get("bandwidth_gbps"):
        out["limit_share"] = out["gbps"] / limits["bandwidth_gbps"]
        out["limit"] = "bandwidth"
        llc = limits.get("llc_bytes") or 0
        in_memory = work.footprint is None or work.footprint > 2 * llc
        if out["limit_share"] > LIMIT_MARGIN and in_memory:
            out["invalid"] = (f"claims {out['limit_share']:.0%} of the measured bandwidth: "
                              f"work skipped or fused")
    elif work.flops and (limits.get("peak_gflops") or {}).get(cell["dtype"]):
        out["limit_share"] = out["gflops"] / limits["peak_gflops"][cell["dtype"]]
        out["limit"] = "peak matmul"
        if out["limit_share"] > LIMIT_MARGIN:
            out["invalid"] = (f"claims {out['limit_share']:.0%} of the peak matmul rate: "
                              f"work skipped")
    return out


def _shown(workload, results: list[dict]) -> dict:
    """Each observed value the workload shows, as its range over the timed samples."""
    out = {}
    for name in workload.shown:
        values = [s[name] for res in results for s in res["timed"] if name in s]
        if values:
            lo, hi = min(values), max(values)
            out[name] = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
    return out


def _bimodality(results: list[dict]) -> str:
    """Where a process's per-call times or latencies fall into two modes, say so."""
    notes = []
    for what, series in (("time per call", per_call_ms), ("latency", latency_ms)):
        if what == "latency" and not any(r.get("latency_ns") for r in results):
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


def _row_ok(workload, cell: dict, results: list[dict], limits: dict | None) -> tuple[dict, object]:
    """The statistics of a measured cell, and its level (for ratios)."""
    per_process = [per_call_ms(r) for r in results]
    lv = stats.level(per_process, [process_id(r) for r in results])
    latency = stats.level([latency_ms(r) for r in results], [process_id(r) for r in results])
    pooled_ms = np.concatenate(per_process)
    observed = _observed_means(results)
    cold = [r for r in results if not (r.get("compile_cache") or {}).get("graph_hits")]
    donation = [r["donation"] for r in results if r.get("donation")]
    copied = max((d["donated"] - d["reused"] for d in donation), default=0)
    copied_bytes = max((d.get("copied_bytes", 0) for d in donation), default=0)
    row = dict(
        status="ok", reason="", processes=len(results), **stats.summarize(pooled_ms),
        median_ms=lv.estimate, latency_ms=latency.estimate if latency else np.nan,
        process_spread=lv.spread(),
        block_calls=int(np.median([r.get("block_calls", 1) for r in results])),
        calls_timed=int(sum(s.get("calls", 1) for r in results for s in r["timed"])),
        first_call_ms=float(np.median([r["warmup"][0]["ns"] / 1e6 for r in results
                                       if r["warmup"]] or [np.nan])),
        compile_ms=float(np.median([compile_ms(r) for r in cold] or [np.nan])),
        compile_events=max(r.get("compiles_before_timing", 0) for r in results),
        compile_events_s=float(np.median([r.get("compile_events_s") or 0.0 for r in cold]
                                         or [np.nan])),
        setup_s=float(np.median([r["setup_s"] for r in results])),
        gc_iters=sum(1 for r in results for s in r["timed"] if s["gc_collections"]),
        floor_us=float(np.median([r.get("floor_ns", np.nan) for r in results])) / 1e3,
        traces_during_timing=max(r["traces_during_timing"] for r in results),
        compiles_during_timing=max(r.get("compiles_during_timing", 0) for r in results),
        donation_copied=copied, donation_copied_bytes=copied_bytes,
        host_reads_per_call=float(np.median([r.get("host_reads_per_call", np.nan)
                                             for r in results])),
        threads_applied=json.dumps(results[0]["threads_applied"]),
        device_name=results[0].get("device_name", ""),
        allocator=json.dumps(((results[0].get("process") or {}).get("allocator") or {})
                             .get("env", {}), sort_keys=True),
        stopped=next((r["stopped"] for r in results if r.get("stopped")), None) or "",
        warnings="; ".join(stats.noise_warnings(per_process)),
        bimodal=_bimodality(results),
        **_shown(workload, results),
        **_work_rates(cell, lv.estimate, observed, limits))
    return row, lv


def cells_table(records: list[dict], limits: dict | None = None) -> pd.DataFrame:
    """One row per cell (its processes together): status, times, rates, ratios."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        c = rec["cell"]
        groups.setdefault((c["workload"], json.dumps(c["params"]), mode_label(c)), []).append(rec)
    rows, levels = [], {}
    for (workload, _, label), recs in groups.items():
        cell = recs[0]["cell"]
        ok = [r["result"] for r in recs if r["result"].get("status") == "ok"]
        row = {"workload": workload, "params": params_label(cell["params"]), "mode": label,
               **{f"p_{k}": v for k, v in cell["params"].items()},
               "device": cell["device"], "dtype": cell["dtype"], "threads": cell["threads"],
               "repeats": len(recs),
               # Values measured in the same process, round-robin (see Workload.interleave).
               "interleaved": "; ".join(f"{k}={','.join(map(str, v))}"
                                        for k, v in (cell.get("interleaved") or {}).items())}
        if not ok:
            res = recs[0]["result"]
            rows.append({**row, "status": res.get("status", "failed"),
                         "reason": res.get("reason", "")})
            continue
        stats_row, lv = _row_ok(get_workload(workload), cell, ok, limits)
        levels[(workload, row["params"], label)] = lv
        rows.append({**row, **stats_row})
    df = pd.DataFrame(rows)
    return _with_ratios(df, levels)


def _with_ratios(df: pd.DataFrame, levels: dict) -> pd.DataFrame:
    """``slowdown`` (against PyTorch eager) and ``vs_eager`` (against the eager twin), each with
    its interval and whether it is significant."""
    by_mode = defaultdict(list)
    for (_, _, label), lv in levels.items():
        by_mode[label].append(lv)
    pools = {label: stats.pooled(lvs) for label, lvs in by_mode.items()}
    pair_pools: dict = {}

    def pair_pool(a: str, b: str) -> stats.Pool:
        if (a, b) not in pair_pools:
            pool = stats.Pool()
            for (w, p, label), lv in levels.items():
                other = levels.get((w, p, b)) if label == a else None
                diffs = stats.paired_differences(lv, other) if other else None
                if diffs is not None:
                    pool = pool.add(diffs)
            pair_pools[(a, b)] = pool
        return pair_pools[(a, b)]

    for col, ref_of in (("slowdown", lambda m: REFERENCE_MODE), ("vs_eager", eager_twin)):
        out = []
        for _, r in df.iterrows():
            ref = ref_of(r["mode"])
            num = levels.get((r["workload"], r["params"], r["mode"]))
            den = levels.get((r["workload"], r["params"], ref)) if ref else None
            if ref == r["mode"] and num is not None:
                out.append(stats.Ratio(1.0))            # the reference itself
            elif num is not None and den is not None:
                out.append(stats.ratio(num, den, pools[r["mode"]], pools[ref],
                                       pair_pool(r["mode"], ref)))
            else:
                out.append(None)
        df[col] = [x.value if x else np.nan for x in out]
        df[f"{col}_lo"] = [x.lo if x else np.nan for x in out]
        df[f"{col}_hi"] = [x.hi if x else np.nan for x in out]
        df[f"{col}_significant"] = [x.significant if x else False for x in out]
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
    if np.isfinite(r.get("us_per_op", np.nan)):
        rate = f"{stats.significant_figures(r['us_per_op'])} us/op"
        if np.isfinite(r.get("gbps", np.nan)):
            rate += f", {stats.significant_figures(r['gbps'])} GB/s"
    elif np.isfinite(r.get("gflops", np.nan)):
        rate = f"{stats.significant_figures(r['gflops'])} GFLOP/s"
    else:
        return ""
    if np.isfinite(r.get("limit_share", np.nan)):
        rate += f" ({r['limit_share']:.0%} of {r['limit']})"
    return rate


def notes(r) -> list[str]:
    note = []
    text = lambda key: r.get(key) if isinstance(r.get(key), str) else ""  # noqa: E731
    if text("invalid"):
        note.append(f"INVALID: {text('invalid')}")
    if r.get("traces_during_timing", 0):
        note.append(f"RETRACED {int(r['traces_during_timing'])}x while timing")
    if r.get("compiles_during_timing", 0):
        note.append(f"RECOMPILED {int(r['compiles_during_timing'])}x while timing")
    if r.get("donation_copied", 0):
        size = int(r.get("donation_copied_bytes", 0) or 0)
        flag = "COPIED" if size >= COPY_WARN_BYTES else "copied"
        note.append(f"{flag}: {int(r['donation_copied'])} donated buffer(s) of {size:,} bytes "
                    f"not reused, copied every step")
    if text("stopped"):
        note.append(f"stopped early: {text('stopped')}")
    if text("bimodal"):
        note.append(text("bimodal"))
    if r.get("gc_iters"):
        note.append(f"GC in {int(r['gc_iters'])} samples")
    if text("warnings"):
        note.append(text("warnings"))
    return note


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The human-readable view printed after a run and shown in results/README.md."""
    out = []
    shown = [c for c in ("pairs",) if c in cells]
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
