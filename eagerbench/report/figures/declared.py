"""Draws what workloads declare (``presentation``): generic figure and table types, fed from the
cells and iterations tables of stored results. No function here knows a workload by name."""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd

from eagerbench import presentation
from eagerbench.presentation import Bars, Columns, Pivot, Series, Sweep
from eagerbench.report.figures.headline import _colors, _save, plt, quartile_bars

STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3))]


def declared(records) -> dict[str, list]:
    """Each workload's declarations, from its records' stored facts, in run order."""
    out: dict[str, list] = {}
    for rec in records:
        if rec.facts is not None and rec.spec.workload not in out:
            out[rec.spec.workload] = [presentation.from_json(v) for v in rec.facts.views]
    return out


def _ok(cells: pd.DataFrame, workload: str) -> pd.DataFrame:
    if "status" not in cells:
        return cells.iloc[0:0]
    return cells[(cells["workload"] == workload) & (cells["status"] == "ok")]


def _first_repeat(iters: pd.DataFrame, workload: str) -> pd.DataFrame:
    if iters.empty or "workload" not in iters:
        return iters
    return iters[(iters["workload"] == workload) & (iters["repeat"] == 0)]


def crossover(xs: np.ndarray, ys: np.ndarray) -> float:
    """Where ``ys`` first reaches twice its value at the smallest x (log-log interpolation
    between measured points; NaN when it never does)."""
    order = np.argsort(xs)
    xs, ys = np.asarray(xs, float)[order], np.asarray(ys, float)[order]
    if len(xs) < 2:
        return np.nan
    floor = ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y1 >= 2 * floor:
            f = (np.log(2 * floor) - np.log(max(y0, 1e-12))) / (np.log(y1) - np.log(max(y0, 1e-12)))
            return float(np.exp(np.log(x0) + np.clip(f, 0, 1) * (np.log(x1) - np.log(x0))))
    return np.nan


