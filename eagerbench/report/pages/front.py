"""The results pages: ``README.md``, one screen that answers (the eager tax per workload, what
it says, the article beside today, the flags), and ``workloads/<name>.md``, every table, plot
and decomposition of one workload. Both are generated from the stored records' tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from eagerbench.frameworks.modes import graph_twins
from eagerbench.report import answer, article, flags
from eagerbench.report import format as fmt
from eagerbench.report.accounting import RunAccount
from eagerbench.report.explain import WhyRow
from eagerbench.report.figures import headline as plots
from eagerbench.report.pages import run as runpage
from eagerbench.report.pages import why_section
from eagerbench.report.rows import CellRow

WORKLOADS = "workloads"     # the workload pages' folder, beside README.md


def workload_link(workload: str) -> str:
    return f"{WORKLOADS}/{workload}.md"


def markdown_table(df: pd.DataFrame) -> str:
    """A markdown table without column padding (the page's bytes go to its content)."""
    if df.empty:
        return ""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, rule] + rows)


def _article(rows: list[CellRow], env: dict) -> list[str]:
    modes = list(dict.fromkeys(r.mode for r in rows if not r.is_variant))
    table = article.table(rows, modes)
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
            markdown_table(table), ""]


def _settings(cells: list[CellRow]) -> list[str]:
    """Cells measured with a non-default setting, against the same cell without it."""
    ok = {r.key: r for r in cells if r.ok}
    rows = []
    for r in (r for r in cells if r.ok and r.is_variant):
        base = ok.get((r.workload, r.params, r.eager_twin))
        rows.append({"cell": f"{r.workload} {r.params}", "setting": r.mode,
                     "allocator env": json.dumps(r.allocator, sort_keys=True),
                     "ms per call": f"{r.median_ms:.4g}",
                     "against": r.eager_twin,
                     "its ms": f"{base.median_ms:.4g}" if base else "",
                     "ratio": fmt.ratio(r.vs_eager.value, r.vs_eager.lo, r.vs_eager.hi)
                     if r.vs_eager else ""})
    if not rows:
        return []
    return ["## Settings compared", "",
            "Cells measured again with one setting changed (`--allocator thp` sets "
            "`THP_MEM_ALLOC_ENABLE=1`: PyTorch's CPU allocator then asks the kernel for "
            "transparent huge pages, which cuts the page faults of fresh large tensors). A "
            "ratio well below 1 says that cell's time was spent allocating, not dispatching.",
            "", pd.DataFrame(rows).to_markdown(index=False), ""]


def _break_even(cells: list[CellRow]) -> list[str]:
    """The compile cost of each compiled mode over its twin, and the calls that repay it."""
    be = plots.break_even_table(cells)
    if be.empty:
        return []
    be = be.assign(break_even_calls=be["break_even_calls"].map(
        lambda n: "never" if n == float("inf") else "not measured" if n != n
        else "1" if n <= 1 else f"{n:.0f}"))   # repaid within the first call, not "0"
    return ["## Compile cost and break-even", "",
            "Compile cost of each compiled mode over its eager twin (all warm-up calls' "
            "time over the steady state, so compiles in later warm-ups count), the time it "
            "saves per call, and the calls needed to repay it. Costs come from each "
            "setting's first process, the only one that compiles cold; a note says why a "
            "cost is missing.", "",
            be.to_markdown(index=False, floatfmt=".4g"), ""]


def _crossings(crossings: list) -> list[str]:
    """Per swept workload, where each mode's dispatch stops mattering."""
    parts = []
    for workload, sweep, table in crossings:
        parts += [f"## {workload}: where dispatch stops mattering", "",
                  f"Per mode, the {sweep.x} at which {sweep.y} reaches twice its value at the "
                  f"smallest {sweep.x} (interpolated on log-log axes between measured values; "
                  f"blank: not reached).", "", table.to_markdown(index=False, floatfmt=".3g"),
                  ""]
    return parts


def _workload_tables(workload_tables: list | None) -> list[str]:
    """The tables each workload declares."""
    if not workload_tables:
        return []
    parts = ["## Workloads' own tables", "",
             "Tables each workload declares (see `eagerbench list`). The values of an "
             "interleaved parameter (orders, squares, optimizers) ran round-robin in one "
             "process per mode (`interleaved` in `cells.csv`). Their times are also in the "
             "summary above, with ratios and intervals.", ""]
    for title, text, table in workload_tables:
        parts += [f"### {title}", "", text, "", table.to_markdown(index=False), ""]
    return parts



# --- the answer's sentences ----------------------------------------------------------------------

