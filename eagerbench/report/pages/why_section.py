"""The "Why" section of a workload page: each eager cell's leading sentence, the eager tax
explained part by part, graph breaks, time beside memory, and a figure per workload, from the
typed rows of the why decomposition (``report.explain``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eagerbench.report.explain import PARTS, WhyRow
from eagerbench.report.figures import why as why_figure
from eagerbench.report.format import percent, significant


def tax_table(why: list[WhyRow]) -> pd.DataFrame:
    """For each compiled cell and its eager twin: the eager tax (ms per call) and the share of
    it each part's difference explains."""
    index = {(r.workload, r.params, r.mode): r for r in why}
    rows = []
    for r in why:
        twin = index.get((r.workload, r.params, r.eager_twin)) if r.compiled else None
        if twin is None:
            continue
        tax = twin.median_ms - r.median_ms
        row = {"workload": r.workload, "params": r.params, "eager": twin.mode,
               "compiled": r.mode, "eager_ms": twin.median_ms, "compiled_ms": r.median_ms,
               "tax_ms": tax}
        # Shares of a tax: none when compiling made the cell slower, or the difference is
        # within its interval (a share of noise says nothing).
        paid = tax > 0 and r.vs_eager_significant
        for part in PARTS:
            row[f"{part}_explains"] = (twin.ms(part) - r.ms(part)) / tax if paid else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _ends(why: list[WhyRow]) -> list[WhyRow]:
    """Each eager mode's first and last cell of its workload's grid."""
    groups: dict[tuple[str, str], list[WhyRow]] = {}
    for r in why:
        if not r.compiled:
            groups.setdefault((r.workload, r.mode), []).append(r)
    return [r for group in groups.values()
            for r in (group if len(group) < 2 else [group[0], group[-1]])]


def sentences(why: list[WhyRow]) -> list[str]:
    """The leading sentence of each eager cell at the ends of its workload's grid:
    "tf-eager at elementwise size=10 ops=100: 97% dispatch, 14 us per op"."""
    out = []
    for r in _ends(why):
        counted = np.isfinite(r.dispatch_share)
        parts = [f"{percent(r.dispatch_share)} dispatch"] if counted else []
        if np.isfinite(r.pool_ms) and r.pool_share >= 0.005:
            parts.append(f"{percent(r.pool_share)} op sizes (thread pool)")
        if np.isfinite(r.kernels_ms):
            parts.append(f"{percent(r.kernels_share)} {r.bound}")
        if np.isfinite(r.allocation_ms) and r.allocation_share >= 0.005:
            parts.append(f"{percent(r.allocation_share)} fresh pages")
        if counted:
            parts.append(f"{percent(r.remainder_share)} unexplained")
        per_op = (f", {significant(r.us_per_dispatch)} us per op over "
                  f"{r.ops_per_call:.0f} ops" if np.isfinite(r.ops_per_call) else
                  ", ops not counted (JAX cannot trace Python control flow on values)")
        syncs = (f", {r.host_syncs_per_call:.3g} host syncs per call"
                 if np.isfinite(r.host_syncs_per_call) and r.host_syncs_per_call else "")
        out.append(f"{r.mode} at {r.workload} {r.params}: " + ", ".join(parts) + per_op
                   + syncs)
    return out


def _table(why: list[WhyRow], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{c: getattr(r, c) for c in columns} for r in why], columns=columns)


