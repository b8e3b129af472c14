"""Runs side by side (pyperf's ``compare_to``, asv's ``compare``, for eager-tax runs).

Each cell present in the baseline (the first run) and another run gets its time in each, the
ratio ``other / baseline`` with a 95% interval, and whether the change is significant. The
interval comes from ``stats.ratio``: processes are the unit, each run's between-process spread
is moderated by the other cells of the same mode in that run, so a cell measured in two
processes per run still gets an honest interval. Reads stored results only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eagerbench import facts, results, stats, tables

# Environment entries whose difference changes what a time means, shown when runs differ.
ENV_KEYS = ("device", "dtype", "threads", "compile_mode", "allocator_choice", "gc", "repeat",
            "min_time_s", "python", "git_revision")


@dataclass(frozen=True)
class Side:
    """One run, ready to compare: its cells' levels and the between-process pool per mode."""

    name: str
    run: results.Run
    levels: dict          # (workload, params, mode label) -> stats.Level
    pools: dict           # mode label -> stats.Pool
    shares: dict          # (workload, params, mode label) -> share of its host's limit


def _shares(run: results.Run) -> dict:
    """Each cell's rate as a share of the limits measured on its own host type: what makes
    runs on different machines (two GPU models) comparable."""
    shares = {}
    hosts = run.hosts()
    for number, host in enumerate(hosts, 1):
        if not host.limits:
            continue
        suffix = f" @host {number}" if len(hosts) > 1 else ""
        table = tables.cells_table(host.records, host.limits)
        for row in table.itertuples():
            if isinstance(row.limit, str) and row.limit:
                shares[(row.workload, row.params, row.mode + suffix)] = row.limit_share
    return shares


def load(path: Path | str, name: str | None = None) -> Side:
    run = facts.load(path)
    levels = {}
    hosts = run.hosts()
    for number, host in enumerate(hosts, 1):   # a cell is never pooled across host types
        suffix = f" @host {number}" if len(hosts) > 1 else ""
        for (workload, params, label), recs in tables.by_cell(host.records).items():
            lv = tables.cell_level(recs)
            if lv is not None:
                levels[(workload, params, label + suffix)] = lv
    by_mode: dict[str, list] = {}
    for (_, _, label), lv in levels.items():
        by_mode.setdefault(label, []).append(lv)
    pools = {label: stats.pooled(lvs) for label, lvs in by_mode.items()}
    return Side(name or str(path), run, levels, pools, _shares(run))


def cells(sides: list[Side]) -> pd.DataFrame:
    """One row per cell of the baseline: its time in every run, and against the baseline the
    ratio, its interval, and whether it is significant (the interval excludes 1)."""
    base = sides[0]
    rows = []
    for key, lv in base.levels.items():
        workload, params, mode = key
        row = {"workload": workload, "params": params, "mode": mode, "ms_0": lv.estimate,
               "share_0": base.shares.get(key, np.nan)}
        for i, side in enumerate(sides[1:], 1):
            row[f"share_{i}"] = side.shares.get(key, np.nan)
            other = side.levels.get(key)
            if other is None:
                row.update({f"ms_{i}": np.nan, f"ratio_{i}": np.nan, f"lo_{i}": np.nan,
                            f"hi_{i}": np.nan, f"significant_{i}": False})
                continue
            r = stats.ratio(other, lv, side.pools[mode], base.pools[mode])
            row.update({f"ms_{i}": other.estimate, f"ratio_{i}": r.value, f"lo_{i}": r.lo,
                        f"hi_{i}": r.hi, f"significant_{i}": r.significant})
        rows.append(row)
    return pd.DataFrame(rows)


