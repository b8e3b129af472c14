"""Writes a run's tables, plots and README.md into its output folder (and rebuilds them later)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from eagerbench import article, plots, results, tables, views
from eagerbench.results import Record

ENV = "env.json"


def suite_figures(records: list[Record], cells: pd.DataFrame, env: dict,
                  verify_wall_s: float | None) -> dict:
    """How the run spent its time, and how many rows carry a noise warning."""
    walls, timed = {}, 0
    for rec in records:
        res = rec.result
        key = (res.process_id(), res.process.get("position"),
               json.dumps(rec.spec.interleaved or rec.spec.params), rec.spec.mode,
               rec.spec.repeat)
        walls[key] = res.wall_s or 0.0   # interleaved values share their cell's wall
        timed += sum(s.ns for s in res.timed) + sum(res.latency_ns)
    ok = cells[cells["status"] == "ok"] if "status" in cells else cells
    flagged = ok["warnings"].fillna("").ne("") | ok["bimodal"].fillna("").ne("") \
        if len(ok) else pd.Series(dtype=bool)
    cell_wall = sum(walls.values())
    run_wall = env.get("run_wall_s")
    return {"run_wall_s": run_wall, "verify_wall_s": verify_wall_s,
            "suite_wall_s": (run_wall or 0) + (verify_wall_s or 0) if run_wall else None,
            "cell_wall_s": cell_wall, "timed_s": timed / 1e9,
            "timed_share": timed / 1e9 / cell_wall if cell_wall else float("nan"),
            "rows": int(len(ok)), "noisy_rows": int(flagged.sum()),
            "processes": len({r.result.process_id() for r in records})}


def build(out_dir: Path) -> pd.DataFrame:
    """(Re)build everything derived from ``out_dir/raw.jsonl``; returns the summary table."""
    out_dir = Path(out_dir)
    run = results.load(out_dir)
    records = run.latest()
    env = {k: v for k, v in run.env().items() if k != "plan"}
    iters = tables.iterations_table(records)
    cells = tables.cells_table(records, env.get("limits"))
    env["data_source"] = sorted({r.result.data_source for r in records if r.result.data_source})
    env["schema"], env["host"] = run.header.schema, run.header.host
    env["finished"] = run.finished
    (out_dir / ENV).write_text(json.dumps(env, indent=2) + "\n")
    iters.to_csv(out_dir / "iterations.csv", index=False)
    cells.to_csv(out_dir / "cells.csv", index=False)
    summary = tables.summary_table(cells)
    figures = plots.all_plots(cells, iters, out_dir)
    declared = views.declared(records)
    workload_tables, crossings = [], []
    if "status" in cells and (cells["status"] == "ok").any():
        figures += views.figures(declared, cells, iters, out_dir)
        workload_tables = views.tables(declared, cells, iters)
        crossings = views.crossover_tables(declared, cells)
    from eagerbench import verify

    suite = suite_figures(records, cells, env, verify.wall_s(out_dir))
    (out_dir / "README.md").write_text(_markdown(summary, cells, env, figures,
                                                 verify.markdown(out_dir), workload_tables,
                                                 suite, crossings))
    return summary


def _machine(env: dict, cells: pd.DataFrame) -> str:
    if not env:
        return "unknown (no env.json)"
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    gpu = "; ".join(f"{g.get('name')} (driver {g.get('driver_version')}, SM clock "
                    f"{g.get('clocks.sm')} of max {g.get('clocks.max.sm')})"
                    for g in env.get("gpus", []))
    lines = [f"- measured {env.get('date')} at revision `{env.get('git_revision')}`",
             f"- CPU: {env.get('cpu')} ({env.get('cpu_count')} logical cores, "
             f"{env.get('memory_gib')} GiB memory), {env.get('platform')}",
             f"- device: {env.get('device')}" + (f" — {gpu}" if gpu else ""),
             f"- threads per framework: {env.get('threads')}; dtype {env.get('dtype')}; "
             f"garbage collector: {env.get('gc')}; seed {env.get('seed')}",
             f"- Python {env.get('python')}; {versions}"]
    lim = env.get("limits") or {}
    if lim.get("peak_gflops"):
        best = {d: max(lim["per_library"], key=lambda k: lim["per_library"][k]["matmul_gflops"][d])
                for d in ("float32", "float64")}
        when = ("best of the probes before and after the run (a cell beat the first)"
                if lim.get("probes") == 2 else "probed before the run")
        lines.append(
            f"- measured limits ({lim['device']}, {when}): matmul {lim['matmul_n']}^3 float32 "
            f"{lim['peak_gflops']['float32']:.0f} GFLOP/s ({best['float32']}), float64 "
            f"{lim['peak_gflops']['float64']:.0f} GFLOP/s ({best['float64']}); streaming "
            f"`b += a` bandwidth {lim['bandwidth_gbps'] or float('nan'):.1f} GB/s; largest cache "
            f"{(lim.get('llc_bytes') or 0) / 2**20:.0f} MiB")
    if "floor_us" in cells and cells["floor_us"].notna().any():
        floor = cells["floor_us"]
        lines.append(f"- wait floor per sample (the clock and each backend's wait on the cell's "
                     f"finished outputs, per cell in `cells.csv`): {floor.min():.2g} to "
                     f"{floor.max():.2g} us, median {floor.median():.2g} us")
    probe = env.get("contention") or {}
    if probe:
        from eagerbench.limits import slow_against

        fast = min(c["fast_unit_us"] for c in probe.values())
        parts = [f"{when}: {slow_against(c, fast):.0%} of 1 ms units at least 1.3x slower than "
                 f"the fastest tenth of both probes (median unit "
                 f"{c['percentiles_us'][50] / fast:.2f}x it)" if c.get("percentiles_us") else
                 f"{when}: {c['slow_share']:.0%} of units slow" for when, c in probe.items()]
        lines.append("- machine contention, a fixed pure-Python loop for 2 s at the run's start "
                     "and end: " + "; ".join(parts) + ". A quiet machine shows about 0% and "
                     "1.00x; a shared host slows every mode in spells, which intervals over "
                     "processes and interleaved modes absorb, but which widens spreads")
    alloc = env.get("allocator") or {}
    if alloc:
        lines.append(f"- allocator: `--allocator {env.get('allocator_choice', 'default')}`; "
                     f"transparent huge pages `{alloc.get('transparent_hugepages')}`; "
                     f"allocator variables {alloc.get('env') or 'none'}")
    for note in env.get("skipped", []) or []:
        lines.append(f"- {note}")
    for src in env.get("data_source", []) or []:
        lines.append(f"- lbfgs data: {src}")
    return "\n".join(lines)


def _suite(suite: dict) -> list[str]:
    lines = ["## This run", ""]
    if suite.get("suite_wall_s"):
        verify = (f" + verify {suite['verify_wall_s']:.0f} s" if suite.get("verify_wall_s")
                  else "")
        lines.append(f"- wall time: {suite['suite_wall_s'] / 60:.1f} min (run "
                     f"{suite['run_wall_s']:.0f} s{verify}), {suite['processes']} worker "
                     f"processes")
    if suite["cell_wall_s"]:
        lines.append(f"- {suite['timed_share']:.0%} of the workers' wall time was timed samples "
                     f"({suite['timed_s']:.0f} of {suite['cell_wall_s']:.0f} s; the rest is "
                     f"process start, framework import, building, warm-up and compiles)")
    if suite["rows"]:
        lines.append(f"- {suite['noisy_rows']} of {suite['rows']} rows "
                     f"({suite['noisy_rows'] / suite['rows']:.0%}) carry a noise warning "
                     f"(IQR over 10% of the median, a sample over 3x it, a 20% drift, or two "
                     f"modes within a process)")
    return lines + [""]


def _article(cells: pd.DataFrame, env: dict) -> list[str]:
    modes = list(dict.fromkeys(m for m in cells.get("mode", []) if " " not in m))
    table = article.table(cells, modes)
    if table.empty:
        return []
    device = env.get("device", "cpu")
    where = ("This run is on a CPU; the article measured on a GPU, so its ratios say what the "
             "eager tax was there, not what it should be here." if device == "cpu" else
             f"This run is on {', '.join(g.get('name', 'a GPU') for g in env.get('gpus', []))}; "
             "the article's GPU was from 2017.")
    return ["## The article beside today", "",
            "The 2017 article compared TensorFlow eager with PyTorch; each row is a case it "
            "measured, with its TF-eager/PyTorch time ratio, and today's time of every mode "
            "against PyTorch eager with its 95% interval. " + where, "",
            table.to_markdown(index=False), ""]


def _settings(cells: pd.DataFrame) -> list[str]:
    """Cells measured with a non-default setting, against the same cell without it."""
    if "mode" not in cells:
        return []
    tagged = cells[cells["mode"].str.contains(" ", regex=False) & (cells["status"] == "ok")]
    rows = []
    for _, r in tagged.iterrows():
        twin = r["eager_twin"]
        base = cells[(cells["workload"] == r["workload"]) & (cells["params"] == r["params"])
                     & (cells["mode"] == twin) & (cells["status"] == "ok")]
        rows.append({"cell": f"{r['workload']} {r['params']}", "setting": r["mode"],
                     "allocator env": r.get("allocator", ""),
                     "ms per call": f"{r['median_ms']:.4g}",
                     "against": twin,
                     "its ms": f"{base['median_ms'].iloc[0]:.4g}" if len(base) else "",
                     "ratio": tables.fmt_ratio(r["vs_eager"], r["vs_eager_lo"],
                                               r["vs_eager_hi"])})
    if not rows:
        return []
    return ["## Settings compared", "",
            "Cells measured again with one setting changed (`--allocator thp` sets "
            "`THP_MEM_ALLOC_ENABLE=1`: PyTorch's CPU allocator then asks the kernel for "
            "transparent huge pages, which cuts the page faults of fresh large tensors). A "
            "ratio well below 1 says that cell's time was spent allocating, not dispatching.",
            "", pd.DataFrame(rows).to_markdown(index=False), ""]


def _markdown(summary: pd.DataFrame, cells: pd.DataFrame, env: dict, figures,
              verified: str | None = None, workload_tables: list | None = None,
              suite: dict | None = None, crossings: list | None = None) -> str:
    failed = cells[cells["status"] != "ok"] if "status" in cells else cells.iloc[0:0]
    headline = [p for p in figures if p.name == "heatmap.png"]
    parts = ["# eagerbench results", "",
             "Generated by `eagerbench report` from `raw.jsonl`; do not edit by hand.", ""]
    if not env.get("finished", True):
        parts += ["**A partial run**: it was interrupted; `eagerbench run --resume` on its "
                  "folder measures the cells it did not reach.", ""]
    parts += _suite(suite) if suite else []
    parts += _article(cells, env)
    if headline:
        parts += ["## At a glance", "", f"![eager tax]({headline[0].name})", ""]
    parts += ["## Machine", "", _machine(env, cells), "",
              "## Summary", "",
              "`time per call` is the geometric mean over the cell's worker processes of each "
              "process's median time per call; steps under 1 ms are timed in blocks of `(xN)` "
              "calls with one wait at the end, and their `latency` (one call waited on, back to "
              "back) is timed apart. `vs torch` divides by PyTorch eager, `vs eager twin` by the "
              "same framework's eager mode (the eager tax); above 1x is slower. Intervals are "
              "95% t intervals over processes (see How it measures in the project README), "
              "blank with one process. `compile` is every warm-up call's time over the steady "
              "state: all compiles before timing.", "",
              summary.to_markdown(index=False), ""]
    parts += _settings(cells)
    be = plots.break_even_table(cells) if "status" in cells else None
    if be is not None and not be.empty:
        be = be.assign(break_even_calls=be["break_even_calls"].map(
            lambda n: "never" if n == float("inf") else f"{n:.0f}"))
        parts += ["## Compile cost and break-even", "",
                  "Compile cost of each compiled mode over its eager twin (all warm-up calls' "
                  "time over the steady state, so compiles in later warm-ups count), the time it "
                  "saves per call, and the calls needed to repay it.", "",
                  be.to_markdown(index=False, floatfmt=".4g"), ""]
    for workload, sweep, table in crossings or []:
        parts += [f"## {workload}: where dispatch stops mattering", "",
                  f"Per mode, the {sweep.x} at which {sweep.y} reaches twice its value at the "
                  f"smallest {sweep.x} (interpolated on log-log axes between measured values; "
                  f"blank: not reached).", "", table.to_markdown(index=False, floatfmt=".3g"),
                  ""]
    if workload_tables:
        parts += ["## Workloads' own tables", "",
                  "Tables each workload declares (see `eagerbench list`). The values of an "
                  "interleaved parameter (orders, squares, optimizers) ran round-robin in one "
                  "process per mode (`interleaved` in `cells.csv`). Their times are also in the "
                  "summary above, with ratios and intervals.", ""]
        for title, text, table in workload_tables:
            parts += [f"### {title}", "", text, "", table.to_markdown(index=False), ""]
    if verified:
        parts += [verified]
    if len(failed):
        parts += ["## Cells not measured", "",
                  *(f"- {r.workload} {r.params} [{r.mode}]: {r.status}: {r.reason}"
                    for r in failed.itertuples()), ""]
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})\n" for p in figures
                                 if p.name != "heatmap.png"]
    parts += ["## Files", "",
              "- `raw.jsonl`: one record per cell and process (spec and every sample), as "
              "measured",
              "- `iterations.csv`: one row per sample (warm-up calls and timed blocks), GC "
              "counts, loss",
              "- `cells.csv`: one row per cell: statistics, rates, ratios with intervals",
              "- `env.json`: versions, machine, settings (copied from `raw.jsonl`'s header and "
              "footer)", ""]
    return "\n".join(parts)