def crossovers(cells: pd.DataFrame, workload: str, sweep: Sweep) -> pd.DataFrame:
    """Per mode (and line value), the smallest-x value of ``sweep.y`` and its crossover x."""
    df = _ok(cells, workload)
    rows = []
    for key, g in df.groupby(["mode"] + _cols(sweep.lines), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values(f"p_{sweep.x}")
        if len(g) < 2:
            continue
        row = {"mode": key[0], **({sweep.lines: key[1]} if sweep.lines else {}),
               f"{sweep.y} at smallest {sweep.x}": g[sweep.y].iloc[0],
               f"crossover {sweep.x}": crossover(g[f"p_{sweep.x}"].to_numpy(float),
                                                 g[sweep.y].to_numpy(float))}
        rows.append(row)
    return pd.DataFrame(rows)


def _cols(*params) -> list[str]:
    return [f"p_{p}" for p in params if p]


def _panels(df: pd.DataFrame, params) -> list[tuple]:
    columns = [c for c in _cols(*params) if c in df]
    if not columns:
        return [()]
    return list(dict.fromkeys(df[columns].itertuples(index=False, name=None)))


def _select(df: pd.DataFrame, params, values: tuple) -> pd.DataFrame:
    for column, value in zip([c for c in _cols(*params) if c in df], values):
        df = df[df[column] == value]
    return df


def _value(v) -> str:
    """A parameter value as the user gave it (a column mixing workloads holds floats)."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _tick(v: float) -> str:
    """A measured value as a tick label: 512, 10000, 1e+07 -> 1e7, 268435456 -> 2.7e8."""
    if abs(v) < 1e5:
        return _value(v)
    mantissa, exponent = f"{v:.2g}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _panel_title(params, values: tuple) -> str:
    return ", ".join(f"{p} {_value(v)}" for p, v in zip([p for p in params if p], values))


def sweep(decl: Sweep, cells: pd.DataFrame, workload: str, path: Path) -> Path | None:
    df = _ok(cells, workload)
    x = f"p_{decl.x}"
    if df.empty or x not in df or df[x].nunique() < 2 or decl.y not in df:
        return None
    panels = _panels(df, [decl.panels])
    modes = list(dict.fromkeys(df["mode"]))
    colors = _colors(modes)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 2.2, 4), squeeze=False)
    lines = list(dict.fromkeys(df[f"p_{decl.lines}"])) if decl.lines else [None]
    for ax, values in zip(axes[0], panels):
        sub = _select(df, [decl.panels], values)
        for mode, g in sub.groupby("mode", sort=False):
            for j, value in enumerate(lines):
                h = (g if value is None else g[g[f"p_{decl.lines}"] == value]).sort_values(x)
                if not h.empty:
                    _sweep_line(ax, decl, h, x, dict(marker="o", ls=STYLES[j % len(STYLES)],
                                                     color=colors[mode]))
        _sweep_axes(ax, decl, sub[x], workload, values)
    _sweep_legend(fig, axes[0][-1], decl, modes, colors, lines)
    return _save(fig, path)


def _sweep_line(ax, decl: Sweep, h: pd.DataFrame, x: str, style: dict) -> None:
    """One mode's line (one value of ``decl.lines``), with its quartiles and crossover star."""
    if decl.crossover:
        at = crossover(h[x].to_numpy(float), h[decl.y].to_numpy(float))
        if np.isfinite(at):
            ax.plot([at], [2 * h[decl.y].iloc[0]], marker="*", ms=11, ls="none",
                    color=style["color"], mec="black", mew=0.5)
    if decl.quartiles:
        ax.errorbar(h[x], h[decl.y], yerr=quartile_bars(h), capsize=2, **style)
    else:
        ax.plot(h[x], h[decl.y], **style)


def _sweep_axes(ax, decl: Sweep, measured: pd.Series, workload: str, values: tuple) -> None:
    """Scales, a tick at every measured value, labels with units and the scale named."""
    ax.set_xscale("log" if decl.log_x else "linear")
    ax.set_yscale("log" if decl.log_y else "linear")
    if not decl.log_y:
        ax.set_ylim(bottom=0)
    ticks = sorted(set(float(v) for v in measured))
    ax.set_xticks(ticks)
    ax.set_xticklabels([_tick(v) for v in ticks], fontsize=7)
    if decl.log_x:
        ax.minorticks_off()
    ax.set_xlabel(decl.x + (" (log scale)" if decl.log_x else ""))
    ax.set_ylabel(decl.ylabel + (" (log scale)" if decl.log_y else ""))
    title = decl.title or f"{workload}: {decl.ylabel} against {decl.x}"
    extra = _panel_title([decl.panels], values)
    ax.set_title(title + (f" ({extra})" if extra else ""), fontsize=9)


def _sweep_legend(fig, ax, decl: Sweep, modes: list, colors: dict, lines: list) -> None:
    """One entry per mode (its colour) and one per value of ``decl.lines`` (its line style),
    outside the axes, never over the data."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[m], marker="o", label=m) for m in modes]
    if decl.lines:
        handles += [Line2D([], [], color="grey", ls=STYLES[j % len(STYLES)],
                           label=f"{decl.lines} {_value(v)}") for j, v in enumerate(lines)]
    if decl.crossover:
        handles.append(Line2D([], [], marker="*", ms=9, ls="none", color="grey", mec="black",
                              label="crossover: twice the\nsmallest size's value"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0)


def _with_wall(df: pd.DataFrame) -> pd.DataFrame:
    """Seconds since each process's first call (warm-up and compiles included)."""
    key = ["mode", "params"]
    wall = (df["ms"] * df["calls"]).groupby([df[k] for k in key], sort=False).cumsum() / 1e3
    return df.assign(wall_s=wall)


def series(decl: Series, iters: pd.DataFrame, workload: str, path: Path) -> Path | None:
    df = _first_repeat(iters, workload)
    if df.empty or decl.y not in df or df[decl.y].isna().all():
        return None
    df = _with_wall(df)
    if not decl.warmup:
        df = df[df["phase"] == "timed"]
    panels = _panels(df, decl.panels)
    modes = list(dict.fromkeys(df["mode"]))
    values = list(dict.fromkeys(df[f"p_{decl.colour}"])) if decl.colour else []
    colors = _colors(values or modes)
    columns = min(2, len(panels))           # two panels a row: a strip of four is unreadable
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.8 * columns + 1.6, 3.6 * rows),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        _series_lines(ax, decl, _select(df, decl.panels, panel), modes, colors)
        _series_axes(ax, decl, workload, panel)
    _series_legend(axes[0][-1], decl, modes, values, colors)
    return _save(fig, path)


