"""Matplotlib figures every run gets (PNG): the eager-tax heatmap and the break-even of compiles.
A workload's own figures are declared by it and drawn by ``views``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from eagerbench.report import answer  # noqa: E402
from eagerbench.report import format as fmt  # noqa: E402
from eagerbench.report.rows import CellRow  # noqa: E402

DPI = 110


def _colors(modes) -> dict:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {m: cycle[i % len(cycle)] for i, m in enumerate(modes)}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")   # a legend outside the axes stays in
    plt.close(fig)
    return path


def quartile_bars(g: pd.DataFrame) -> list:
    """Error bars from each cell's time to its samples' quartiles (the time is the mean over
    processes, so it can sit outside its pooled quartiles: a bar is then zero on that side)."""
    return [np.clip(g["median_ms"] - g["q1_ms"], 0, None), np.clip(g["q3_ms"] - g["median_ms"],
                                                                   0, None)]


def _grouped(df: pd.DataFrame):
    """Layout of a bar chart with one group per (workload, params) and one bar per mode."""
    groups = list(dict.fromkeys(zip(df["workload"], df["params"])))
    modes = list(dict.fromkeys(df["mode"]))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(groups) + 2), 4.5))
    return groups, modes, _colors(modes), 0.8 / len(modes), fig, ax


def _group_ticks(ax, groups) -> None:
    """Log y axis and one tick per group, labelled with the workload and its parameters."""
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{w}\n{p.replace(' ', chr(10))}" for w, p in groups], fontsize=7)


LIMIT = np.log10(30.0)     # the colour scale saturates at 30x either way


def _heat_panel(ax, rows: list, columns: list, ratios: dict, title: str, norm, cmap):
    """One heatmap: a row per (workload, params), a column per ratio, the ratio written in each
    square; red above 1, blue below, grey when its interval contains 1."""
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            ratio = ratios.get((row, column))
            if ratio is None or not np.isfinite(ratio.value):
                continue
            reference = ratio.numerator == ratio.denominator
            significant = bool(np.isfinite(ratio.lo) and (ratio.lo > 1 or ratio.hi < 1))
            color = ("white" if reference else
                     cmap(norm(np.clip(np.log10(ratio.value), -LIMIT, LIMIT))) if significant
                     else "#d9d9d9")
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=color,
                                       edgecolor="white", lw=1))
            dark = significant and abs(np.log10(ratio.value)) > 0.6 * LIMIT
            ax.text(j, i, "ref" if reference else f"{fmt.significant(ratio.value, 2)}x",
                    ha="center", va="center", fontsize=6.5,
                    color="white" if dark else ("#666666" if not significant else "black"))
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([" / ".join(c) for c in columns], rotation=35, ha="right", fontsize=7.5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{w}  {p}" for w, p in rows], fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)


def heatmap(cells: list[CellRow], out: Path, title_suffix: str = "") -> Path | None:
    """The headline figure, for the headline rows: each eager mode's tax (eager / its graph
    twin) and each mode's time over PyTorch eager, as heatmaps that share their rows, with a
    colour bar on a log scale."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import TwoSlopeNorm

    ratios = answer.taxes(cells)
    rows = answer.headline_params(cells)
    if not ratios or not rows:
        return None
    found = {((r.workload, r.params), (r.numerator, r.denominator)): r for r in ratios}
    pairs = list(dict.fromkeys(pair for _, pair in found))
    taxes = [p for p in pairs if p[1] != answer.REFERENCE or p[0] == answer.REFERENCE]
    versus = [p for p in pairs if p not in taxes]
    panels = [(c, t) for c, t in ((taxes, "eager tax: eager / graph twin"),
                                  (versus, "time / PyTorch eager")) if c]
    norm = TwoSlopeNorm(vmin=-LIMIT, vcenter=0.0, vmax=LIMIT)
    cmap = plt.get_cmap("RdBu_r")
    widths = [len(c) for c, _ in panels]
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(max(8.0, 4.2 + 0.62 * sum(widths)), 2.0 + 0.24 * len(rows)),
                             gridspec_kw={"width_ratios": widths})
    for ax, (columns, title) in zip(axes[0], panels):
        _heat_panel(ax, rows, columns, found, title, norm, cmap)
    for ax in axes[0][1:]:
        ax.set_yticklabels([])
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[0]), shrink=0.6,
                       pad=0.02)
    ticks = [1 / 30, 1 / 10, 1 / 3, 1, 3, 10, 30]
    bar.set_ticks(list(np.log10(ticks)))
    bar.set_ticklabels(["1/30x", "1/10x", "1/3x", "1x", "3x", "10x", "30x"], fontsize=7)
    bar.set_label("ratio (log scale; grey: 95% interval contains 1)", fontsize=7.5)
    fig.suptitle(f"How many times as long each mode takes{title_suffix}: red slower, "
                 f"blue faster", fontsize=9)
    fig.savefig(out / "heatmap.png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out / "heatmap.png"


def break_even_table(cells: list[CellRow]) -> pd.DataFrame:
    """After how many calls each compiled mode has paid back its compile cost against its eager
    twin: (compile_c - compile_e) / (time_e - time_c), where a compile cost is every warm-up
    call's time over the steady state (all compiles before timing, not only the first call's).
    Infinite where the compiled steady state is not faster; NaN where a compile cost was not
    measured (``note`` says why), which no figure reads as "never"."""
    ok = {r.key: r for r in cells if r.ok}
    rows = []
    for (w, p, m), r in ok.items():
        e = ok.get((w, p, r.eager_twin))
        if not r.compiled or not r.eager_twin or e is None:
            continue
        saving = e.median_ms - r.median_ms
        extra = max(r.compile_ms - e.compile_ms, 0.0) if np.isfinite(
            r.compile_ms) and np.isfinite(e.compile_ms) else np.nan
        n = np.nan if not np.isfinite(extra) else extra / saving if saving > 0 else np.inf
        rows.append({"workload": w, "params": p, "mode": m, "eager": r.eager_twin,
                     "compile_ms": extra, "first_call_ms": r.first_call_ms,
                     "saving_ms_per_call": saving, "break_even_calls": n,
                     "note": r.compile_note})
    return pd.DataFrame(rows)


def break_even(cells: list[CellRow], out: Path) -> Path | None:
    """Calls each compiled mode needs to repay its compile cost against its eager twin, drawn
    by ``break_even_figure`` into break_even.png."""
    be = break_even_table(cells)
    if be.empty:
        return None
    fig = break_even_figure(be)
    fig.savefig(out / "break_even.png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out / "break_even.png"


def break_even_figure(be: pd.DataFrame):
    """One row per (workload, params), a bar per mode, on a log axis from one call; hatched
    where it never repays (the compiled steady state is not faster), "1" where it repays
    within its first call (a bar under one call has no length on that axis and read as
    missing), "n/m" where the cost was not measured."""
    groups = list(dict.fromkeys(zip(be["workload"], be["params"])))
    modes = list(dict.fromkeys(be["mode"]))
    colors, height = _colors(modes), 0.8 / len(modes)
    fig, ax = plt.subplots(figsize=(8.0, 1.4 + 0.22 * len(groups) * max(1.0, len(modes) / 3)))
    finite = be["break_even_calls"].replace(np.inf, np.nan).clip(lower=1.0)
    top = float(np.nanmax(finite)) * 3 if finite.notna().any() else 10.0
    for j, mode in enumerate(modes):
        sub = be[be["mode"] == mode].set_index(["workload", "params"])
        for i, g in enumerate(groups):
            if g not in sub.index:
                continue
            n = sub.loc[g, "break_even_calls"]
            y = i + (j - (len(modes) - 1) / 2) * height
            if np.isnan(n) or n <= 1:   # a mark of its own, never a bar
                ax.text(1.05, y, "n/m" if np.isnan(n) else "1", va="center", fontsize=6,
                        color=colors[mode])
                continue
            never = not np.isfinite(n)
            ax.barh(y, top if never else n, height, color=colors[mode],
                    hatch="//" if never else None, alpha=0.35 if never else 1)
    ax.set_xscale("log")
    ax.set_xlim(left=1.0)
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([f"{w} {p}" for w, p in groups], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("calls until the compile has paid for itself (log scale)")
    ax.set_title("Break-even of each compiled mode against its eager twin\n(hatched: never "
                 "repays, the compiled mode is not faster; 1: repays within its first call; "
                 "n/m: not measured)", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[m]) for m in modes]
    ax.legend(handles, modes, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0)
    return fig


def all_plots(cells: list[CellRow], out: Path) -> list[Path]:
    """Every figure the run's data supports, written into ``out``."""
    if not any(r.ok for r in cells):
        return []   # nothing was measured: no figure to draw
    made = [heatmap(cells, out), break_even(cells, out)]
    return [p for p in made if p is not None]
