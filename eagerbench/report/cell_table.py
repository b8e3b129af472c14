"""The table of every cell a workload page shows (and ``eagerbench.measure(...).summary()``
returns): each row's time, latency, ratios, rate, compile cost, shown values and notes, the
notes being what a guard caught (INVALID, DISAGREES, RETRACED, RECOMPILED, COPIED) and what
else a reader must know of the row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eagerbench.report import format as fmt
from eagerbench.report.rows import CellRow

COPY_WARN_BYTES = 1 << 20   # donated buffers copied each step: a warning from 1 MiB on
GUARDS = ("INVALID", "DISAGREES", "RETRACED", "RECOMPILED", "COPIED")


def notes(r: CellRow) -> list[str]:
    """What a reader must know of a row beside its figures: the guards it broke first."""
    note = []
    if r.invalid:
        note.append(f"INVALID: {r.invalid}")
    diff = r.agreement_rel_diff
    if np.isfinite(diff) and diff > (r.agreement_rtol if np.isfinite(r.agreement_rtol)
                                     else 1e-3):
        note.append(f"DISAGREES with {r.eager_twin} after the warm-up: relative "
                    f"difference {diff:.2g} (tolerance {r.agreement_rtol:.0e}; a step that "
                    f"draws random numbers, such as dropout, is declared with random=)")
    if r.traces_during_timing:
        note.append(f"RETRACED {r.traces_during_timing}x while timing")
    if r.compiles_during_timing:
        note.append(f"RECOMPILED {r.compiles_during_timing}x while timing")
    if r.donation_copied:
        size = r.donation_copied_bytes
        flag = "COPIED" if size >= COPY_WARN_BYTES else "copied"
        note.append(f"{flag}: {r.donation_copied} donated buffer(s) of {size:,} bytes "
                    f"not reused, copied every step")
    if r.stopped:
        note.append(f"stopped early: {r.stopped}")
    if r.flags:
        note.append(f"[{', '.join(r.flags)}]")
    if r.bimodal:
        note.append(r.bimodal)
    if r.gc_iters:
        note.append(f"GC in {r.gc_iters} samples")
    return note


def guards_broken(rows: list[CellRow]) -> dict[str, list[str]]:
    """Per kind of guard (``GUARDS``), the rows that broke it, each as one line."""
    broken: dict[str, list[str]] = {}
    for r in rows:
        for note in notes(r):
            kind = next((g for g in GUARDS if note.startswith(g)), None)
            if kind:
                broken.setdefault(kind, []).append(f"{r.workload} {r.params} [{r.mode}]: {note}")
    return broken


def _ratio(r: CellRow, name: str) -> str:
    ratio = r.ratio(name)
    return fmt.ratio(ratio.value, ratio.lo, ratio.hi) if ratio else ""


def agreement_text(r: CellRow) -> str:
    """A compiled mode's largest relative difference from its eager twin after the warm-up
    (``2e-07``), or why it was not compared."""
    if r.random_step:
        return f"not compared: random step ({r.random_step})"
    if not np.isfinite(r.agreement_rel_diff):
        return ""
    return "exactly" if r.agreement_rel_diff == 0 else f"{r.agreement_rel_diff:.1g}"


def summary_table(rows: list[CellRow]) -> pd.DataFrame:
    """One line per cell: the human-readable view of the cells table."""
    shown = list(dict.fromkeys(name for r in rows for name in r.shown
                               if any(name in other.shown_values for other in rows)))
    out = []
    for r in rows:
        line = {"workload": r.workload, "params": r.params, "mode": r.mode}
        if not r.ok:
            line.update({"time per call": "", "latency": "", "vs torch": "",
                         "vs eager twin": "", "rate": "", "compile": "", "agrees": "",
                         **{c: "" for c in shown}, "note": f"{r.status}: {r.reason}"})
            out.append(line)
            continue
        block = r.block_calls or 1
        line.update({"time per call": fmt.duration(r.median_ms)
                     + (f" (x{block})" if block > 1 else ""),
                     "latency": fmt.duration(r.latency_ms) if block > 1 else "",
                     "vs torch": _ratio(r, "slowdown"), "vs eager twin": _ratio(r, "vs_eager"),
                     "rate": fmt.rate(r.us_per_op, r.gflops, r.gbps, r.ops_per_call,
                                      r.limit_share, r.limit),
                     "compile": fmt.duration(r.compile_ms) if np.isfinite(r.compile_ms)
                     and r.compile_ms > 0.05 * r.median_ms else "",
                     "agrees": agreement_text(r),
                     **{c: r.shown_values.get(c, "") for c in shown},
                     "note": "; ".join(notes(r))})
        out.append(line)
    return pd.DataFrame(out)
