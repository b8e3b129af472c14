"""The run page (``run.md``): the machine, its measured limits, how steady it was, how the run
spent its time, the flags' counts and the verification; the details behind the answer's one
header line."""

from __future__ import annotations

from typing import Optional

import numpy as np

from eagerbench.records.limits import Contention, MachineLimits, contention_of
from eagerbench.report import flags
from eagerbench.report.accounting import RunAccount
from eagerbench.report.rows import CellRow


def machine(env: dict, cells: list[CellRow]) -> str:
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
    if env.get("slurm"):
        options = env.get("executor") or {}
        lines.append(f"- measured through Slurm: {len(env['slurm']['jobs'])} jobs on "
                     f"{', '.join(env['slurm']['nodes'])}, partition "
                     f"{options.get('partition') or 'default'}, "
                     + ("exclusive nodes" if options.get("exclusive") else "shared nodes"))
    lines += _limits_lines(MachineLimits.from_json(env.get("limits")), cells)
    lines += _contention_lines(contention_of(env))
    lines += _allocator_lines(env)
    lines.append("- why phase: " + ("on, in each setting's first process (after each unit's "
                                    "timed rounds, never between them)"
                                    if env.get("why", True) else "off (`--no-why`)"))
    for note in env.get("skipped", []) or []:
        lines.append(f"- {note}")
    for src in env.get("data_source", []) or []:
        lines.append(f"- lbfgs data: {src}")
    return "\n".join(lines)


def _limits_lines(lim: Optional[MachineLimits], cells: list[CellRow]) -> list[str]:
    """The machine's measured limits, and the wait floor under the samples."""
    lines = []
    if lim is not None and lim.peak_gflops:
        peaks = {d: peak for d, peak in lim.peak_gflops.items() if peak}
        when = ("best of the probes before and after the run (a cell beat the first)"
                if lim.probes == 2 else "probed before the run")
        ladder = lim.matmul_ladder.get("float32")
        lines.append(
            f"- measured limits ({lim.device}, {when}): matmul {lim.matmul_n}^3 "
            + ", ".join(f"{d} {peak:.0f} GFLOP/s ({lim.best_library(d)})"
                        for d, peak in peaks.items())
            + "; streaming "
            f"`b += a` bandwidth {lim.bandwidth_gbps or float('nan'):.1f} GB/s, in cache "
            f"{lim.cache_bandwidth_gbps or float('nan'):.0f} GB/s; largest cache "
            f"{(lim.llc_bytes or 0) / 2**20:.0f} MiB"
            + (("; float32 matmul by side: " + ", ".join(
                f"{side} {rate:.0f}" for side, rate in ladder.items()) + " GFLOP/s")
               if ladder else ""))
    floors = [r.floor_us for r in cells if r.ok and np.isfinite(r.floor_us)]
    if floors:
        lines.append(f"- wait floor per sample (the clock and each backend's wait on the cell's "
                     f"finished outputs, per cell in `cells.csv`): {min(floors):.2g} to "
                     f"{max(floors):.2g} us, median {np.median(floors):.2g} us")
    return lines


def _contention_lines(probe: dict[str, Contention]) -> list[str]:
    """How steady the machine was at the run's start and end."""
    if not probe:
        return []
    fast = min(c.fast_unit_us for c in probe.values())
    parts = [f"{when}: {c.slow_against(fast):.0%} of 1 ms units at least 1.3x slower than "
             f"the fastest tenth of both probes (median unit "
             f"{c.percentiles_us[50] / fast:.2f}x it)" if c.percentiles_us else
             f"{when}: {c.slow_share:.0%} of units slow" for when, c in probe.items()]
    return ["- machine contention, a fixed pure-Python loop for 2 s at the run's start "
            "and end: " + "; ".join(parts) + ". A quiet machine shows about 0% and "
            "1.00x; a shared host slows every mode in spells, which intervals over "
            "processes and interleaved modes absorb, but which widens spreads"]


def _allocator_lines(env: dict) -> list[str]:
    """The allocator's settings, and what free page reporting does to a faulting step."""
    alloc = env.get("allocator") or {}
    if not alloc:
        return []
    return [f"- allocator: `--allocator {env.get('allocator_choice', 'default')}`; "
            f"transparent huge pages `{alloc.get('transparent_hugepages')}`; "
            f"allocator variables {alloc.get('env') or 'none'}"
            + ("; free page reporting on: this VM hands freed memory back to its "
               "host, and a step that faults pages afresh pays the host's faults too, "
               "more the longer the memory lay free (its allocation part then swings "
               "between samples)" if alloc.get("free_page_reporting") else "")]


