"""Runs side by side (pyperf's ``compare_to``, asv's ``compare``, for eager-tax runs), in two
views kept apart.

- **tax** (the default): each mode's eager tax (its time over its eager twin's, measured in the
  same processes) in run i against the baseline (run 0): a ratio of ratios. A whole run or
  process being slower moves a mode and its twin together, so it cancels.
- **absolute**: each cell's time in run i over the baseline. What moves every cell of one
  framework at once (a slower day, a noisier host, one framework's processes landing slow) is
  estimated once per framework as the run's *shift*, a random-effects mean over its cells, and
  each cell's change is judged beyond that shift: a run 10% slower reads as one line "10%
  slower", not as 60 cells "significantly slower".

Intervals come from ``stats``: processes are the unit, and each run's variances are moderated
among the cells of one workload in that run. Reads stored results only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from eagerbench.frameworks import facts
from eagerbench.records import host as hosts
from eagerbench.records import runfile
from eagerbench.records.limits import MachineLimits
from eagerbench.report import cellstats, stats, summary
from eagerbench.report import format as fmt

# Environment entries whose difference changes what a time means, shown when runs differ.
ENV_KEYS = ("device", "dtype", "threads", "compile_mode", "allocator_choice", "gc", "repeat",
            "min_time_s", "python", "git_revision")
VIEWS = ("tax", "absolute")
# Fewer cells of a framework than this and no shift is estimated: its interval is a t interval
# on (cells - 1) degrees of freedom (12.7 standard errors wide each side at two cells), so two
# matmul cells each 1.7x slower gave 1.69x [0.686, 4.16], "no shift", and each cell judged
# beyond that shift read "same": the gate passed a run 1.7x slower everywhere. Each such
# cell is judged on its own instead.
MIN_SHIFT_CELLS = 5


@dataclass(frozen=True)
class Side:
    """One run, ready to compare: its cells' levels, each compiled cell's eager twin, each
    cell's framework (the cells that share processes), and shares of the host's limits."""

    name: str
    run: runfile.Run | None
    levels: dict          # (workload, params, mode label) -> stats.Level
    twins: dict           # cell key -> its eager twin's key
    frameworks: dict      # cell key -> framework
    shares: dict          # cell key -> share of its host's limit
    environment: str | None = None   # one environment of a run across releases (RUN@LABEL)

    @property
    def stored(self) -> runfile.Run:
        """The run this side was read from (a simulated side has none)."""
        if self.run is None:
            raise ValueError(f"{self.name}: no stored run behind this side")
        return self.run


def _shares(run: runfile.Run) -> dict:
    """Each cell's rate as a share of the limits measured on its own host type: what makes
    runs on different machines (two GPU models) comparable."""
    shares = {}
    hosts = run.hosts()
    for number, host in enumerate(hosts, 1):
        if not host.limits:
            continue
        suffix = f" @host {number}" if len(hosts) > 1 else ""
        for row in summary.cell_rows(host.records, MachineLimits.from_json(host.limits)):
            if row.limit:
                shares[(row.workload, row.params, row.mode + suffix)] = row.limit_share
    return shares


def split_environment(where: Path | str) -> tuple[Path, str | None]:
    """``RUN@LABEL`` -> (RUN, LABEL): one environment of a run across releases (``--env``);
    a plain folder -> (folder, None)."""
    text = str(where)
    if Path(text).is_dir() or "@" not in text:
        return Path(text), None
    folder, _, label = text.rpartition("@")
    return Path(folder), label


def load_side(path: Path | str, name: str | None = None) -> Side:
    """A run to compare, or one environment of it (``RUN@jax==0.4.30``): its cells then lose
    their environment's tag, so that two environments of one run meet cell for cell."""
    folder, environment = split_environment(path)
    run = facts.open_run(folder)
    if environment is not None:
        known = list((run.env().get("environments") or {}))
        if environment not in known:
            raise runfile.ResultsError(
                f"{folder}: no environment {environment!r} in this run "
                f"({'its environments: ' + ', '.join(known) if known else 'it ran in none'})")
    tag = f" @{environment}" if environment else ""
    levels, twins, frameworks = {}, {}, {}
    hosts = run.hosts()
    for number, host in enumerate(hosts, 1):   # a cell is never pooled across host types
        suffix = f" @host {number}" if len(hosts) > 1 else ""
        for (workload, params, label), recs in cellstats.by_cell(host.records).items():
            if tag and not label.endswith(tag):
                continue
            lv = cellstats.cell_level(recs)
            if lv is None:
                continue
            key = (workload, params, label.removesuffix(tag) + suffix)
            levels[key] = lv
            frameworks[key] = recs[0].measured.framework + suffix
            twin = recs[0].measured.eager_twin
            if twin and twin != label:
                twins[key] = (workload, params, twin.removesuffix(tag) + suffix)
    return Side(name or str(path), run, levels, twins, frameworks, _shares(run), environment)


