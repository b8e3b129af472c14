"""The run's tidy tables as files: ``cells.csv`` (one line per cell, written from the typed rows
and read back into them) and ``iterations.csv`` (one line per sample). Their columns are
described in ``docs/results-format.md``; nothing else knows them."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eagerbench.records.model import Record
from eagerbench.report import stats
from eagerbench.report.cellstats import params_label
from eagerbench.report.rows import RATIOS, CellRow
from eagerbench.report.stats import Ratio

CELLS = "cells.csv"
ITERATIONS = "iterations.csv"
CELL_KEYS = ["workload", "params", "mode"]
# cells.csv's columns of a measured cell after its identity and before its rates, in order
_MEASURED = ("status", "reason", "processes", "n", "q1_ms", "q3_ms", "iqr_ms", "min_ms",
             "max_ms", "p95_ms", "mean_ms", "std_ms", "spikes", "median_ms", "latency_ms",
             "process_spread", "block_calls", "calls_timed", "first_call_ms", "compile_ms",
             "compile_note", "compile_events", "compile_events_s", "setup_s", "gc_iters",
             "floor_us", "traces_during_timing", "compiles_during_timing", "donation_copied",
             "donation_copied_bytes", "host_reads_per_call", "threads_applied", "device_name",
             "allocator", "stopped", "bimodal", "shown")
_RATES = ("gflops", "gbps", "us_per_op", "limit_share", "limit", "invalid",
          "agreement_rel_diff", "agreement_rtol", "random_step")
_RATIO_PARTS = ("", "_lo", "_hi", "_half_width", "_significant", "_df", "_disagreement_p")


def _identity(row: CellRow) -> dict:
    return {"workload": row.workload, "params": row.params, "mode": row.mode,
            **{f"p_{k}": v for k, v in row.param_values.items()},
            "device": row.device, "dtype": row.dtype, "threads": row.threads,
            "repeats": row.repeats, "framework": row.framework, "eager_twin": row.eager_twin,
            "compiled": row.compiled, "interleaved": row.interleaved}


def _line(row: CellRow) -> dict:
    """A row as cells.csv has it, before its ratios: a cell that no process measured has its
    identity, status and reason only."""
    out = _identity(row)
    if not row.ok:
        return {**out, "status": row.status, "reason": row.reason}
    for name in _MEASURED:
        value = getattr(row, name)
        if name == "threads_applied":
            value = json.dumps(value)
        elif name == "allocator":
            value = json.dumps(value, sort_keys=True)
        elif name == "shown":
            value = ",".join(value)
        out[name] = value
    out.update(row.shown_values)
    out.update({name: getattr(row, name) for name in _RATES})
    return out


def _ratio_columns(ratio: Ratio | None) -> list:
    if ratio is None:
        return [np.nan, np.nan, np.nan, np.nan, False, np.nan, np.nan]
    return [ratio.value, ratio.lo, ratio.hi, ratio.half_width, ratio.significant, ratio.df,
            ratio.disagreement_p]


def cells_frame(rows: list[CellRow]) -> pd.DataFrame:
    """The rows as cells.csv's table (also what a workload's declared figures draw from, by
    the column names they declare)."""
    df = pd.DataFrame([_line(row) for row in rows])
    if df.empty:
        return df
    for name in RATIOS:
        parts = list(zip(*[_ratio_columns(row.ratio(name)) for row in rows]))
        for suffix, column in zip(_RATIO_PARTS, parts):
            df[f"{name}{suffix}"] = list(column)
    df["allocation_share"] = [row.allocation_share for row in rows]
    df["flags"] = [", ".join(row.flags) for row in rows]
    return df


def write_cells(rows: list[CellRow], folder: Path) -> None:
    cells_frame(rows).to_csv(Path(folder) / CELLS, index=False)


# --- reading cells.csv back --------------------------------------------------------------------

def _number(text: str) -> float:
    return float(text) if text != "" else math.nan


def _whole(text: str, default: int = 0) -> int:
    return int(float(text)) if text not in ("", "nan") else default


def _param(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _ratio(line: dict, name: str) -> Ratio | None:
    value = _number(line.get(name, ""))
    if not np.isfinite(value):
        return None
    return Ratio(value, _number(line.get(f"{name}_lo", "")), _number(line.get(f"{name}_hi", "")),
                 df=_number(line.get(f"{name}_df", "")),
                 disagreement_p=_number(line.get(f"{name}_disagreement_p", "")))


_TYPES = {f.name: f.type for f in dataclasses.fields(CellRow)}


def _field(name: str, text: str) -> Any:
    kind = _TYPES[name]
    if kind == "float":
        return _number(text)
    if kind == "int":
        return _whole(text, 1 if name == "block_calls" else 0)
    if kind == "bool":
        return text == "True"
    if kind == "dict":
        return json.loads(text) if text else {}
    return text


def row_of(line: dict) -> CellRow:
    """A cells.csv line (every value as its text) as the typed row it was written from."""
    names = [n for n in line if n.startswith("p_") and line[n] != ""]
    shown = tuple(s for s in line.get("shown", "").split(",") if s)
    fixed = {"workload", "params", "mode", "param_values", "shown", "shown_values",
             "slowdown", "vs_eager", "flags"}
    values = {name: _field(name, line[name]) for name in _TYPES
              if name not in fixed and name in line}
    return CellRow(workload=line["workload"], params=line["params"], mode=line["mode"],
                   param_values={n[2:]: _param(line[n]) for n in names},
                   shown=shown, shown_values={s: line[s] for s in shown if line.get(s)},
                   slowdown=_ratio(line, "slowdown"), vs_eager=_ratio(line, "vs_eager"),
                   flags=tuple(f for f in line.get("flags", "").split(", ") if f), **values)


def read_cells(path: Path | str) -> list[CellRow]:
    """A stored ``cells.csv`` as typed rows."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [row_of(line) for line in table.to_dict("records")]


# --- iterations.csv ----------------------------------------------------------------------------

def iterations_table(records: list[Record]) -> pd.DataFrame:
    """One row per sample (warm-up calls and timed samples) of every successful cell."""
    rows = []
    for rec in records:
        cell, res = rec.spec, rec.result
        if not res.ok or rec.facts is None:
            continue
        base = {"workload": cell.workload, "params": params_label(cell.params),
                **{f"p_{k}": v for k, v in cell.params.items()},
                "mode": rec.facts.label, "device": cell.device, "dtype": cell.dtype,
                "threads": cell.threads, "repeat": cell.repeat}
        n = 0
        for phase in ("warmup", "timed"):
            for sample in getattr(res, phase):
                n += sample.calls
                rows.append({**base, "phase": phase, "iteration": sample.step or n,
                             "calls": sample.calls, "ms": sample.ms_per_call,
                             "gc_collections": sample.gc_collections,
                             "gc_ms": sample.gc_ns / 1e6, **sample.observed})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    timed = df["phase"] == "timed"
    med = df[timed].groupby(CELL_KEYS + ["repeat"])["ms"].transform("median")
    df["spike"] = False
    df.loc[timed, "spike"] = df.loc[timed, "ms"] > stats.SPIKE_FACTOR * med
    return df


def write_iterations(records: list[Record], folder: Path) -> pd.DataFrame:
    iters = iterations_table(records)
    iters.to_csv(Path(folder) / ITERATIONS, index=False)
    return iters
