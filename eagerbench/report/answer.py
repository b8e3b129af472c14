"""The run's answer in one direction: how many times slower each eager mode is than its graph
twin (the eager tax, eager / graph), and each mode against PyTorch eager, with intervals.

Everything here reads the cells table (``cells.csv``). The page (``results/README.md``), the
terminal table after ``eagerbench run`` and ``eagerbench show`` all take their figures from
``taxes``; no figure is computed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eagerbench.report import flags, stats
from eagerbench.frameworks.modes import all_modes, graph_twins
from workloads import all_workloads

REFERENCE = "torch"
MAX_HEADLINE_ROWS = 25
# One letter per flag, for tables too narrow for the words.
MARKS = {"imprecise": "i", "processes disagree": "d", "bimodal": "b", "allocation-bound": "a",
         "results disagree": "x"}


@dataclass(frozen=True)
class Ratio:
    """``numerator`` / ``denominator`` in one cell, with its 95% interval and flags."""

    workload: str
    params: str
    numerator: str
    denominator: str
    value: float
    lo: float
    hi: float
    flags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_tax(self) -> bool:
        return self.denominator != REFERENCE or self.numerator == REFERENCE

    def text(self, interval: bool = True) -> str:
        """``2.71x [2.50, 2.93]``, three significant figures."""
        if not np.isfinite(self.value):
            return ""
        out = f"{stats.significant_figures(self.value)}x"
        if interval and np.isfinite(self.lo) and np.isfinite(self.hi):
            out += (f" [{stats.significant_figures(self.lo)}, "
                    f"{stats.significant_figures(self.hi)}]")
        return out

    def marks(self) -> str:
        return "".join(MARKS[f] for f in self.flags if f in MARKS)


def read_cells(path) -> pd.DataFrame:
    """A stored ``cells.csv``, its text columns as text ('' where empty)."""
    text = {"flags": "string", "invalid": "string", "bimodal": "string"}
    cells = pd.read_csv(path, dtype=text)
    for column in text:   # absent when no cell was measured
        cells[column] = cells[column].fillna("") if column in cells else ""
    return cells


def _ok(cells: pd.DataFrame) -> pd.DataFrame:
    if "status" not in cells:
        return cells.iloc[0:0]
    plain = ~cells["mode"].astype(str).str.contains(" ", regex=False)   # no setting variants
    return cells[(cells["status"] == "ok") & plain]


def _flags_of(row, ratio: str) -> tuple[str, ...]:
    return tuple(flags.ratio_flags(row, ratio))


def taxes(cells: pd.DataFrame) -> list[Ratio]:
    """Every eager tax (eager / graph twin) and every mode over PyTorch eager in the run."""
    ok = _ok(cells)
    by_key = {(r["workload"], r["params"], r["mode"]): r for _, r in ok.iterrows()}
    out = []
    twins = graph_twins()
    for (workload, params, mode), row in by_key.items():
        twin = by_key.get((workload, params, twins.get(mode, "")))
        if twin is not None and np.isfinite(twin.get("vs_eager", np.nan)):
            # the twin's row holds graph / eager; the tax is its inverse
            marks = tuple(dict.fromkeys(_flags_of(twin, "vs_eager")
                                        + _flags_of(row, "")))
            out.append(Ratio(workload, params, mode, twin["mode"], 1 / twin["vs_eager"],
                             1 / twin["vs_eager_hi"], 1 / twin["vs_eager_lo"], marks))
        if mode != REFERENCE and np.isfinite(row.get("slowdown", np.nan)):
            out.append(Ratio(workload, params, mode, REFERENCE, row["slowdown"],
                             row["slowdown_lo"], row["slowdown_hi"],
                             _flags_of(row, "slowdown")))
    return out


def headline_params(cells: pd.DataFrame) -> list[tuple[str, str]]:
    """The (workload, params) rows of the headline: a known workload's default sweep (the
    article's sizes; the values run when none of them was), every parameter set of a user's
    workload; at most 25 rows."""
    ok = _ok(cells)
    known = all_workloads()
    rows = []
    for workload, sets in ok.groupby("workload", sort=False):
        spec = known.get(workload)
        mine = [(workload, params) for params, group in sets.groupby("params", sort=False)
                if spec is None or all(
                    None in p.default or f"p_{p.name}" not in group
                    or pd.isna(group.iloc[0][f"p_{p.name}"])
                    or _in(group.iloc[0][f"p_{p.name}"], p.default) for p in spec.params)]
        # a workload run at none of its default values (sizes the user chose) shows them all
        rows += mine or [(workload, params) for params in dict.fromkeys(sets["params"])]
    return rows[:MAX_HEADLINE_ROWS]


def _in(value, allowed: tuple) -> bool:
    try:
        return any(np.isclose(float(value), float(a)) for a in allowed)
    except (TypeError, ValueError):
        return str(value) in {str(a) for a in allowed}


def matrix(cells: pd.DataFrame, ratios: list[Ratio] | None = None) -> pd.DataFrame:
    """The headline matrix: a row per headline (workload, params), a column per eager tax
    (``tf-eager / tf-graph``) and then per mode over PyTorch eager, each cell a ``Ratio``."""
    ratios = taxes(cells) if ratios is None else ratios
    rows = headline_params(cells)
    found = {(r.workload, r.params, r.numerator, r.denominator): r for r in ratios}
    order = list(all_modes())
    columns = sorted({(r.numerator, r.denominator) for r in ratios},
                     key=lambda nd: (not (nd[1] != REFERENCE or nd[0] == REFERENCE),
                                     order.index(nd[0]) if nd[0] in order else len(order),
                                     nd[0]))
    table = pd.DataFrame([{"workload": w, "params": p,
                           **{f"{n} / {d}": found.get((w, p, n, d)) for n, d in columns}}
                          for w, p in rows])
    return table


def cell_text(ratio: Ratio | None, interval: bool = True) -> str:
    if ratio is None:
        return ""
    marks = ratio.marks()
    return ratio.text(interval) + (f" ({marks})" if marks else "")


def framework_lines(ratios: list[Ratio], rows: list[tuple[str, str]]) -> list[str]:
    """Per eager mode: the geometric mean of its tax over the headline rows and its range.
    Allocation-bound cells are left out: their time moves with the machine's memory state."""
    lines = []
    wanted = set(rows)
    for eager, twin in graph_twins().items():
        mine = [r for r in ratios if r.numerator == eager and r.denominator == twin
                and (r.workload, r.params) in wanted and "allocation-bound" not in r.flags]
        if not mine:
            continue
        values = np.array([r.value for r in mine])
        low, high = mine[int(values.argmin())], mine[int(values.argmax())]
        lines.append(
            f"**{eager}** is {stats.significant_figures(float(np.exp(np.log(values).mean())))}x "
            f"slower than {twin} (geometric mean over {len(mine)} cells), from "
            f"{low.text(False)} ({low.workload} {low.params}) to {high.text(False)} "
            f"({high.workload} {high.params}).")
    return lines