def _link(workload: str) -> str:
    return f"[{workload}]({workload_link(workload)})"


def _extremes(ratios: list, rows: list) -> list[str]:
    """The largest and the smallest eager tax among the headline cells that are headline
    figures (not allocation-bound)."""
    taxes = [r for r in ratios if r.is_tax and r.numerator != r.denominator
             and (r.workload, r.params) in set(rows) and "allocation-bound" not in r.flags]
    if not taxes:
        return []
    high = max(taxes, key=lambda r: r.value)
    low = min(taxes, key=lambda r: r.value)
    out = [f"The largest eager tax: {high.numerator} took {high.text()} the time of "
           f"{high.denominator} at {high.workload} {high.params} ({_link(high.workload)})."]
    if low is not high:
        verdict = ("the graph mode was the slower one" if low.hi < 1 else
                   "no faster than eager within its interval" if low.lo <= 1 else
                   "the smallest gain from the graph")
        out.append(f"The smallest: {low.numerator} over {low.denominator} at {low.workload} "
                   f"{low.params}, {low.text()}: {verdict} ({_link(low.workload)}).")
    return out


def _crossover_sentences(crossings: list) -> list[str]:
    """Per swept workload, where each eager mode's cost stops being dispatch (its first line
    of the sweep: the one with the most sizes)."""
    eager = set(graph_twins())
    out = []
    for workload, sweep, table in crossings:
        column = f"crossover {sweep.x}"
        if "mode" not in table or column not in table:
            continue
        mine = table[table["mode"].isin(eager)].drop_duplicates("mode")
        if mine.empty:
            continue
        parts = [f"{fmt.size(r[column])} for {r['mode']}" if np.isfinite(r[column])
                 else f"beyond the sizes measured for {r['mode']}" for _, r in mine.iterrows()]
        out.append(f"In {workload}, dispatch stops dominating ({sweep.y} doubles from its "
                   f"value at the smallest {sweep.x}) at {sweep.x} " + ", ".join(parts)
                   + f" ({_link(workload)}).")
    return out


def _payback_sentence(cells: list[CellRow], rows: list) -> list[str]:
    """What each framework's compile pays back: the median calls to break even over the
    headline cells where the graph mode is faster."""
    be = plots.break_even_table(cells)
    if be.empty:
        return []
    be = be[[(w, p) in set(rows) for w, p in zip(be["workload"], be["params"])]]
    parts = []
    for mode, group in be[be["mode"].isin(set(graph_twins().values()))].groupby("mode",
                                                                                sort=False):
        calls = group["break_even_calls"]
        repaid, never = calls[np.isfinite(calls)], int(np.isinf(calls).sum())
        if repaid.empty and not never:
            continue
        cost = group["compile_ms"][np.isfinite(group["compile_ms"])]
        text = (f"{mode} never" if repaid.empty else
                f"{mode} at once" if repaid.median() < 1 else
                f"{mode} after {repaid.median():,.0f} calls")
        if len(cost):
            text += (f" (median compile {fmt.duration(cost.median())}"
                     if cost.median() > 0 else " (its compile costs no more than eager's first "
                     "calls")
            text += f"; never in {never} of {len(calls)} cells)" if never else ")"
        parts.append(text)
    if not parts:
        return []
    return ["Compiling pays for itself (median over the cells): " + "; ".join(parts)
            + ". [Break-even per cell](break_even.png)."]


# --- README.md: the answer -----------------------------------------------------------------------

def _flag_lines(suite: RunAccount) -> list[str]:
    counts = {name: n for name, n in suite.flag_counts.items() if n}
    lines = ["## Flags", ""]
    if not counts and not suite.host_noisy:
        return lines + ["No row carries a flag.", ""]
    lines += [f"- ({answer.MARKS[name]}) **{name}**, {n} rows: {flags.MEANINGS[name]}"
              for name, n in counts.items()]
    if suite.host_noisy:
        lines.append(f"- {suite.host_noisy}")
    return lines + [""]


def _workload_index(cells: list[CellRow]) -> list[str]:
    lines = ["## Workloads", ""]
    for name in dict.fromkeys(r.workload for r in cells):
        mine = [r for r in cells if r.ok and r.workload == name]
        sets = len({r.params for r in mine})
        lines.append(f"- {_link(name)}: {sets} parameter set{'s' if sets != 1 else ''}, "
                     f"{len({r.mode for r in mine})} modes")
    return lines + ["", "[How this run was measured](run.md): the machine, its limits, "
                    "how the run spent its time, verification, the files.", ""]