def _series_lines(ax, decl: Series, sub: pd.DataFrame, modes: list, colors: dict) -> None:
    """One line per mode and parameter set in a panel, its GC runs and spikes marked."""
    for (mode, _), g in sub.groupby(["mode", "params"], sort=False):
        value = g[f"p_{decl.colour}"].iloc[0] if decl.colour else None
        color = colors[value if decl.colour else mode]
        style = (dict(ls=STYLES[modes.index(mode) % len(STYLES)]) if decl.colour
                 else dict(ls="-", marker=".", ms=3))
        ax.plot(g[decl.x], g[decl.y], lw=1, color=color, alpha=0.8,
                label=None if decl.colour else mode, **style)
        if decl.marks:
            gcs = g[g["gc_collections"] > 0]
            ax.scatter(gcs[decl.x], gcs[decl.y], marker="o", facecolors="none",
                       edgecolors=color, s=40)
            spikes = g[g["spike"].fillna(False).astype(bool)]
            ax.scatter(spikes[decl.x], spikes[decl.y], marker="x", color="red", s=40,
                       zorder=3)


def _series_axes(ax, decl: Series, workload: str, panel) -> None:
    """A panel's scales, ticks, labels and title."""
    ax.set_xscale("log" if decl.log_x else "linear")
    ax.set_yscale("log" if decl.log_y else "linear")
    if decl.x == "iteration":
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if decl.log_y:
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain if _decades(ax) < 1 else
                                     matplotlib.ticker.NullFormatter())
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel({"iteration": "call (step) number",
                   "wall_s": "seconds since the first call (compiles included)"}[decl.x]
                  + ("" if decl.warmup else ", warm-up excluded"))
    ax.set_ylabel(decl.ylabel or ("ms per call" if decl.y == "ms" else decl.y))
    extra = _panel_title(decl.panels, panel)
    ax.set_title((decl.title or f"{workload}: {decl.y}") + (f" ({extra})" if extra else ""),
                 fontsize=9)


def _series_legend(ax, decl: Series, modes: list, values: list, colors: dict) -> None:
    """Beside the first row's last panel: colours by parameter value and line styles by mode,
    or the modes with what the marks mean."""
    beside = dict(fontsize=7, bbox_to_anchor=(1.02, 1.0), borderaxespad=0)   # off the data
    if decl.colour:
        first = ax.legend([plt.Line2D([], [], color=colors[v]) for v in values],
                          [f"{decl.colour} {_value(v)}" for v in values],
                          loc="upper left", **beside)
        ax.add_artist(first)
        ax.legend([plt.Line2D([], [], color="gray", ls=STYLES[i % len(STYLES)])
                   for i in range(len(modes))], modes, loc="lower left",
                  **{**beside, "bbox_to_anchor": (1.02, 0.0)})
    else:
        ax.legend(title="o = GC ran, x = spike" if decl.marks else None,
                  title_fontsize=7, loc="upper left", **beside)


def _decades(ax) -> float:
    """How many powers of ten a log axis spans (under one: its minor ticks need labels)."""
    low, high = ax.get_ylim()
    return float(np.log10(high / low)) if low > 0 else np.inf


LOG_SPAN = 20.0     # a bar chart's axis goes log only where its values span more than this


