"""README.md of a model-suite run (``make models`` -> ``results/models/``): the geometric means,
one table of every model cell, Keras across its backends, and the plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from eagerbench.report import answer, models
from eagerbench.report import format as fmt
from eagerbench.report.cell_table import agreement_text
from eagerbench.report.explain import WhyRow
from eagerbench.report.rows import CellRow

NOT_MEASURED = "n/m"


def _calls(n: float) -> str:
    if not np.isfinite(n):
        return "never" if n == math.inf else NOT_MEASURED
    return fmt.size(max(n, 1.0))


def _mib(value: float) -> str:
    return f"{value:.3g} MiB" if np.isfinite(value) else NOT_MEASURED


def _ratio(value: float) -> str:
    return fmt.times(value) if np.isfinite(value) else NOT_MEASURED


def main_table(taxes: list[models.ModelTax]) -> pd.DataFrame:
    """Every compiled model cell: its eager twin's time and its own, the tax, compile cost,
    break-even, step memory of each and their ratio, graph breaks, agreement."""
    return pd.DataFrame([{
        "model": t.model, "library": t.library, "step": t.step, "batch": t.batch,
        "eager": f"{t.eager.mode} {fmt.duration(t.eager.median_ms)}",
        "compiled": f"{t.compiled.mode} {fmt.duration(t.compiled.median_ms)}",
        "eager tax": answer.cell_text(t.tax),
        "compile": f"{t.compile_s:.3g} s" if np.isfinite(t.compile_s) else NOT_MEASURED,
        "break-even": _calls(t.break_even),
        "step memory (eager / compiled)": f"{_mib(t.eager_mib)} / {_mib(t.compiled_mib)}",
        "memory ratio": _ratio(t.memory_ratio),
        "graph breaks": (f"{t.graph_breaks:.0f}" if np.isfinite(t.graph_breaks) else ""),
        "agrees": agreement_text(t.compiled)} for t in taxes])


def geomean_lines(found: list[models.Geomean]) -> list[str]:
    return [f"**{g.mode}** ({g.library}, {g.step}): {fmt.significant(g.value)}x, the geometric "
            f"mean over {g.cells} cells, from {g.low.tax.text(False)} ({g.low.model}, batch "
            f"{g.low.batch}) to {g.high.tax.text(False)} ({g.high.model}, batch "
            f"{g.high.batch})." for g in found]


def keras_table(taxes: list[models.ModelTax]) -> pd.DataFrame:
    rows = models.keras_matrix(taxes)
    modes = list(dict.fromkeys(m for row in rows for m in row
                               if m not in ("model", "step", "batch")))
    eager = {m: row[m].eager.mode for row in rows for m in modes if m in row}
    return pd.DataFrame([{"model": row["model"], "step": row["step"], "batch": row["batch"],
                          **{f"{eager[m]} / {m}": answer.cell_text(row[m].tax) if m in row
                             else "" for m in modes}} for row in rows])


CHECK = "timeit_check.md"   # written beside the page by scripts/models_timeit.py


def page(rows: list[CellRow], why: list[WhyRow], header: str, figures: list[Path],
         folder: Path | None = None) -> str:
    taxes = models.model_taxes(rows, why)
    parts = ["# The eager tax of real models", "", header, "",
             "Each model built from its library's constructor with random weights (nothing "
             "downloaded), dropout off so that every mode computes the same step: a training "
             "step (forward, loss, backward, optimizer update) and an inference step, at a "
             "batch where dispatch matters on this machine and one where compute does. The "
             "**eager tax** is the eager mode's time over the compiled mode's, measured in the "
             "same processes, with its 95% interval over processes; **compile** the "
             "compiled mode's warm-up time over its steady state in a process that compiled "
             "cold, **break-even** the calls until what it costs beyond the eager twin's own "
             "warm-up is paid back (eager JAX compiles each primitive at its first use, so a "
             "jit's net cost can be nothing); **step memory** what one step allocates on top of "
             "what the process holds (its resident high-water mark during the step), and "
             "**memory ratio** eager's over the compiled mode's (the dynamo dashboard's "
             "compression ratio); **agrees** the largest relative difference from the eager "
             "twin: of the loss after the first update and of the whole state's norm after the "
             "warm-up, or of the output (tolerance 1e-3 in float32).", ""]
    means = models.geomeans(taxes)
    if means:
        parts += ["## The geometric means", ""] + [f"- {line}" for line in
                                                  geomean_lines(means)] + [""]
    for figure in figures:
        parts += [f"![the eager tax per model]({figure.name})", ""]
    if taxes:
        parts += ["## Every model", "", "Marks: " + ", ".join(
            f"({m}) {name}" for name, m in answer.MARKS.items()) + ".", "",
            main_table(taxes).to_markdown(index=False), ""]
    keras = keras_table(taxes)
    if not keras.empty:
        parts += ["## Keras 3 across its backends", "",
                  "The same Keras model on JAX, TensorFlow and PyTorch, each eager "
                  "(`run_eagerly=True`) and compiled by Keras's own switch (`jit_compile`, or "
                  "a `tf.function` for tf-graph).", "", keras.to_markdown(index=False), ""]
    failed = [f"{r.workload} {r.params} [{r.mode}]: {r.reason}" for r in rows
              if r.status == "failed"]
    failed += [f"{r.workload} {r.params} [{r.mode}]: {r.repeats - r.processes} of {r.repeats} "
               f"processes failed (its reason is in `raw.jsonl`); measured in the rest"
               for r in rows if r.ok and r.processes < r.repeats]
    if failed:
        parts += ["## Failed", ""] + [f"- {line}" for line in failed] + [""]
    if folder is not None and (folder / CHECK).is_file():
        parts += ["## An independent check", "",
                  (folder / CHECK).read_text().split("\n", 1)[1].strip(), ""]
    parts += ["Every cell's figures: [workloads/](workloads/); how it was measured: "
              "[run.md](run.md).", ""]
    return "\n".join(parts)