# What each part of the decomposition is, as the section's first paragraph says it.
METHOD = ("Each cell's time per call split into estimates (method in "
          "`eagerbench/report/explain.py`): **dispatch** = dispatches per call (every framework"
          " op in an eager mode, counted; in a compiled mode one launch per graph compiled for "
          "the step, and in tf-graph its graph's ops) x the measured price of one dispatch in "
          "that mode, sampled in its process after the cell's own samples (in-place updates "
          "priced apart); **pool** = what each counted op's size costs beyond a one-element op "
          "and its traffic (an add of that size, timed: mostly handing the op to the "
          "framework's threads; in a mode that fuses, a launch on tensors of the cell's size "
          "against a one-element one); **kernels** = the larger of the bytes moved (the "
          "workload's count, or the compiler's for its fused graphs) at the measured bandwidth "
          "(past half the cache below the last level, the framework's stream of the data's size"
          " timed after the cell, and a write into a new tensor counted twice, its lines read "
          "first, unless the call faulted its pages in) and the FLOPs at the measured rate of "
          "their kind (the mode's own product of their FLOPs per op, its compiler's in a mode "
          "that generates code, timed after the cell, or a fused chain of adds: the mode's own,"
          " after the cell, in a mode that fuses); **allocation** = the page faults one call "
          "takes x the measured price of a fresh page (its fault, zeroing and release), or, "
          "from 1,000 small faults a call, the kernel's share of the process's CPU time over "
          "the timed blocks, of the median call; the **remainder** is what none explains (lost "
          "fusion, caches, Python; negative when the estimates explain more than the time). "
          "Every column, with the compiler's graphs, graph breaks (with reasons) and compile "
          "split, and each cell's peak memory, is in `why.csv`.")


def markdown(why: list[WhyRow], out_dir: Path, prefix: str = "") -> list[str]:
    """The report's "Why" section: leading sentences, the eager tax explained per pair, and a
    figure per workload, drawn into ``out_dir`` and linked as ``prefix`` + its name (a page
    in a folder below); ``why.csv`` holds every column."""
    if not why:
        return []
    parts = ["## Why: where each eager tax comes from", "", METHOD, ""]
    parts += [f"- {s}" for s in sentences(why)] + [""]
    parts += _tax_part(tax_table(why)) + _breaks_part(why) + _memory_part(why)
    for workload in dict.fromkeys(r.workload for r in why):
        path = why_figure.figure(why, workload, out_dir / f"why_{workload.replace('-', '_')}.png")
        parts += [f"![why {workload}]({prefix}{path.name})", ""]
    return parts


def _tax_part(taxes: pd.DataFrame) -> list[str]:
    if taxes.empty:
        return []
    shown = taxes.assign(**{
        "tax": taxes["tax_ms"].map(lambda v: f"{significant(v)} ms"),
        **{f"{p} explains": taxes[f"{p}_explains"].map(percent) for p in PARTS}})
    return ["### The eager tax, explained", "",
            "Per compiled cell against its eager twin: the tax (eager minus compiled, ms "
            "per call) and the share of it that each part's difference explains (blank "
            "where there is no tax to explain: the compiled cell is slower, or the "
            "difference lies within its 95% interval).", "",
            shown[["workload", "params", "eager", "compiled", "tax"] +
                  [f"{p} explains" for p in PARTS]].to_markdown(index=False), ""]


def _breaks_part(why: list[WhyRow]) -> list[str]:
    broken = [r for r in why if np.nan_to_num(r.graph_breaks) > 0]
    if not broken:
        return []
    return ["### Graph breaks", "",
            "Compiled cells whose compiler split the step (Dynamo's reasons, first line; "
            "counts over every compile of the cell): each break is one more graph launched "
            "per call, with eager code between.", "",
            _table(broken, ["workload", "params", "mode", "graphs", "graph_breaks",
                            "graph_break_reasons"]).to_markdown(index=False), ""]


def _memory_part(why: list[WhyRow]) -> list[str]:
    if not any(np.isfinite(r.rss_peak_mib) for r in why):
        return []
    memory = _table(why, ["workload", "params", "mode", "median_ms", "rss_peak_mib",
                          "step_transient_mib", "device_peak_mib"])
    return ["### Time and memory", "",
            "Peak resident memory of the worker process during one more call of the step "
            "(its high-water mark, reset before the call), what that call allocated on top "
            "of what was held, and the device's peak on a GPU: compiled modes often trade "
            "one for the other.", "",
            memory.to_markdown(index=False, floatfmt=".4g"), ""]
