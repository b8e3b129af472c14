"""The compiler's counters over a cell: what ``Backend.graph_diagnostics`` moved by (graphs
built, graph breaks, the compile's split), and a baseline advanced past a probe's compiles."""

from __future__ import annotations


def compiler_delta(before: dict, after: dict) -> dict:
    """The change of ``Backend.graph_diagnostics`` counters over one cell."""
    out: dict = {}
    if "graphs" in after:
        out["graphs"] = after["graphs"] - before.get("graphs", 0)
    if "bytes_accessed" in after:
        out["bytes_accessed"] = after["bytes_accessed"] - before.get("bytes_accessed", 0.0)
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


def compiler_plus(counters: dict, delta: dict) -> dict:
    """``graph_diagnostics`` counters advanced by a ``compiler_delta``: the baseline a unit's
    change is taken from, once the compiles of a probe built during the unit are left out."""
    out = dict(counters)
    for key in ("graphs", "bytes_accessed"):
        if key in delta:
            out[key] = counters.get(key, 0) + delta[key]
    for key in ("graph_breaks", "compile_split_s"):
        if key in delta:
            merged = dict(counters.get(key, {}))
            for name, value in delta[key].items():
                merged[name] = merged.get(name, 0) + value
            out[key] = merged
    return out