# --- the answer in a terminal (<= 100 columns) -------------------------------------------------

MAX_MODE_ROWS = 60      # past this many rows, the terminal shows the headline matrix instead


def compact(ratio: Ratio | None) -> str:
    """``1.80x +-13%``: the ratio and its interval's half-width on the log scale."""
    if ratio is None or not np.isfinite(ratio.value):
        return ""
    half = stats.Ratio(ratio.value, ratio.lo, ratio.hi).half_width
    if np.isfinite(half) and half > 1:   # past +-100% a +- reads wrong: the interval itself
        ends = [stats.significant_figures(v, 2) for v in (ratio.value, ratio.lo, ratio.hi)]
        return f"{ends[0]}x [{ends[1]}-{ends[2]}]"     # 430x [220-870], not 4.3e+02x
    return f"{stats.significant_figures(ratio.value)}x" + (f" +-{half:.0%}" if np.isfinite(half)
                                                           else "")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "~"


def duration(ms: float) -> str:
    if not np.isfinite(ms):
        return ""
    if ms < 1:
        return f"{stats.significant_figures(ms * 1e3)} us"
    return f"{stats.significant_figures(ms)} ms" if ms < 1000 else \
        f"{stats.significant_figures(ms / 1e3)} s"


def mode_rows(cells: pd.DataFrame, ratios: list[Ratio]) -> list[str]:
    """Per parameter set, one line per mode: median, eager tax, ratio over torch, flag marks."""
    ok = _ok(cells)
    twins = graph_twins()
    found = {(r.workload, r.params, r.numerator, r.denominator): r for r in ratios}
    lines = [f"  {'mode':<15}{'median':>10}  {'eager tax (eager/graph)':<31}"
             f"{'vs torch':<20}flags"]
    for (workload, params), group in ok.groupby(["workload", "params"], sort=False):
        lines.append(_fit(f"{workload} {params}", 100))
        for _, row in group.iterrows():
            mode = row["mode"]
            tax = found.get((workload, params, mode, twins.get(mode, "")))
            versus = found.get((workload, params, mode, REFERENCE))
            marks = "".join(dict.fromkeys((tax.marks() if tax else "")
                                          + (versus.marks() if versus else "")))
            tax_text = f"{compact(tax)} over {tax.denominator}" if tax else ""
            lines.append(f"  {_fit(mode, 14):<15}{duration(row['median_ms']):>10}  "
                         f"{_fit(tax_text, 30):<31}{_fit(compact(versus), 19):<20}{marks}")
    return lines


def matrix_rows(cells: pd.DataFrame, ratios: list[Ratio]) -> list[str]:
    """The headline matrix, taxes only: one line per parameter set."""
    table = matrix(cells, ratios)
    columns = [c for c in table.columns[2:] if table[c].map(
        lambda r: r is not None and r.is_tax).any()]
    lines = [f"{'workload and parameters':<36}" + "".join(f"{_fit(c, 20):<21}" for c in columns)]
    for _, row in table.iterrows():
        taxed = [f"{compact(row[c])} {row[c].marks() if row[c] else ''}" for c in columns]
        lines.append(f"{_fit(row['workload'] + ' ' + row['params'], 35):<36}"
                     + "".join(f"{_fit(text, 20):<21}" for text in taxed))
    return lines


def terminal(cells: pd.DataFrame, all_rows: bool = False) -> str:
    """What ``eagerbench run``, ``show`` and ``report`` print: every mode's row for a small
    run (or with ``all_rows``), else the headline matrix; then the flags' letters."""
    ratios = taxes(cells)
    many = len(_ok(cells)) > MAX_MODE_ROWS and not all_rows
    lines = [line.rstrip() for line in (matrix_rows(cells, ratios) if many
                                        else mode_rows(cells, ratios))]
    lines.append("")
    lines.append("eager tax = eager time / graph-mode time (2x: the graph mode is twice as "
                 "fast); +-: 95% interval")
    lines.append("flags: " + ", ".join(f"{m} {name}" for name, m in MARKS.items()))
    if many:
        lines.append(f"{len(_ok(cells))} rows in all: `eagerbench show RUN --all` prints one "
                     "per mode")
    return "\n".join(lines)
