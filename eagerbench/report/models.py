"""The model suite's answer (``--grid models``): per model, step and batch, each compiled mode's
eager tax with its interval, its compile cost and break-even, the memory each mode's step
takes, graph breaks and agreement; the geometric mean per framework and step kind, as
PyTorch's dynamo dashboard gives it; and Keras's same models across its three backends.
Everything comes from the typed rows (``CellRow``, ``WhyRow``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from eagerbench.report import answer
from eagerbench.report.explain import WhyRow
from eagerbench.report.figures.headline import break_even_table
from eagerbench.report.rows import CellRow
from workloads import all_workloads

SUITE = "models"
KERAS_PREFIX = "keras-"


def is_model_run(rows: list[CellRow]) -> bool:
    """Whether a run measured the model suite's workloads only."""
    known = all_workloads()
    names = {r.workload for r in rows}
    return bool(names) and all(n in known and known[n].suite == SUITE for n in names)


@dataclass(frozen=True)
class ModelTax:
    """One compiled mode of one model cell against its eager twin."""

    workload: str
    step: str
    batch: int
    framework: str
    eager: CellRow
    compiled: CellRow
    tax: answer.ModeRatio
    compile_s: float           # the compiled mode's compile cost (its warm-up over its steady
                               # state, in a first process)
    break_even: float          # calls until it pays back (inf: never; NaN: not measured)
    eager_mib: float           # what one step allocates on top of what is held
    compiled_mib: float
    graph_breaks: float

    @property
    def library(self) -> str:
        """Keras 3, or the framework's own model library (the suite's native models)."""
        if self.workload.startswith(KERAS_PREFIX):
            return "Keras 3"
        return {"torch": "PyTorch", "jax": "Flax NNX"}.get(self.framework, self.framework)

    @property
    def model(self) -> str:
        return self.workload.removeprefix(KERAS_PREFIX)

    @property
    def memory_ratio(self) -> float:
        """Eager's step memory over the compiled mode's (the dashboard's compression ratio)."""
        if self.compiled_mib > 0 and np.isfinite(self.eager_mib):
            return self.eager_mib / self.compiled_mib
        return math.nan


def model_taxes(rows: list[CellRow], why: list[WhyRow]) -> list[ModelTax]:
    """Every compiled model cell with its eager twin measured."""
    by_key = {r.key: r for r in rows if r.ok}
    ratios = {(r.workload, r.params, r.numerator, r.denominator): r
              for r in answer.taxes(rows)}
    memory = {(w.workload, w.params, w.mode): w for w in why}
    even = break_even_table(rows)
    found = {(w, p, m): (float(c), float(n)) for w, p, m, c, n in zip(
        even.get("workload", []), even.get("params", []), even.get("mode", []),
        even.get("compile_ms", []), even.get("break_even_calls", []))}
    out = []
    for key, row in by_key.items():
        eager = by_key.get((row.workload, row.params, row.eager_twin))
        tax = ratios.get((row.workload, row.params, row.eager_twin, row.mode))
        if not row.compiled or eager is None or tax is None:
            continue
        _, calls = found.get(key, (math.nan, math.nan))
        mem_e, mem_c = memory.get(eager.key), memory.get(key)
        out.append(ModelTax(
            row.workload, str(row.param_values.get("step", "")),
            int(row.param_values.get("batch", 0) or 0), row.framework, eager, row, tax,
            compile_s=row.compile_ms / 1e3, break_even=calls,
            eager_mib=mem_e.step_transient_mib if mem_e else math.nan,
            compiled_mib=mem_c.step_transient_mib if mem_c else math.nan,
            graph_breaks=mem_c.graph_breaks if mem_c else math.nan))
    return out


@dataclass(frozen=True)
class Geomean:
    """A compiled mode's eager tax over a step kind's cells, geometrically averaged."""

    library: str
    mode: str
    step: str
    value: float
    cells: int
    low: ModelTax
    high: ModelTax


def geomeans(taxes: list[ModelTax]) -> list[Geomean]:
    """Per library (native or Keras), compiled mode and step kind: the geometric mean of the
    tax over the models and batches, with its lowest and highest cell."""
    out = []
    groups: dict[tuple[str, str, str], list[ModelTax]] = {}
    for t in taxes:
        groups.setdefault((t.library, t.compiled.mode, t.step), []).append(t)
    for (library, mode, step), mine in groups.items():
        values = np.array([t.tax.value for t in mine])
        out.append(Geomean(library, mode, step, float(np.exp(np.log(values).mean())),
                           len(mine), mine[int(values.argmin())], mine[int(values.argmax())]))
    return out


def keras_matrix(taxes: list[ModelTax]) -> list[dict]:
    """Keras's models across its backends: a row per model, step and batch, a column per
    compiled mode (its tax over the backend's eager mode)."""
    mine = [t for t in taxes if t.library == "Keras 3"]
    rows: dict[tuple, dict] = {}
    for t in mine:
        row = rows.setdefault((t.model, t.step, t.batch),
                              {"model": t.model, "step": t.step, "batch": t.batch})
        row[t.compiled.mode] = t
    return list(rows.values())


def worst_agreement(taxes: list[ModelTax]) -> Optional[ModelTax]:
    """The compiled cell furthest from its eager twin after the warm-up."""
    compared = [t for t in taxes if np.isfinite(t.compiled.agreement_rel_diff)]
    return max(compared, key=lambda t: t.compiled.agreement_rel_diff, default=None)