def _classes(keys) -> dict:
    return {key: key[0] for key in keys}     # variances are moderated within a workload


def _taxes(side: Side) -> dict:
    """Each compiled cell's per-process log eager tax, log(eager) - log(compiled) (its eager
    twin measured in its processes)."""
    out = {}
    for key, twin in side.twins.items():
        if key in side.levels and twin in side.levels:
            found = stats.paired_differences(side.levels[twin], side.levels[key])
            if found is not None:
                out[key] = found[0]
    return out


@dataclass(frozen=True)
class Change:
    """One cell across runs: its value in each run (an eager tax, or ms per call; NaN where it
    is missing), and in each run after the baseline its ratio to the baseline with its
    interval (None where missing): beyond its framework's shift in the absolute view."""

    workload: str
    params: str
    mode: str
    twin: str                               # the eager twin (tax view); '' otherwise
    values: tuple[float, ...]               # run 0, 1, ...
    ratios: tuple[Optional[stats.Ratio], ...]   # run 1, 2, ...: against run 0
    raw: tuple[float, ...] = ()             # absolute view: the ratio before the shift
    # The tax view's values are eager taxes (eager / compiled): the compiled mode is slower
    # when its tax falls, so a ratio below 1 is the slowdown there.
    falls_when_slower: bool = False

    def ratio(self, run: int) -> Optional[stats.Ratio]:
        return self.ratios[run - 1]

    def slowdown(self, run: int) -> Optional[stats.Ratio]:
        """Run ``run`` against the baseline as a slowdown (above 1: slower): the compiled
        mode's time over its eager twin's in the tax view, the time in the absolute one."""
        r = self.ratio(run)
        if r is None or not self.falls_when_slower:
            return r
        return dataclasses.replace(r, value=1 / r.value, lo=1 / r.hi, hi=1 / r.lo)

    def slower_than(self, percent: float) -> bool:
        """Significantly slower than the baseline by more than ``percent`` in some run: the
        slowdown's whole 95% interval lies above ``1 + percent / 100`` (a point estimate past it
        with an interval reaching below is not evidence of that much)."""
        return any(r is not None and r.lo > 1 + percent / 100
                   for r in (self.slowdown(i) for i in range(1, len(self.ratios) + 1)))


@dataclass(frozen=True)
class Shift:
    """What moved every cell of one framework in one run against the baseline."""

    run: int
    framework: str
    cells: int
    ratio: stats.Ratio

    @property
    def estimated(self) -> bool:
        """Whether there were cells enough to estimate a shift (its cells are judged beyond
        it); otherwise ``ratio`` is their geometric mean, with no interval."""
        return self.cells >= MIN_SHIFT_CELLS


def tax_view(sides: list[Side]) -> list[Change]:
    """One row per compiled cell of the baseline: its eager tax in each run and, against the
    baseline, the ratio of taxes with its interval."""
    taxes = [_taxes(side) for side in sides]
    priors = [stats.fit_priors(t, _classes(t)) for t in taxes]
    rows = []
    for key, base in taxes[0].items():
        workload, params, mode = key
        values, ratios = [float(np.exp(base.mean()))], []
        for i in range(1, len(sides)):
            other = taxes[i].get(key)
            values.append(float(np.exp(other.mean())) if other is not None else np.nan)
            ratios.append(None if other is None else stats.difference(
                other, base, priors[i][workload], priors[0][workload]))
        rows.append(Change(workload, params, mode, sides[0].twins[key][2], tuple(values),
                           tuple(ratios), falls_when_slower=True))
    return rows