def nested_runs(folder: Path) -> list[tuple[str, str]]:
    """Runs kept inside a run's folder (``results/models/``, ``results/releases/``): each
    sub-folder with its own records and page, as (folder name, the page's title)."""
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        page = sub / "README.md"
        if (sub / "raw.jsonl").is_file() and page.is_file():
            title = page.read_text().split("\n", 1)[0].lstrip("# ").strip()
            found.append((sub.name, title))
    return found


def _nested_lines(nested: list[tuple[str, str]]) -> list[str]:
    if not nested:
        return []
    return ["## More runs in this folder", ""] + [
        f"- [{title}]({name}/README.md)" for name, title in nested] + [""]


def front_page(cells: list[CellRow], env: dict, suite: RunAccount, crossings: list,
               figures: list[Path], nested: list[tuple[str, str]] | None = None) -> str:
    """README.md: one screen that answers, then the article beside today and the flags;
    ``nested``: the runs kept in sub-folders, linked."""
    ratios = answer.taxes(cells)
    rows = answer.headline_params(cells)
    table = answer.matrix(cells, ratios)
    failed = sum(not r.ok for r in cells)
    parts = ["# eagerbench results", "", runpage.machine_line(env, suite), ""]
    if not env.get("finished", True):
        parts += ["**A partial run**: it was interrupted; `eagerbench run --resume` on its "
                  "folder measures the cells it did not reach.", ""]
    if not table.empty:
        shown = table.assign(workload=[_link(w) for w in table["workload"]])
        for column in shown.columns[2:]:
            shown[column] = [answer.cell_text(r) for r in shown[column]]
        parts += ["## The eager tax", "",
                  "How many times as long each eager mode takes as its framework's graph "
                  "mode (eager / graph: 2x means the graph mode is twice as fast), then each "
                  "mode against PyTorch eager; 95% intervals over processes. Marks: "
                  + ", ".join(f"({m}) {name}" for name, m in answer.MARKS.items())
                  + " (see Flags).", "", markdown_table(shown), ""]
        parts += [f"- {line}" for line in answer.framework_lines(ratios, rows)] + [""]
        others = len({(r.workload, r.params) for r in ratios}) - len(rows)
        if others > 0:
            parts += [f"{others} more parameter sets (beyond the article's sizes) are on the "
                      f"workload pages.", ""]
    said = _extremes(ratios, rows) + _crossover_sentences(crossings) \
        + _payback_sentence(cells, rows)
    if said:
        parts += ["## What it says", ""] + [f"- {s}" for s in said] + [""]
    if failed:
        parts += [f"**{failed} cells were not measured**; each workload page says why.", ""]
    if any(p.name == "heatmap.png" for p in figures):
        parts += ["![the eager tax and the ratio to PyTorch per cell](heatmap.png)", ""]
    parts += _nested_lines(nested or [])
    parts += _article(cells, env) + _flag_lines(suite) + _workload_index(cells)
    return "\n".join(parts)


# --- workloads/<name>.md: everything about one workload -----------------------------------------

def workload_page(workload: str, summary: pd.DataFrame, cells: list[CellRow],
                  why: list[WhyRow], crossings: list, workload_tables: list,
                  figures: list[Path], out_dir: Path) -> str:
    """One workload's full tables, plots, decomposition and notes."""
    mine = [r for r in cells if r.workload == workload]
    failed = [r for r in mine if not r.ok]
    parts = [f"# {workload}", "", "Generated by `eagerbench report`; [the answer](../README.md), "
             "[how the run was measured](../run.md).", "",
             "## Every cell", "",
             "`time per call` is the geometric mean over the cell's processes of each process's "
             "median; `(xN)`: timed in blocks of N calls, with `latency` (one call waited on) "
             "timed apart. `vs torch` divides by PyTorch eager, `vs eager twin` is the "
             "compiled mode over its eager twin (the inverse of the eager tax); 95% "
             "intervals over processes. `compile`: every warm-up call's time over the steady "
             "state, from the first (cold) process.", "",
             markdown_table(summary[summary["workload"] == workload].drop(columns="workload")),
             ""]
    parts += _settings(mine) + _break_even(mine)
    parts += _crossings([c for c in crossings if c[0] == workload])
    parts += _workload_tables([t for t in workload_tables if t[0].startswith(f"{workload}:")])
    if why:
        parts += why_section.markdown([r for r in why if r.workload == workload], out_dir,
                                      prefix="../")
    if failed:
        parts += ["## Cells not measured", "",
                  *(f"- {r.params} [{r.mode}]: {r.status}: {r.reason}" for r in failed), ""]
    if figures:
        parts += ["## Plots", ""] + [f"![{p.stem}](../{p.name})\n" for p in figures]
    return "\n".join(parts)
