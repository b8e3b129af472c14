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
import pandas as pd

from eagerbench.report import stats

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


def headline(row) -> str:
    """The ratio a row is read by: its eager tax when it has a twin, else its ratio over
    PyTorch eager; '' for PyTorch eager itself."""
    if isinstance(row.get("eager_twin"), str) and row["eager_twin"]:
        return "vs_eager"
    return "slowdown" if row.get("mode") != "torch" else ""


def _number(row, key: str) -> float:
    try:
        value = float(row.get(key))
    except (TypeError, ValueError):
        return np.nan
    return value


def ratio_flags(row, ratio: str) -> list[str]:
    """The flags of one row of the cells table read by its ``ratio`` column (``vs_eager``,
    ``slowdown``; '' for none): the interval's, then the step's own."""
    if row.get("status") != "ok":
        return []
    out = []
    if ratio and _number(row, f"{ratio}_half_width") > stats.IMPRECISE:
        out.append("imprecise")
    if ratio and _number(row, f"{ratio}_disagreement_p") < stats.DISAGREE_P:
        out.append("processes disagree")
    if isinstance(row.get("bimodal"), str) and row["bimodal"]:
        out.append("bimodal")
    if _number(row, "allocation_share") > ALLOCATION_BOUND:
        out.append("allocation-bound")
    if ratio == "vs_eager" and _number(row, "agreement_rel_diff") > _number(row,
                                                                            "agreement_rtol"):
        out.append("results disagree")
    return out


def row_flags(row) -> list[str]:
    """The flags of one row of the cells table (with ``allocation_share`` where known), read
    by its headline ratio."""
    return ratio_flags(row, headline(row))


def mark(cells: pd.DataFrame, why: pd.DataFrame | None = None) -> pd.DataFrame:
    """The cells table with each row's ``allocation_share`` (from the why table) and
    ``flags`` (comma-separated)."""
    cells = cells.copy()
    if why is not None and len(why) and "allocation_share" in why:
        share = why.set_index(["workload", "params", "mode"])["allocation_share"]
        keys = list(zip(cells["workload"], cells["params"], cells["mode"]))
        cells["allocation_share"] = [share.get(k, np.nan) for k in keys]
    elif "allocation_share" not in cells:
        cells["allocation_share"] = np.nan
    cells["flags"] = [", ".join(row_flags(r)) for _, r in cells.iterrows()]
    return cells


def flagged(cells: pd.DataFrame) -> pd.Series:
    """Which measured rows carry a flag."""
    ok = cells[cells["status"] == "ok"] if "status" in cells else cells
    return ok.get("flags", pd.Series("", index=ok.index)).fillna("").ne("")


def host_noisy(env: dict) -> str:
    """One line for the run when the machine probe's fixed loop scattered over
    ``HOST_NOISY`` of its median at the run's start or end; '' otherwise."""
    shares = {when: probe["iqr_share"] for when, probe in (env.get("contention") or {}).items()
              if probe.get("iqr_share") is not None}
    noisy = {when: share for when, share in shares.items() if share > HOST_NOISY}
    if not noisy:
        return ""
    return ("host noisy: a fixed pure-Python loop alone scattered by an IQR of "
            + " and ".join(f"{share:.0%} of its median ({when})" for when, share in noisy.items())
            + "; every row's per-process times carry that, and the intervals include it")