def _changes(base: Side, other: Side) -> dict:
    """Each cell's time in ``other`` over ``base`` (independent processes)."""
    priors = [stats.fit_priors({k: np.asarray(lv.logs) for k, lv in side.levels.items()},
                               _classes(side.levels)) for side in (base, other)]
    return {key: stats.difference(np.asarray(other.levels[key].logs), np.asarray(lv.logs),
                                  priors[1][key[0]], priors[0][key[0]])
            for key, lv in base.levels.items() if key in other.levels}


def shifts(sides: list[Side]) -> list[Shift]:
    """Per other run and framework, the shift of all its cells against the baseline, with
    its interval: what the absolute view judges each cell beyond."""
    rows = []
    for i, side in enumerate(sides[1:], 1):
        changes = _changes(sides[0], side)
        for framework in dict.fromkeys(sides[0].frameworks.get(k) for k in changes):
            keys = [k for k in changes if sides[0].frameworks.get(k) == framework]
            logs = np.log([changes[k].value for k in keys])
            found = stats.shift(logs, np.array([changes[k].se ** 2 for k in keys])) \
                if len(keys) >= MIN_SHIFT_CELLS else stats.Ratio(float(np.exp(np.mean(logs))),
                                                                 processes=len(keys))
            rows.append(Shift(i, str(framework), len(keys), found))
    return rows


def absolute_view(sides: list[Side], shift_rows: Optional[list[Shift]] = None) -> list[Change]:
    """One row per cell of the baseline: its time in each run (ms), its raw ratio, and its
    change beyond its framework's shift in that run, with an interval."""
    shift_rows = shifts(sides) if shift_rows is None else shift_rows
    by_run = {(r.run, r.framework): r.ratio for r in shift_rows if r.estimated}
    changes: list[dict[tuple[str, str, str], stats.Ratio]] = [{}] + [
        _changes(sides[0], side) for side in sides[1:]]
    rows = []
    for key, lv in sides[0].levels.items():
        workload, params, mode = key
        values, raw = [lv.estimate], list[float]()
        ratios: list[Optional[stats.Ratio]] = []
        for i in range(1, len(sides)):
            change = changes[i].get(key)
            if change is None:
                values.append(np.nan)
                ratios.append(None)
                raw.append(np.nan)
                continue
            values.append(sides[i].levels[key].estimate)
            raw.append(change.value)
            shift = by_run.get((i, sides[0].frameworks.get(key, "")))
            ratios.append(stats.relative(change, shift) if shift and np.isfinite(shift.value)
                          else change)
        rows.append(Change(workload, params, mode, "", tuple(values), tuple(ratios),
                           tuple(raw)))
    return rows


def view(sides: list[Side], name: str = "tax") -> list[Change]:
    """The named view's rows (``VIEWS``)."""
    if name not in VIEWS:
        raise ValueError(f"unknown view {name!r}: one of {', '.join(VIEWS)}")
    return tax_view(sides) if name == "tax" else absolute_view(sides)


@dataclass(frozen=True)
class ModeChange:
    """Per mode, in each run after the baseline: the geometric mean of its cells' ratios, and
    how many got significantly slower or faster."""

    mode: str
    cells: int
    geomeans: tuple[float, ...]
    slower: tuple[int, ...]
    faster: tuple[int, ...]


def by_mode(changes: list[Change], runs: int) -> list[ModeChange]:
    """Per mode and run: the geometric mean of its cells' ratios (as displayed: of taxes in
    the tax view), and how many cells are significantly slower and faster."""
    out = []
    for mode in dict.fromkeys(c.mode for c in changes):
        mine = [c for c in changes if c.mode == mode]
        geomeans, slower, faster = [], [], []
        for i in range(1, runs):
            values = [r.value for r in (c.ratio(i) for c in mine)
                      if r is not None and np.isfinite(r.value)]
            geomeans.append(float(np.exp(np.mean(np.log(values)))) if values else np.nan)
            found = [r for r in (c.slowdown(i) for c in mine) if r is not None]
            slower.append(sum(r.significant and r.value > 1 for r in found))
            faster.append(sum(r.significant and r.value < 1 for r in found))
        out.append(ModeChange(mode, len(mine), tuple(geomeans), tuple(slower), tuple(faster)))
    return out