def bars(decl: Bars, cells: pd.DataFrame, workload: str, path: Path) -> Path | None:
    """One bar per mode in each group, with the quartiles of its samples where the statistic
    is the median time. A log axis (where the workload allows one) only when the values span
    more than ``LOG_SPAN``: on a log axis a bar's length means nothing, so a narrow range is
    drawn linear from 0."""
    df = _ok(cells, workload)
    if df.empty or decl.y not in df or df[decl.y].dropna().empty:
        return None
    key = "params" if decl.groups == "params" else f"p_{decl.groups}"
    groups = list(dict.fromkeys(df[key]))
    modes = list(dict.fromkeys(df["mode"]))
    colors = _colors(modes)
    width = 0.8 / len(modes)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(modes) / 3) + 2), 4))
    for j, mode in enumerate(modes):
        g = df[df["mode"] == mode].set_index(key)
        shown = [v for v in groups if v in g.index]
        xs = [groups.index(v) + (j - (len(modes) - 1) / 2) * width for v in shown]
        rows = g.loc[shown]
        spread = quartile_bars(rows) if decl.y == "median_ms" and "q1_ms" in rows else None
        ax.bar(xs, rows[decl.y], width, color=colors[mode], label=mode, yerr=spread,
               error_kw={"lw": 0.8, "capsize": 2})
    values = df[decl.y].dropna()
    log_y = decl.log_y and values.min() > 0 and values.max() / values.min() > LOG_SPAN
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([_value(v) for v in groups], fontsize=8)
    ax.set_xlabel("" if decl.groups == "params" else decl.groups)
    ax.set_ylabel(decl.ylabel + (" (log scale)" if log_y else ""), fontsize=8)
    ax.set_title((decl.title or f"{workload}: {decl.ylabel}")
                 + ("\n(whiskers: the samples' quartiles)" if spread is not None else ""),
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def figures(declarations: dict, cells: pd.DataFrame, iters: pd.DataFrame,
            out: Path) -> list[Path]:
    """Every declared figure the run's data supports."""
    made = []
    for workload, decls in declarations.items():
        drawn = [d for d in decls if isinstance(d, (Sweep, Series, Bars))]
        for i, decl in enumerate(drawn):
            path = out / (decl.file or f"{workload}_{i + 1}.png")
            if isinstance(decl, Sweep):
                made.append(sweep(decl, cells, workload, path))
            elif isinstance(decl, Series):
                made.append(series(decl, iters, workload, path))
            else:
                made.append(bars(decl, cells, workload, path))
    return [p for p in made if p is not None]


# --- tables ------------------------------------------------------------------------------------

def _final(iters: pd.DataFrame, workload: str) -> pd.DataFrame | None:
    """Per (mode, params): the loss after the last call and the seconds all calls took."""
    df = _first_repeat(iters, workload)
    if df.empty or "loss" not in df:
        return None
    rows = [{"mode": mode, "params": params, "final_loss": g["loss"].iloc[-1],
             "total_s": (g["ms"] * g["calls"]).sum() / 1e3}
            for (mode, params), g in df.groupby(["mode", "params"], sort=False)]
    return pd.DataFrame(rows)


def _by_rest(df: pd.DataFrame, name: str):
    """(the other parameters as a label, rows): one table per setting of the parameters other
    than ``name``, so that no two settings are merged into one table cell."""
    rest = df["params"].map(lambda p: " ".join(kv for kv in p.split()
                                               if not kv.startswith(name + "=")))
    yield from df.groupby(rest, sort=False)


def pivot(decl: Pivot, cells: pd.DataFrame, iters: pd.DataFrame, workload: str) -> list:
    df = _ok(cells, workload)
    index = f"p_{decl.index}"
    if df.empty or index not in df:
        return []
    value = decl.value
    if value in ("final_loss", "final_loss_and_time"):
        last = _final(iters, workload)
        if last is None:
            return []
        df = df.merge(last, on=["params", "mode"], how="left")
        if value == "final_loss_and_time":
            df = df.assign(final_loss_and_time=df["final_loss"].map("{:.3g}".format) + " in "
                           + df["total_s"].map("{:.2f} s".format))
    out = []
    for label, g in _by_rest(df, decl.index):
        table = g.pivot_table(index=index, columns="mode", values=value, aggfunc="first",
                              sort=False)
        table = table[[m for m in dict.fromkeys(g["mode"]) if m in table.columns]]
        fmt = "s" if value == "final_loss_and_time" else decl.fmt
        table = table.map(lambda v, fmt=fmt: "" if pd.isna(v) else format(v, fmt)).reset_index()
        title = f"{workload}: {decl.title or value}" + (f" ({label})" if label else "")
        out.append((title, decl.text, table.rename(columns={index: decl.index})))
    return out


def columns(decl: Columns, cells: pd.DataFrame, workload: str) -> list:
    df = _ok(cells, workload)
    present = [c for c in decl.columns if c in df]
    if df.empty:
        return []
    return [(f"{workload}: {decl.title}", decl.text, df[present].round(3))]


def tables(declarations: dict, cells: pd.DataFrame, iters: pd.DataFrame) -> list:
    """(title, explanation, table) for every declared table the run's data supports."""
    out = []
    for workload, decls in declarations.items():
        for decl in decls:
            if isinstance(decl, Pivot):
                out += pivot(decl, cells, iters, workload)
            elif isinstance(decl, Columns):
                out += columns(decl, cells, workload)
    return out


def crossover_tables(declarations: dict, cells: pd.DataFrame) -> list:
    """(workload, sweep, table) for each sweep that marks its crossover."""
    out = []
    for workload, decls in declarations.items():
        for decl in decls:
            if isinstance(decl, Sweep) and decl.crossover:
                table = crossovers(cells, workload, decl)
                if not table.empty:
                    out.append((workload, decl, table))
    return out

