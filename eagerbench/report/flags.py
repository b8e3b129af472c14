"""The flags a row of the cells table can carry, decided in one place, each with what it means.

A flag says something about the row that its ratio alone does not: the interval is too wide to
read to 10% (``imprecise``), the processes measured different ratios beyond what their own
samples allow (``processes disagree``), one process's per-call times fall in two modes
(``bimodal``, a property of the step), or the cell's time is mostly fresh pages
(``allocation-bound``: it moves with the machine's memory state, not with the framework), or
the mode computed something else than its eager twin (``results disagree``). What
the whole host scatters by is one line for the run (``host_noisy``), not a mark on each row.
"""

from __future__ import annotations

import numpy as np

from eagerbench.records.limits import contention_of
from eagerbench.report import stats
from eagerbench.report.rows import CellRow

ALLOCATION_BOUND = 0.25     # share of a call spent faulting in fresh pages
HOST_NOISY = 0.10           # IQR over median of the machine probe's fixed loop

MEANINGS = {
    "imprecise": f"the ratio's 95% interval is wider than +-{stats.IMPRECISE:.0%}: more "
                 "processes (--repeat) would narrow it",
    "processes disagree": f"the processes' ratios differ beyond their own samples' scatter, "
                          f"allowing for correlated samples (Cochran's Q, p < "
                          f"{stats.DISAGREE_P:g}): the interval carries it, but something in "
                          "the process decides this ratio",
    "bimodal": f"a process's per-call times fall in two modes ({stats.BIMODAL_MIN_SAMPLES} "
               "samples or more): the step itself has two speeds; the median hides one",
    "allocation-bound": f"over {ALLOCATION_BOUND:.0%} of a call is page faults on fresh "
                        "memory: the time moves with the machine's memory state, so its "
                        "ratios are not headline figures",
    "results disagree": "after the warm-up, the mode's results differ from its eager twin's "
                        "beyond the tolerance (agreement_rel_diff over agreement_rtol): it may "
                        "not compute the same thing, so its eager tax compares unlike work",
}


def headline(row: CellRow) -> str:
    """The ratio a row is read by: its eager tax when it has a twin, else its ratio over
    PyTorch eager; '' for PyTorch eager itself."""
    if row.eager_twin:
        return "vs_eager"
    return "slowdown" if row.mode != "torch" else ""


def _above(value: float, limit: float) -> bool:
    return bool(np.isfinite(value) and np.isfinite(limit) and value > limit)


def ratio_flags(row: CellRow, ratio: str) -> list[str]:
    """The flags of a row read by its ``ratio`` ("vs_eager", "slowdown"; '' for none): the
    interval's, then the step's own."""
    if not row.ok:
        return []
    out = []
    found = row.ratio(ratio)
    if found is not None and _above(found.half_width, stats.IMPRECISE):
        out.append("imprecise")
    if found is not None and np.isfinite(found.disagreement_p) and \
            found.disagreement_p < stats.DISAGREE_P:
        out.append("processes disagree")
    if row.bimodal:
        out.append("bimodal")
    if _above(row.allocation_share, ALLOCATION_BOUND):
        out.append("allocation-bound")
    if ratio == "vs_eager" and _above(row.agreement_rel_diff, row.agreement_rtol):
        out.append("results disagree")
    return out


def row_flags(row: CellRow) -> tuple[str, ...]:
    """The flags of a row, read by its headline ratio."""
    return tuple(ratio_flags(row, headline(row)))


def flagged(rows: list[CellRow]) -> list[CellRow]:
    """The measured rows that carry a flag."""
    return [row for row in rows if row.ok and row.flags]


def host_noisy(env: dict) -> str:
    """One line for the run when the machine probe's fixed loop scattered over
    ``HOST_NOISY`` of its median at the run's start or end; '' otherwise."""
    shares = {when: probe.iqr_share for when, probe in contention_of(env).items()
              if probe.iqr_share is not None}
    noisy = {when: share for when, share in shares.items() if share > HOST_NOISY}
    if not noisy:
        return ""
    return ("host noisy: a fixed pure-Python loop alone scattered by an IQR of "
            + " and ".join(f"{share:.0%} of its median ({when})" for when, share in noisy.items())
            + "; every row's per-process times carry that, and the intervals include it")