def regressions(changes: list[Change], percent: float) -> list[Change]:
    """Cells significantly slower than the baseline by more than ``percent`` in some run."""
    return [c for c in changes if c.slower_than(percent)]


def slower_shifts(shift_rows: list[Shift], percent: float) -> list[Shift]:
    """The frameworks whose whole run is slower than the baseline by more than ``percent``
    (the shift's whole interval above it; a shift not estimated is judged cell by cell)."""
    return [r for r in shift_rows if r.estimated and r.ratio.lo > 1 + percent / 100]


def unmatched(sides: list[Side]) -> list[str]:
    """Cells measured in one run and not in another (never silently dropped)."""
    notes = []
    base = set(sides[0].levels)
    for side in sides[1:]:
        only_base, only_other = base - set(side.levels), set(side.levels) - base
        if only_base:
            notes.append(f"{len(only_base)} cell(s) only in {sides[0].name}, not in {side.name}")
        if only_other:
            notes.append(f"{len(only_other)} cell(s) only in {side.name}, not in "
                         f"{sides[0].name}")
    return notes


def _env_entries(side: Side) -> dict[str, Any]:
    run = side.stored
    env = run.env()
    types = run.hosts() or [runfile.Host("", run.header.host or
                                              hosts.fingerprint(env), env.get("limits"), [])]
    out = {}
    for number, host in enumerate(types, 1):
        name = "host" if len(types) == 1 else f"host {number}"
        limits = MachineLimits.from_json(host.limits)
        out.update({name: hosts.label(host.host),
                    f"{name} cores": host.host.get("cores"),
                    f"{name} peak float32 GFLOP/s": _rounded(limits.peak("float32")
                                                             if limits else None),
                    f"{name} bandwidth GB/s": _rounded(limits.bandwidth_gbps
                                                       if limits else None)})
    out.update({k: env.get(k) for k in ENV_KEYS})
    out["allocator env"] = (env.get("allocator") or {}).get("env") or {}
    versions = env.get("versions") or {}
    if side.environment:   # the environment's own releases, not the runner's
        packages = env["environments"][side.environment].get("packages") or {}
        versions = {k: v for k, v in packages.items()
                    if k in ("torch", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy")}
    out.update({f"{name} version": v for name, v in versions.items()})
    out["result schema"] = run.header.schema
    return out


def _rounded(value) -> str | None:
    return None if value is None else fmt.significant(value)


def environment_differences(sides: list[Side]) -> pd.DataFrame:
    """The environment entries that differ between the runs, one row each."""
    entries = [_env_entries(s) for s in sides]
    keys = list(dict.fromkeys(k for e in entries for k in e))
    rows = []
    for key in keys:
        values = [e.get(key) for e in entries]
        if any(v != values[0] for v in values[1:]):
            rows.append({"setting": key, **{s.name: "" if v is None else str(v)
                                           for s, v in zip(sides, values)}})
    return pd.DataFrame(rows)


def _change(ratio: Optional[stats.Ratio]) -> str:
    if ratio is None or not np.isfinite(ratio.value):
        return "missing"
    if not ratio.significant:
        return "same"
    return f"{(ratio.value - 1) * 100:+.0f}% " + ("slower" if ratio.value > 1 else "faster")


def display(changes: list[Change], sides: list[Side], changed_only: bool = False,
            view_name: str = "tax") -> pd.DataFrame:
    """The human-readable table: each run's value (eager tax, or time), the ratio against the
    baseline with its interval, and the verdict per run; with each run's share of its own
    host's measured limit when the runs were measured on different host types."""
    shares = view_name == "absolute" and len({_hosts_of(side) for side in sides}) > 1
    value = fmt.times if view_name == "tax" else fmt.duration
    rows = []
    for c in changes:
        verdicts = [_change(c.slowdown(i)) for i in range(1, len(sides))]
        if changed_only and all(v in ("same", "missing") for v in verdicts):
            continue
        key = (c.workload, c.params, c.mode)
        mode = f"{c.twin} / {c.mode}" if view_name == "tax" else c.mode
        row = {"cell": f"{c.workload} {c.params}", "mode": mode,
               sides[0].name: value(c.values[0])}
        if shares:
            row[f"{sides[0].name} of limit"] = fmt.percent(sides[0].shares.get(key, np.nan))
        for i, side in enumerate(sides[1:], 1):
            row[side.name] = value(c.values[i])
            if shares:
                row[f"{side.name} of limit"] = fmt.percent(side.shares.get(key, np.nan))
            ratio = c.ratio(i)
            row[f"ratio {i}"] = fmt.ratio(ratio.value, ratio.lo, ratio.hi) if ratio else ""
            row[f"change {i}"] = verdicts[i - 1]
        rows.append(row)
    return pd.DataFrame(rows)


def display_shifts(shift_rows: list[Shift], sides: list[Side]) -> list[str]:
    """One line per other run and framework: the shift every cell of it shares."""
    lines = []
    for r in shift_rows:
        if not r.estimated:
            lines.append(f"{sides[r.run].name} / {sides[0].name}, {r.framework} ({r.cells} "
                         f"cells): {fmt.significant(r.ratio.value)}x, too few cells to "
                         f"estimate a shift ({MIN_SHIFT_CELLS} or more): each cell is judged "
                         f"on its own")
            continue
        verdict = _change(r.ratio)
        lines.append(f"{sides[r.run].name} / {sides[0].name}, {r.framework} ({r.cells} cells): "
                     f"{fmt.ratio(r.ratio.value, r.ratio.lo, r.ratio.hi)}: "
                     + ("no shift" if verdict == "same" else f"the whole run is {verdict}"))
    return lines


def _hosts_of(side: Side) -> tuple[str, ...]:
    return tuple(h.key for h in side.stored.hosts())


def display_modes(summary: list[ModeChange], sides: list[Side]) -> pd.DataFrame:
    rows = []
    for r in summary:
        row: dict = {"mode": r.mode, "cells": r.cells}
        for i in range(1, len(sides)):
            row[f"geomean {i}"] = fmt.times(r.geomeans[i - 1])
            row[f"slower {i}"] = r.slower[i - 1]
            row[f"faster {i}"] = r.faster[i - 1]
        rows.append(row)
    return pd.DataFrame(rows)


def plot(changes: list[Change], sides: list[Side], path: Path, view_name: str = "tax") -> Path:
    """Each cell's ratio against the baseline with its interval, one panel per other run,
    on a log axis; significant changes in colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(changes)
    panels = len(sides) - 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, max(3.0, 0.22 * n + 1.2)),
                             sharey=True, squeeze=False)
    labels = [f"{c.workload} {c.params} [{c.mode}]" for c in changes]
    y = np.arange(n)
    for i, ax in enumerate(axes[0], 1):
        found = [c.ratio(i) for c in changes]
        ratio = np.array([r.value if r else np.nan for r in found], dtype=float)
        lo = np.array([r.lo if r else np.nan for r in found], dtype=float)
        hi = np.array([r.hi if r else np.nan for r in found], dtype=float)
        sig = np.array([bool(r and r.significant) for r in found], dtype=bool)
        colour = np.where(~sig, "0.6", np.where(ratio > 1, "tab:red", "tab:green"))
        for j in range(n):
            if not np.isfinite(ratio[j]):
                continue
            err = [[ratio[j] - lo[j]], [hi[j] - ratio[j]]] if np.isfinite(lo[j]) else None
            ax.errorbar(ratio[j], y[j], xerr=err, fmt="o", color=colour[j], ms=3, capsize=2)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        what = "eager tax" if view_name == "tax" else "time beyond the run's shift"
        ax.set_xlabel(f"{what}: {sides[i].name} / {sides[0].name} (95% interval, log scale)")
        ax.set_title(f"{sides[i].name} against {sides[0].name}", fontsize=8)
    axes[0][0].set_yticks(y)
    axes[0][0].set_yticklabels(labels, fontsize=6)
    axes[0][0].invert_yaxis()
    what = "each mode's eager tax" if view_name == "tax" else "each cell's time"
    fig.suptitle(f"Run against run: {what}, with its 95% interval\n"
                 "red: significantly slower; green: faster; grey: no significant change",
                 fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")   # long labels and the title never cut
    plt.close(fig)
    return Path(path)
