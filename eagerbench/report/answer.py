"""The run's answer in one direction: how many times slower each eager mode is than its graph
twin (the eager tax, eager / graph), and each mode against PyTorch eager, with intervals.

Everything here reads the typed rows (``rows.CellRow``, from a run or from its ``cells.csv``).
The page (``results/README.md``), the terminal table after ``eagerbench run`` and ``eagerbench
show`` all take their figures from ``taxes``; no figure is computed twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from eagerbench.frameworks.modes import all_modes
from eagerbench.report import flags
from eagerbench.report import format as fmt
from eagerbench.report.rows import CellRow
from workloads import all_workloads

REFERENCE = "torch"
MAX_HEADLINE_ROWS = 25
# One letter per flag, for tables too narrow for the words.
MARKS = {"imprecise": "i", "processes disagree": "d", "bimodal": "b", "allocation-bound": "a",
         "results disagree": "x"}


@dataclass(frozen=True)
class ModeRatio:
    """``numerator`` / ``denominator``: two modes of one cell, with the 95% interval of their
    ratio and the flags it is read with."""

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
        return fmt.ratio(self.value, self.lo, self.hi) if interval else fmt.times(self.value)

    def compact(self) -> str:
        """``1.80x +-13%``."""
        return fmt.compact_ratio(self.value, self.lo, self.hi)

    def marks(self) -> str:
        return "".join(MARKS[f] for f in self.flags if f in MARKS)


def headline_rows(rows: list[CellRow]) -> list[CellRow]:
    """The measured rows the answer reads: every mode without a setting changed."""
    return [r for r in rows if r.ok and not r.is_variant]


def compiled_modes() -> dict[str, list[str]]:
    """Each eager mode's compiled modes, in display order (tf-eager: tf-graph, tf-xla)."""
    out: dict[str, list[str]] = {}
    for mode in all_modes().values():
        if mode.compiled and mode.baseline:
            out.setdefault(mode.baseline, []).append(mode.name)
    return out


def taxes(rows: list[CellRow]) -> list[ModeRatio]:
    """Every eager tax (eager / each of its compiled modes: tf-eager over tf-graph and over
    tf-xla) and every mode over PyTorch eager in the run."""
    by_key = {r.key: r for r in headline_rows(rows)}
    out = []
    compiled = compiled_modes()
    for (workload, params, mode), row in by_key.items():
        for graph in compiled.get(mode, []):
            twin = by_key.get((workload, params, graph))
            if twin is None or twin.vs_eager is None:
                continue
            # the compiled row holds graph / eager; the tax is its inverse
            marks = tuple(dict.fromkeys(flags.ratio_flags(twin, "vs_eager")
                                        + flags.ratio_flags(row, "")))
            ratio = twin.vs_eager
            out.append(ModeRatio(workload, params, mode, twin.mode, 1 / ratio.value,
                                 1 / ratio.hi, 1 / ratio.lo, marks))
        if mode != REFERENCE and row.slowdown is not None:
            ratio = row.slowdown
            out.append(ModeRatio(workload, params, mode, REFERENCE, ratio.value, ratio.lo,
                                 ratio.hi, tuple(flags.ratio_flags(row, "slowdown"))))
    return out


def _in(value, allowed: tuple) -> bool:
    try:
        return any(np.isclose(float(value), float(a)) for a in allowed)
    except (TypeError, ValueError):
        return str(value) in {str(a) for a in allowed}


def _at_defaults(row: CellRow, spec) -> bool:
    """Whether a row's parameters are a known workload's default sweep (a parameter the row
    lacks, or chosen from the others, counts as default)."""
    for p in spec.params:
        value = row.param_values.get(p.name)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        if not (None in p.default or missing or _in(value, p.default)):
            return False
    return True


def headline_params(rows: list[CellRow]) -> list[tuple[str, str]]:
    """The (workload, params) rows of the headline: a known workload's default sweep (the
    article's sizes; the values run when none of them was), every parameter set of a user's
    workload; at most 25 rows."""
    known = all_workloads()
    first: dict[tuple[str, str], CellRow] = {}
    for row in headline_rows(rows):
        first.setdefault((row.workload, row.params), row)
    out: list[tuple[str, str]] = []
    for workload in dict.fromkeys(w for w, _ in first):
        sets = [(params, row) for (w, params), row in first.items() if w == workload]
        spec = known.get(workload)
        mine = [(workload, params) for params, row in sets
                if spec is None or _at_defaults(row, spec)]
        # a workload run at none of its default values (sizes the user chose) shows them all
        out += mine or [(workload, params) for params, _ in sets]
    return out[:MAX_HEADLINE_ROWS]


def _column_order(pair: tuple[str, str], order: list[str]) -> tuple:
    """Taxes first, then ratios over PyTorch eager; each in the modes' display order (by
    numerator, then denominator: tf-eager / tf-graph before tf-eager / tf-xla)."""
    numerator, denominator = pair

    def rank(mode: str) -> int:
        return order.index(mode) if mode in order else len(order)

    return (not (denominator != REFERENCE or numerator == REFERENCE), rank(numerator),
            numerator, rank(denominator), denominator)


