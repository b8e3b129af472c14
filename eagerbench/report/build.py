"""Writes a run's tables, plots and README.md into its output folder (and rebuilds them later)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from typing import Optional

import pandas as pd

from eagerbench.report import explain, flags, releases, tables
from eagerbench.frameworks import facts
from eagerbench.report.pages import front as pages, run as runpage
from eagerbench.report.figures import headline as plots, declared as views
from eagerbench.records import host as hosts, runfile
from eagerbench.records.model import Record

ENV = "env.json"


def suite_figures(records: list[Record], cells: pd.DataFrame, env: dict,
                  verify_wall_s: float | None) -> dict:
    """How the run spent its time, and how many rows carry a flag."""
    walls, timed, phases, prepared = {}, 0, {}, {}
    for rec in records:
        res = rec.result
        state = rec.spec.prepared or {}
        if not state.get("cached") and state.get("seconds") is not None:
            prepared[state["path"]] = state["seconds"]
        key = (res.process_id(), res.process.get("position"),
               json.dumps(rec.spec.interleaved or rec.spec.params), rec.spec.mode,
               rec.spec.repeat)
        walls[key] = res.wall_s or 0.0   # interleaved values share their cell's wall
        timed += sum(s.ns for s in res.timed) + sum(res.latency_ns)
        # the cells of a unit share one phase clock
        phases[(res.process_id(), json.dumps(rec.spec.interleaved or rec.spec.params),
                rec.spec.repeat)] = res.phases_s or {}
    ok = cells[cells["status"] == "ok"] if "status" in cells else cells
    flagged = flags.flagged(cells) if len(ok) else pd.Series(dtype=bool)
    cell_wall = sum(walls.values())
    run_wall = env.get("run_wall_s")
    phase_s: dict = {}
    for unit in phases.values():
        for phase, seconds in unit.items():
            phase_s[phase] = phase_s.get(phase, 0.0) + seconds
    return {"run_wall_s": run_wall, "verify_wall_s": verify_wall_s,
            "suite_wall_s": (run_wall or 0) + (verify_wall_s or 0) if run_wall else None,
            "cell_wall_s": cell_wall, "timed_s": timed / 1e9,
            "prepare_s": sum(prepared.values()),
            "timed_share": timed / 1e9 / cell_wall if cell_wall else float("nan"),
            "phases_s": phase_s,
            "rows": int(len(ok)), "flagged_rows": int(flagged.sum()),
            "flag_counts": {name: int(sum(name in f.split(", ") for f in
                                          ok.get("flags", pd.Series(dtype=str)).fillna("")))
                            for name in flags.MEANINGS},
            "host_noisy": flags.host_noisy(env),
            "processes_per_cell": int(ok["processes"].median()) if len(ok) else 0,
            "median_half_width": float(ok.loc[ok["eager_twin"].fillna("").ne(""),
                                              "vs_eager_half_width"].median())
            if len(ok) and "vs_eager_half_width" in ok else float("nan"),
            # the host's own spread at the run's start and end
            "machine_iqr": {when: probe["iqr_share"]
                            for when, probe in (env.get("contention") or {}).items()
                            if probe.get("iqr_share") is not None},
            "processes": len({r.result.process_id() for r in records})}


def build(run_dir: Path, out: Optional[Path] = None) -> pd.DataFrame:
    """(Re)build everything derived from ``run_dir/raw.jsonl`` into ``out`` (by default the
    run's own folder); returns the summary table.

    A run whose cells ran on several host types (a cluster's nodes) gets one report per host
    type in ``hosts/<n>/``, each with its own limits: a ratio is only ever taken between cells
    measured on one host type. The folder's README then links them."""
    run = facts.open_run(Path(run_dir))
    out_dir = Path(out or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _carry_inputs(Path(run_dir), out_dir)
    env = {k: v for k, v in run.env().items() if k != "plan"}
    env["schema"], env["finished"] = run.header.schema, run.finished
    hosts = run.hosts()
    if len(hosts) <= 1:
        host = hosts[0] if hosts else None
        return _write(out_dir, host.records if host else run.latest(),
                      _host_env(env, host) if host else {**env, "host": run.header.host})
    summaries, sections = [], []
    for number, host in enumerate(hosts, 1):
        folder = out_dir / "hosts" / str(number)
        folder.mkdir(parents=True, exist_ok=True)
        summary = _write(folder, host.records, _host_env(env, host))
        summaries.append(summary.assign(host=number))
        sections += [f"## Host {number}: {hosts.label(host.host)}", "",
                     f"{len(host.records)} records; the full report, tables and plots in "
                     f"[`hosts/{number}/`](hosts/{number}/README.md).", "",
                     summary.to_markdown(index=False), ""]
    (out_dir / ENV).write_text(json.dumps(env, indent=2) + "\n")
    (out_dir / "README.md").write_text("\n".join(
        ["# eagerbench results", "",
         "Generated by `eagerbench report` from `raw.jsonl`; do not edit by hand.", "",
         f"This run's cells ran on {len(hosts)} host types (CPU model, GPU model and driver). "
         "Each has its own report: ratios and shares of the measured limits are taken within "
         "one host type only.", ""] + sections))
    return pd.concat(summaries, ignore_index=True)


# What a run folder holds beside raw.jsonl that its pages read: the verify run
# (``eagerbench verify --out``) and the releases' timeit check (``make releases``).
PAGE_INPUTS = ("verify.json", "timeit_check.md")


def _carry_inputs(run_dir: Path, out_dir: Path) -> None:
    """A report written elsewhere (``--out``) reads what the run's folder holds beside its
    records as a report in place does: copied, so that its pages link what they show."""
    if run_dir.resolve() == out_dir.resolve():
        return
    for name in PAGE_INPUTS:
        if (run_dir / name).is_file():
            shutil.copy(run_dir / name, out_dir / name)


def _host_env(env: dict, host) -> dict:
    """The run's environment as one host type's report reads it: its own fingerprint and
    limits (a cluster run's header describes the submitting machine)."""
    out = {**env, "host": host.host}
    if host.limits is not None or env.get("hosts"):
        out["limits"] = host.limits
    if host.records and host.records[0].result.process.get("host"):
        out.update({"cpu": host.host.get("cpu"), "cpu_count": host.host.get("cores"),
                    "memory_gib": host.host.get("memory_gib"),
                    "gpus": [{"name": g.get("name"), "driver_version": g.get("driver")}
                             for g in host.host.get("gpus") or []]})
    return out


def _write(out_dir: Path, records: list[Record], env: dict) -> pd.DataFrame:
    """Tables, plots and pages of one host type's records into ``out_dir``."""
    iters = tables.iterations_table(records)
    cells, why_table = marked_cells(records, env.get("limits"))
    env = {**env, "data_source": sorted({r.result.data_source for r in records
                                         if r.result.data_source})}
    jobs = [r.result.process["slurm"] for r in records if r.result.process.get("slurm")]
    if jobs:
        env["slurm"] = {"jobs": sorted({j["job_id"] for j in jobs}),
                        "nodes": sorted({j["node"] for j in jobs})}
    (out_dir / ENV).write_text(json.dumps(env, indent=2) + "\n")
    iters.to_csv(out_dir / "iterations.csv", index=False)
    cells.to_csv(out_dir / "cells.csv", index=False)
    if why_table is not None and len(why_table):
        why_table.to_csv(out_dir / "why.csv", index=False)
    summary = tables.summary_table(cells)
    from eagerbench.report.pages import verify

    suite = suite_figures(records, cells, env, verify.wall_s(out_dir))
    _write_pages(out_dir, records, cells, iters, why_table, summary, env, suite,
                 verify.markdown(out_dir))
    return summary


def marked_cells(records: list[Record], limits: dict | None):
    """The cells table with each row's flags, and the why table behind them."""
    cells = tables.cells_table(records, limits)
    why_table = explain.why_table(records, cells, limits) if "status" in cells else None
    return flags.mark(cells, why_table), why_table


def _write_pages(out_dir: Path, records: list[Record], cells: pd.DataFrame,
                 iters: pd.DataFrame, why_table, summary: pd.DataFrame, env: dict,
                 suite: dict, verified: str | None) -> None:
    """README.md (the answer), run.md (how it was measured), workloads/<name>.md (the rest),
    and the plots they show."""
    figures = plots.all_plots(cells, iters, out_dir)
    declared = views.declared(records)
    measured = "status" in cells and (cells["status"] == "ok").any()
    crossings = views.crossover_tables(declared, cells) if measured else []
    workload_tables = views.tables(declared, cells, iters) if measured else []
    if env.get("environments"):   # a run across releases (--env) answers by release
        figures += releases.plot(releases.taxes(cells, env), out_dir)
        front = releases.page(cells, env, runpage.machine_line(env, suite), figures, out_dir)
    else:
        front = pages.front_page(cells, env, suite, crossings, figures)
    (out_dir / "README.md").write_text(front)
    (out_dir / "run.md").write_text(runpage.page(env, cells, suite, verified))
    folder = out_dir / pages.WORKLOADS
    folder.mkdir(exist_ok=True)
    for workload in dict.fromkeys(cells.get("workload", [])):
        drawn = (views.figures({workload: declared[workload]}, cells, iters, out_dir)
                 if measured and workload in declared else [])
        (folder / f"{workload}.md").write_text(pages.workload_page(
            workload, summary, cells, why_table, crossings, workload_tables, drawn, out_dir))
