"""The compiler's counters over a cell: what ``Backend.graph_diagnostics`` moved by (graphs
built, graph breaks, the compile's split), and a baseline advanced past a probe's compiles."""

from __future__ import annotations

from eagerbench.records.model import CompilerCounts

Counters = CompilerCounts   # ``Backend.graph_diagnostics``: graphs, bytes, breaks, split


def compiler_delta(before: Counters, after: Counters) -> Counters:
    """The change of ``Backend.graph_diagnostics`` counters over one cell."""
    out = Counters()
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
        split = before.get("compile_split_s", {})
        out["compile_split_s"] = {phase: s - split.get(phase, 0.0)
                                  for phase, s in after["compile_split_s"].items()}
    return out


def compiler_plus(counters: Counters, delta: Counters) -> Counters:
    """``graph_diagnostics`` counters advanced by a ``compiler_delta``: the baseline a unit's
    change is taken from, once the compiles of a probe built during the unit are left out."""
    out = Counters(**counters)
    if "graphs" in delta:
        out["graphs"] = counters.get("graphs", 0) + delta["graphs"]
    if "bytes_accessed" in delta:
        out["bytes_accessed"] = counters.get("bytes_accessed", 0.0) + delta["bytes_accessed"]
    if "graph_breaks" in delta:
        breaks = dict(counters.get("graph_breaks", {}))
        for reason, n in delta["graph_breaks"].items():
            breaks[reason] = breaks.get(reason, 0) + n
        out["graph_breaks"] = breaks
    if "compile_split_s" in delta:
        split = dict(counters.get("compile_split_s", {}))
        for phase, s in delta["compile_split_s"].items():
            split[phase] = split.get(phase, 0.0) + s
        out["compile_split_s"] = split
    return out