def matrix(rows: list[CellRow], ratios: Optional[list[ModeRatio]] = None) -> pd.DataFrame:
    """The headline matrix: a row per headline (workload, params), a column per eager tax
    (``tf-eager / tf-graph``) and then per mode over PyTorch eager, each cell a ``ModeRatio``."""
    ratios = taxes(rows) if ratios is None else ratios
    found = {(r.workload, r.params, r.numerator, r.denominator): r for r in ratios}
    order = list(all_modes())
    columns = sorted({(r.numerator, r.denominator) for r in ratios},
                     key=lambda pair: _column_order(pair, order))
    return pd.DataFrame([{"workload": w, "params": p,
                          **{f"{n} / {d}": found.get((w, p, n, d)) for n, d in columns}}
                         for w, p in headline_params(rows)])


def cell_text(ratio: Optional[ModeRatio], interval: bool = True) -> str:
    if ratio is None:
        return ""
    marks = ratio.marks()
    return ratio.text(interval) + (f" ({marks})" if marks else "")


def framework_lines(ratios: list[ModeRatio], rows: list[tuple[str, str]]) -> list[str]:
    """Per eager mode: the geometric mean of its tax over the headline rows and its range.
    Allocation-bound cells are left out: their time moves with the machine's memory state."""
    lines = []
    wanted = set(rows)
    pairs = [(eager, graph) for eager, graphs in compiled_modes().items() for graph in graphs]
    for eager, twin in pairs:
        mine = [r for r in ratios if r.numerator == eager and r.denominator == twin
                and (r.workload, r.params) in wanted and "allocation-bound" not in r.flags]
        if not mine:
            continue
        values = np.array([r.value for r in mine])
        low, high = mine[int(values.argmin())], mine[int(values.argmax())]
        lines.append(
            f"**{eager}** is {fmt.significant(float(np.exp(np.log(values).mean())))}x "
            f"slower than {twin} (geometric mean over {len(mine)} cells), from "
            f"{low.text(False)} ({low.workload} {low.params}) to {high.text(False)} "
            f"({high.workload} {high.params}).")
    return lines


# --- the answer in a terminal (<= 100 columns) -------------------------------------------------

MAX_MODE_ROWS = 60      # past this many rows, the terminal shows the headline matrix instead


def compact(ratio: Optional[ModeRatio]) -> str:
    """``1.80x +-13%``: the ratio and its interval's half-width on the log scale."""
    return ratio.compact() if ratio is not None else ""


def mode_rows(rows: list[CellRow], ratios: list[ModeRatio]) -> list[str]:
    """Per parameter set, one line per mode: median, the eager tax on each compiled mode's line
    (its eager mode's time over its own), ratio over torch, flag marks. Columns are as wide as
    their widest entry: nothing is cut."""
    baseline = {mode.name: mode.baseline for mode in all_modes().values() if mode.compiled}
    found = {(r.workload, r.params, r.numerator, r.denominator): r for r in ratios}
    ok = headline_rows(rows)
    table: list[tuple] = []   # a parameter set's heading, or a mode's cells
    for workload, params in dict.fromkeys((r.workload, r.params) for r in ok):
        table.append((f"{workload} {params}",))
        for row in [r for r in ok if (r.workload, r.params) == (workload, params)]:
            tax = found.get((workload, params, baseline.get(row.mode, ""), row.mode))
            versus = found.get((workload, params, row.mode, REFERENCE))
            marks = "".join(dict.fromkeys((tax.marks() if tax else "")
                                          + (versus.marks() if versus else "")))
            tax_text = f"{compact(tax)} ({tax.numerator} / {row.mode})" if tax else ""
            table.append((row.mode, fmt.duration(row.median_ms), tax_text, compact(versus),
                          marks))
    header = ("mode", "median", "eager tax (eager/graph)", "vs torch", "flags")
    cells = [header] + [line for line in table if len(line) > 1]
    width = [max(len(line[i]) for line in cells) for i in range(4)]

    def line(cols: tuple) -> str:
        return (f"  {cols[0]:<{width[0]}}  {cols[1]:>{width[1]}}  {cols[2]:<{width[2]}}  "
                f"{cols[3]:<{width[3]}}  {cols[4]}")

    return [line(header)] + [line(t) if len(t) > 1 else t[0] for t in table]


def matrix_rows(rows: list[CellRow], ratios: list[ModeRatio]) -> list[str]:
    """The headline matrix, taxes only: one line per parameter set."""
    table = matrix(rows, ratios)
    columns = [c for c in table.columns[2:] if table[c].map(
        lambda r: r is not None and r.is_tax).any()]
    body = [[f"{line['workload']} {line['params']}"]
            + [f"{compact(line[c])} {line[c].marks() if line[c] else ''}".rstrip()
               for c in columns] for _, line in table.iterrows()]
    cells = [["workload and parameters", *columns]] + body
    width = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return ["  ".join(f"{text:<{w}}" for text, w in zip(row, width)) for row in cells]


def terminal(rows: list[CellRow], all_rows: bool = False) -> str:
    """What ``eagerbench run``, ``show`` and ``report`` print: every mode's row for a small
    run (or with ``all_rows``), else the headline matrix; then the flags' letters."""
    ratios = taxes(rows)
    shown = len(headline_rows(rows))
    many = shown > MAX_MODE_ROWS and not all_rows
    lines = [line.rstrip() for line in (matrix_rows(rows, ratios) if many
                                        else mode_rows(rows, ratios))]
    lines.append("")
    lines.append("eager tax = eager time / graph-mode time (2x: the graph mode is twice as "
                 "fast); +-: 95% interval")
    lines.append("flags: " + ", ".join(f"{m} {name}" for name, m in MARKS.items()))
    if many:
        lines.append(f"{shown} rows in all: `eagerbench show RUN --all` prints one per mode")
    return "\n".join(lines)