def by_mode(table: pd.DataFrame, runs: int) -> pd.DataFrame:
    """Per mode and run: the geometric mean of its cells' ratios, and how many cells got
    significantly slower or faster."""
    rows = []
    for mode, group in table.groupby("mode", sort=False):
        row = {"mode": mode, "cells": len(group)}
        for i in range(1, runs):
            ratios = group[f"ratio_{i}"].dropna()
            sig = group[f"significant_{i}"]
            row[f"geomean_{i}"] = float(np.exp(np.log(ratios).mean())) if len(ratios) else np.nan
            row[f"slower_{i}"] = int((sig & (group[f"ratio_{i}"] > 1)).sum())
            row[f"faster_{i}"] = int((sig & (group[f"ratio_{i}"] < 1)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def regressions(table: pd.DataFrame, runs: int, percent: float) -> pd.DataFrame:
    """Cells significantly slower than the baseline by more than ``percent`` in some run: the
    whole 95% interval of the ratio lies above ``1 + percent / 100`` (a point estimate past
    the threshold with an interval reaching below it is not evidence of that much)."""
    worse = np.zeros(len(table), dtype=bool)
    for i in range(1, runs):
        worse |= table[f"lo_{i}"].to_numpy(float) > 1 + percent / 100
    return table[worse]


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


def _env_entries(side: Side) -> dict:
    env = side.run.env()
    hosts = side.run.hosts() or [results.Host("", side.run.header.host or
                                              results.host_fingerprint(env), env.get("limits"),
                                              [])]
    out = {}
    for number, host in enumerate(hosts, 1):
        name = "host" if len(hosts) == 1 else f"host {number}"
        limits = host.limits or {}
        out.update({name: results.host_label(host.host),
                    f"{name} cores": host.host.get("cores"),
                    f"{name} peak float32 GFLOP/s": _rounded((limits.get("peak_gflops") or {})
                                                             .get("float32")),
                    f"{name} bandwidth GB/s": _rounded(limits.get("bandwidth_gbps"))})
    out.update({k: env.get(k) for k in ENV_KEYS})
    out["allocator env"] = (env.get("allocator") or {}).get("env") or {}
    out.update({f"{name} version": v for name, v in (env.get("versions") or {}).items()})
    out["result schema"] = side.run.header.schema
    return out


def _rounded(value) -> str | None:
    return None if value is None else stats.significant_figures(value)


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


def _duration(ms: float) -> str:
    if not np.isfinite(ms):
        return ""
    return f"{stats.significant_figures(ms * 1e3)} us" if ms < 1 else \
        f"{stats.significant_figures(ms)} ms"


def _change(ratio: float, significant: bool) -> str:
    if not np.isfinite(ratio):
        return "missing"
    if not significant:
        return "same"
    return f"{(ratio - 1) * 100:+.0f}% " + ("slower" if ratio > 1 else "faster")


def display(table: pd.DataFrame, sides: list[Side], changed_only: bool = False) -> pd.DataFrame:
    """The human-readable table: times, ratios with intervals, and the verdict per run;
    with each run's share of its own host's measured limit (peak matmul or bandwidth) when
    the runs were measured on different host types."""
    shares = len({_hosts_of(side) for side in sides}) > 1 and any(
        table[f"share_{i}"].notna().any() for i in range(len(sides)))
    rows = []
    for _, r in table.iterrows():
        verdicts = [_change(r[f"ratio_{i}"], r[f"significant_{i}"]) for i in range(1, len(sides))]
        if changed_only and all(v in ("same", "missing") for v in verdicts):
            continue
        row = {"cell": f"{r['workload']} {r['params']}", "mode": r["mode"],
               sides[0].name: _duration(r["ms_0"])}
        if shares:
            row[f"{sides[0].name} of limit"] = _share(r["share_0"])
        for i, side in enumerate(sides[1:], 1):
            row[side.name] = _duration(r[f"ms_{i}"])
            if shares:
                row[f"{side.name} of limit"] = _share(r[f"share_{i}"])
            row[f"ratio {i}"] = tables.fmt_ratio(r[f"ratio_{i}"], r[f"lo_{i}"], r[f"hi_{i}"])
            row[f"change {i}"] = verdicts[i - 1]
        rows.append(row)
    return pd.DataFrame(rows)


def _hosts_of(side: Side) -> tuple:
    return tuple(h.key for h in side.run.hosts())


def _share(value: float) -> str:
    return f"{value:.0%}" if np.isfinite(value) else ""


def display_modes(summary: pd.DataFrame, sides: list[Side]) -> pd.DataFrame:
    rows = []
    for _, r in summary.iterrows():
        row = {"mode": r["mode"], "cells": r["cells"]}
        for i in range(1, len(sides)):
            row[f"geomean {i}"] = f"{stats.significant_figures(r[f'geomean_{i}'])}x"
            row[f"slower {i}"] = r[f"slower_{i}"]
            row[f"faster {i}"] = r[f"faster_{i}"]
        rows.append(row)
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, sides: list[Side], path: Path) -> Path:
    """Each cell's ratio against the baseline with its interval, one panel per other run,
    on a log axis; significant changes in colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(table)
    panels = len(sides) - 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, max(3.0, 0.22 * n + 1.2)),
                             sharey=True, squeeze=False)
    labels = [f"{r.workload} {r.params} [{r.mode}]" for r in table.itertuples()]
    y = np.arange(n)
    for i, ax in enumerate(axes[0], 1):
        ratio = table[f"ratio_{i}"].to_numpy(float)
        lo = table[f"lo_{i}"].to_numpy(float)
        hi = table[f"hi_{i}"].to_numpy(float)
        sig = table[f"significant_{i}"].to_numpy(bool)
        colour = np.where(~sig, "0.6", np.where(ratio > 1, "tab:red", "tab:green"))
        for j in range(n):
            if not np.isfinite(ratio[j]):
                continue
            err = [[ratio[j] - lo[j]], [hi[j] - ratio[j]]] if np.isfinite(lo[j]) else None
            ax.errorbar(ratio[j], y[j], xerr=err, fmt="o", color=colour[j], ms=3, capsize=2)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(f"{sides[i].name} / {sides[0].name} (time ratio, 95% interval)")
        ax.set_title("red: significantly slower; green: faster; grey: no significant change",
                     fontsize=8)
    axes[0][0].set_yticks(y)
    axes[0][0].set_yticklabels(labels, fontsize=6)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