def suite_lines(suite: RunAccount) -> list[str]:
    lines = ["## This run", ""]
    if suite.suite_wall_s:
        verify = f" + verify {suite.verify_wall_s:.0f} s" if suite.verify_wall_s else ""
        prepare = (f", of which {suite.prepare_s:.0f} s computing start states that later "
                   f"runs on this machine load from its cache" if suite.prepare_s else "")
        lines.append(f"- wall time: {suite.suite_wall_s / 60:.1f} min (run "
                     f"{suite.run_wall_s:.0f} s{prepare}{verify}), {suite.processes} "
                     f"worker processes")
    if suite.cell_wall_s:
        phases = suite.phases_s
        rest = ("; the rest is process start, framework import, building, warm-up and compiles"
                if not phases else
                "; the workers' phases: " + ", ".join(
                    f"{phase} {seconds:.0f} s" for phase, seconds in phases.items())
                + f", outside them (process start, imports, compiler set-up, data) "
                  f"{suite.cell_wall_s - sum(phases.values()):.0f} s")
        lines.append(f"- {suite.timed_share:.0%} of the workers' wall time was timed samples "
                     f"({suite.timed_s:.0f} of {suite.cell_wall_s:.0f} s{rest})")
    if suite.rows:
        lines.append(f"- {suite.flagged_rows} of {suite.rows} rows "
                     f"({suite.flagged_rows / suite.rows:.0%}) carry a flag"
                     + ("" if not suite.flagged_rows else ": " + ", ".join(
                         f"{count} {name}" for name, count in suite.flag_counts.items()
                         if count)))
        lines += [f"  - *{name}*: {flags.MEANINGS[name]}"
                  for name, count in suite.flag_counts.items() if count]
    if suite.host_noisy:
        lines.append(f"- {suite.host_noisy}")
    return lines + [""]


def header_line(suite: RunAccount) -> str:
    """The run in one line: processes per cell, the median half-width of the eager tax, the
    flagged share, the wall time and the timed share; every figure from the run."""
    parts = [f"{suite.processes_per_cell} processes per cell"
             if suite.processes_per_cell else ""]
    if np.isfinite(suite.median_half_width):
        parts.append(f"eager tax known to +-{suite.median_half_width:.1%} (median "
                     f"half-width of its 95% intervals)")
    if suite.rows:
        parts.append(f"{suite.flagged_rows / suite.rows:.0%} of rows flagged")
    if suite.suite_wall_s:
        parts.append(f"wall time {suite.suite_wall_s / 60:.1f} min")
    if np.isfinite(suite.timed_share):
        parts.append(f"{suite.timed_share:.0%} of worker time timing")
    return "**This run:** " + "; ".join(p for p in parts if p) + "."


def machine_line(env: dict, suite: RunAccount) -> str:
    """The machine and the run in one line: CPU, cores and threads, versions, processes per
    cell, the eager tax's median half-width, the flagged share, the wall time and the timed
    share. Every figure comes from the run."""
    versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items())
    if env.get("environments"):   # --env: the releases measured, not the runner's own
        versions = _release_ranges(env["environments"])
    gpus = ", ".join(g.get("name", "a GPU") for g in env.get("gpus", []) or [])
    machine = (f"{env.get('cpu') or 'unknown CPU'} ({env.get('cpu_count')} logical cores, "
               f"{env.get('threads')} threads per framework)"
               + (f", {gpus}" if gpus and env.get("device") == "cuda" else ""))
    return header_line(suite).replace("**This run:** ", f"**This run:** {machine}; {versions}; ")


def _release_ranges(environments: dict) -> str:
    """``--env`` environments in a few words: per framework asked for, how many releases and
    the oldest and newest (``jax 0.4.20 to 0.10.2 (8 releases)``); failed builds counted."""
    from eagerbench.frameworks.modes.base import release

    asked: dict[str, list[str]] = {}
    failed = 0
    for info in environments.values():
        if info.get("failed"):
            failed += 1
            continue
        packages = info.get("packages") or {}
        for requirement in info.get("requirements") or []:
            name = requirement.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip()
            if name in packages:
                asked.setdefault(name, []).append(packages[name])
    parts = []
    for name, versions in asked.items():
        ordered = sorted(set(versions), key=release)
        parts.append(f"{name} {ordered[0]}" + (f" to {ordered[-1]} ({len(ordered)} releases)"
                                               if len(ordered) > 1 else ""))
    return ("environments: " + ", ".join(parts)
            + (f", {failed} failed to install" if failed else ""))


def page(env: dict, cells: list[CellRow], suite: RunAccount, verified: str | None) -> str:
    """run.md: how the run was measured, in full."""
    parts = ["# How this run was measured", "",
             "Generated by `eagerbench report` from `raw.jsonl`; do not edit by hand. "
             "[The answer](README.md).", "", header_line(suite), ""]
    parts += suite_lines(suite)
    parts += ["## Machine", "", machine(env, cells), ""]
    if verified:
        parts += [verified]
    parts += ["## Files", "",
              "Their columns are described in `docs/results-format.md` of the eagerbench "
              "repository.", "",
              "- `raw.jsonl`: one record per cell and process (spec and every sample), as "
              "measured",
              "- `iterations.csv`: one row per sample (warm-up calls and timed blocks)",
              "- `cells.csv`: one row per cell: statistics, rates, ratios with intervals, flags",
              "- `why.csv`: one row per cell: the time decomposition, ops and dispatches per "
              "call, graphs and graph breaks, compile split, peak memory",
              "- `env.json`: versions, machine, settings", ""]
    return "\n".join(parts)
