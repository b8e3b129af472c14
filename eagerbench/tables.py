"""The run's records turned into two tidy pandas tables: per iteration and per cell."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from eagerbench import stats
from workloads import get_workload

CELL_KEYS = ["workload", "params", "mode"]
REFERENCE_MODE = "torch"


def params_label(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def iterations_table(records: list[dict]) -> pd.DataFrame:
    """One row per iteration (warm-up and timed) of every successful cell."""
    rows = []
    for rec in records:
        cell, res = rec["cell"], rec["result"]
        if res.get("status") != "ok":
            continue
        base = {"workload": cell["workload"], "params": params_label(cell["params"]),
                **{f"p_{k}": v for k, v in cell["params"].items()},
                "mode": cell["mode"], "device": cell["device"], "dtype": cell["dtype"],
                "threads": cell["threads"], "repeat": cell.get("repeat", 0)}
        n = 0
        for phase in ("warmup", "timed"):
            for sample in res[phase]:
                n += 1
                extra = {k: v for k, v in sample.items() if k not in ("ns", "gc_collections", "gc_ns")}
                rows.append({**base, "phase": phase, "iteration": n, "ms": sample["ns"] / 1e6,
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


def _work_rates(cell: dict, median_ms: float, limits: dict | None) -> dict:
    wl = get_workload(cell["workload"])
    work = wl.work(cell["params"], cell["dtype"], cell["warmup"], cell["iters"])
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


def cells_table(records: list[dict], limits: dict | None = None) -> pd.DataFrame:
    """One row per cell (repeats pooled): status, time statistics, rates, slowdowns."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        c = rec["cell"]
        groups.setdefault((c["workload"], json.dumps(c["params"]), c["mode"]), []).append(rec)
    rows, samples = [], {}
    for (workload, params_json, mode), recs in groups.items():
        cell = recs[0]["cell"]
        ok = [r["result"] for r in recs if r["result"].get("status") == "ok"]
        row = {"workload": workload, "params": params_label(cell["params"]), "mode": mode,
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
        ms = np.array([s["ns"] / 1e6 for res in ok for s in res["timed"]])
        samples[(workload, row["params"], mode)] = ms
        gc_iters = sum(1 for res in ok for s in res["timed"] if s["gc_collections"])
        summary = stats.summarize(ms)
        row.update(status="ok", reason="", **summary,
                   first_call_ms=float(np.median([r["warmup"][0]["ns"] / 1e6 for r in ok
                                                  if r["warmup"]] or [np.nan])),
                   setup_s=float(np.median([r["setup_s"] for r in ok])),
                   gc_iters=gc_iters,
                   harness_ns=float(np.median([r.get("harness_overhead_ns", np.nan) for r in ok])),
                   traces_during_timing=max(r["traces_during_timing"] for r in ok),
                   threads_applied=json.dumps(ok[0]["threads_applied"]),
                   device_name=ok[0].get("device_name", ""),
                   stopped=next((r["stopped"] for r in ok if r.get("stopped")), None) or "",
                   warnings="; ".join(stats.noise_warnings(ms)),
                   **_work_rates(cell, summary["median_ms"], limits))
        rows.append(row)
    df = pd.DataFrame(rows)
    for col, ref_of in (("slowdown", lambda m: REFERENCE_MODE), ("vs_eager", _eager_twin)):
        vals, los, his = [], [], []
        for _, r in df.iterrows():
            ref = ref_of(r["mode"])
            num = samples.get((r["workload"], r["params"], r["mode"]))
            den = samples.get((r["workload"], r["params"], ref)) if ref else None
            if ref == r["mode"] and num is not None:
                ratio, lo, hi = 1.0, np.nan, np.nan     # the reference itself
            elif num is not None and den is not None:
                ratio, lo, hi = stats.ratio_ci(num, den)
            else:
                ratio, lo, hi = np.nan, np.nan, np.nan
            vals.append(ratio), los.append(lo), his.append(hi)
        df[col], df[f"{col}_lo"], df[f"{col}_hi"] = vals, los, his
    return df


def _eager_twin(mode: str):
    from eagerbench.modes import all_modes

    m = all_modes().get(mode)
    return m.baseline if m is not None and m.baseline != mode else None


def fmt_ratio(r, lo, hi) -> str:
    if not np.isfinite(r):
        return ""
    if np.isfinite(lo):
        return f"{r:.2f}x [{lo:.2f}, {hi:.2f}]"
    return f"{r:.2f}x"


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The human-readable view printed after a run and shown in results/README.md."""
    out = []
    for _, r in cells.iterrows():
        row = {"workload": r["workload"], "params": r["params"], "mode": r["mode"]}
        if r["status"] != "ok":
            row.update({"median ms": "", "IQR ms": "", "vs torch": "", "vs eager twin": "",
                        "rate": "",
                        "first call ms": "", "note": f"{r['status']}: {r['reason']}"})
            out.append(row)
            continue
        if np.isfinite(r.get("us_per_op", np.nan)) and r["workload"] == "elementwise":
            rate = f"{r['us_per_op']:.3g} us/op, {r['gbps']:.3g} GB/s"
        elif np.isfinite(r.get("gflops", np.nan)):
            rate = f"{r['gflops']:.3g} GFLOP/s"
        else:
            rate = ""
        if np.isfinite(r.get("limit_share", np.nan)):
            rate += f" ({r['limit_share']:.0%} of {r['limit']})"
        note = []
        if isinstance(r.get("invalid"), str) and r["invalid"]:
            note.append(f"INVALID: {r['invalid']}")
        if r.get("traces_during_timing", 0):
            note.append(f"RETRACED {int(r['traces_during_timing'])}x while timing")
        if isinstance(r.get("stopped"), str) and r["stopped"]:
            note.append(f"stopped early: {r['stopped']}")
        if r.get("gc_iters"):
            note.append(f"GC in {int(r['gc_iters'])} iters")
        if isinstance(r.get("warnings"), str) and r["warnings"]:
            note.append(r["warnings"])
        row.update({"median ms": f"{r['median_ms']:.4g}", "IQR ms": f"{r['iqr_ms']:.2g}",
                    "vs torch": fmt_ratio(r["slowdown"], r["slowdown_lo"], r["slowdown_hi"]),
                    "vs eager twin": fmt_ratio(r["vs_eager"], r["vs_eager_lo"], r["vs_eager_hi"]),
                    "rate": rate, "first call ms": f"{r['first_call_ms']:.4g}",
                    "note": "; ".join(note)})
        out.append(row)
    return pd.DataFrame(out)
