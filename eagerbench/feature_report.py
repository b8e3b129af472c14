"""The gradient-feature workloads' part of a report: their figures (PNG) and pivot tables.

``higher-order`` (time against derivative order), ``custom-gradient`` (the article's loss curves of
the plain and the noisy square), ``kfac`` (loss against iteration and against wall time, per
optimizer) and ``convnet`` (time per training step and compile cost).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from eagerbench.plots import _colors, _save, plt, quartile_bars

STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3))]


def _ok(cells: pd.DataFrame, workload: str) -> pd.DataFrame:
    return cells[(cells["workload"] == workload) & (cells["status"] == "ok")]


def _first_repeat(iters: pd.DataFrame, workload: str) -> pd.DataFrame:
    if iters.empty or "workload" not in iters:
        return iters
    return iters[(iters["workload"] == workload) & (iters["repeat"] == 0)]


def _curves(df: pd.DataFrame, key: str):
    """Loss-curve layout: the values of ``key`` (one colour each), the modes (one line style
    each) and, per (value, mode), its iterations with the line style to draw them in."""
    values = list(dict.fromkeys(df[key]))
    colors = _colors(values)
    modes = list(dict.fromkeys(df["mode"]))
    curves = [(g, dict(lw=1, color=colors[v], ls=STYLES[modes.index(m) % len(STYLES)]))
              for (v, m), g in df.groupby([key, "mode"], sort=False)]
    return values, colors, modes, curves


def higher_order(cells: pd.DataFrame, out: Path) -> Path | None:
    """Median time of the n-th derivative against n, one line per mode (log scale)."""
    df = _ok(cells, "higher-order")
    if df.empty:
        return None
    sizes = sorted(df["p_size"].unique())
    colors = _colors(list(dict.fromkeys(df["mode"])))
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        for mode, g in df[df["p_size"] == size].groupby("mode", sort=False):
            g = g.sort_values("p_order")
            ax.errorbar(g["p_order"], g["median_ms"],
                        yerr=quartile_bars(g),
                        marker="o", capsize=2, color=colors[mode], label=mode)
        ax.set_yscale("log")
        ax.set_xlabel("derivative order n")
        ax.set_ylabel("median ms per n-th derivative (log)")
        ax.set_title(f"higher-order: d^n tanh / dx^n at {int(size)} points", fontsize=9)
    axes[0][0].legend(fontsize=7)
    return _save(fig, out / "higher_order.png")


def custom_gradient(cells: pd.DataFrame, iters: pd.DataFrame, out: Path) -> Path | None:
    """The article's figure (loss of training with the plain and the noisy square, every mode),
    beside the median time per training step of each square in each mode."""
    df = _first_repeat(iters, "custom-gradient")
    ok = _ok(cells, "custom-gradient")
    if ok.empty or df.empty or "loss" not in df:
        return None
    # One setting of the other parameters (batch, noise): the first measured.
    label, ok = next(_by_rest(ok, "p_square"))
    df = df[df["params"].isin(set(ok["params"]))]
    squares, colors, modes, curves = _curves(df, "p_square")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for g, style in curves:
        left.plot(g["iteration"], g["loss"], alpha=0.7, **style)
    left.set_yscale("log")
    left.set_xlabel("gradient-descent step (warm-up included)")
    left.set_ylabel("training loss (MSE)")
    left.set_title(f"custom gradient: plain vs noisy square, {label} (one line per mode)",
                   fontsize=9)
    left.legend([plt.Line2D([], [], color=colors[s]) for s in squares], squares, fontsize=8)
    width = 0.8 / len(squares)
    for j, square in enumerate(squares):
        sub = ok[ok["p_square"] == square].set_index("mode")
        xs = [i + (j - (len(squares) - 1) / 2) * width for i, m in enumerate(modes)
              if m in sub.index]
        right.bar(xs, [sub.loc[m, "median_ms"] for m in modes if m in sub.index], width,
                  color=colors[square], label=square)
    right.set_yscale("log")
    right.set_xticks(range(len(modes)))
    right.set_xticklabels(modes, fontsize=7, rotation=30)
    right.set_ylabel("median ms per training step (log)")
    right.set_title("time per step: built-in, custom and noisy gradient", fontsize=9)
    right.legend(fontsize=8)
    return _save(fig, out / "custom_gradient.png")


def kfac(iters: pd.DataFrame, out: Path) -> Path | None:
    """Loss against iteration and against wall time (first call included) per optimizer; one
    line per mode, which lie on top of each other against iteration."""
    df = _first_repeat(iters, "kfac")
    if df.empty or "loss" not in df:
        return None
    optimizers, colors, modes, curves = _curves(df, "p_optimizer")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for g, style in curves:
        left.plot(g["iteration"], g["loss"], **style)
        right.plot((g["ms"] * g["calls"]).cumsum() / 1e3, g["loss"], **style)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_ylabel("training loss (MSE)")
    left.set_xlabel("iteration (warm-up included)")
    right.set_xscale("log")
    right.set_xlabel("wall time, s (log; the first call's compilation included)")
    left.set_title("kfac: loss per iteration (every mode)", fontsize=9)
    right.set_title("kfac: loss against time spent", fontsize=9)
    first = left.legend([plt.Line2D([], [], color=colors[o]) for o in optimizers], optimizers,
                        fontsize=8, loc="upper right")
    left.add_artist(first)
    right.legend([plt.Line2D([], [], color="gray", ls=STYLES[i % len(STYLES)])
                  for i in range(len(modes))], modes, fontsize=7, loc="lower left")
    return _save(fig, out / "kfac.png")


def convnet(cells: pd.DataFrame, out: Path) -> Path | None:
    """Median time per training step and first-call time of the small ResNet, per mode."""
    df = _ok(cells, "convnet")
    if df.empty:
        return None
    colors = _colors(list(dict.fromkeys(df["mode"])))
    groups = list(dict.fromkeys(df["params"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column, label in ((axes[0], "median_ms", "median ms per training step"),
                              (axes[1], "compile_ms", "compile cost, ms (every warm-up call over "
                                                      "the steady state)")):
        width = 0.8 / max(df["mode"].nunique(), 1)
        for j, (mode, g) in enumerate(df.groupby("mode", sort=False)):
            g = g.set_index("params")
            xs = [i + (j - (df["mode"].nunique() - 1) / 2) * width
                  for i, p in enumerate(groups) if p in g.index]
            ax.bar(xs, [g.loc[p, column] for p in groups if p in g.index], width,
                   color=colors[mode], label=mode)
        ax.set_yscale("log")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=8)
        ax.set_ylabel(label + " (log)")
    axes[0].set_title("convnet: one SGD step of a small ResNet", fontsize=9)
    axes[1].set_title("convnet: cost of compiling (tracing included)", fontsize=9)
    axes[0].legend(fontsize=7)
    return _save(fig, out / "convnet.png")


def figures(cells: pd.DataFrame, iters: pd.DataFrame, out: Path) -> list[Path]:
    """Every gradient-feature figure the run's data supports."""
    made = [higher_order(cells, out), custom_gradient(cells, iters, out), kfac(iters, out),
            convnet(cells, out)]
    return [p for p in made if p is not None]


def _pivot(df: pd.DataFrame, index: str, value: str, fmt: str) -> pd.DataFrame:
    table = df.pivot_table(index=index, columns="mode", values=value, aggfunc="first", sort=False)
    table = table[[m for m in dict.fromkeys(df["mode"]) if m in table.columns]]
    table = table.map(lambda v: "" if pd.isna(v) else format(v, fmt)).reset_index()
    return table.rename(columns={index: index.removeprefix("p_")})


def _by_rest(df: pd.DataFrame, key: str):
    """(the other parameters as a label, rows): one pivot table per setting of the parameters
    other than the pivoted one, so that no two settings are merged into one cell."""
    rest = df["params"].map(lambda p: " ".join(kv for kv in p.split()
                                               if not kv.startswith(key[2:] + "=")))
    for label, g in df.groupby(rest, sort=False):
        yield label, g


def tables(cells: pd.DataFrame, iters: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, explanation, table) for each gradient-feature workload that was measured."""
    out = []
    for label, g in _by_rest(_ok(cells, "higher-order"), "p_order"):
        out.append((f"higher-order: ms per n-th derivative ({label})",
                    "Median ms to compute the n-th derivative of tanh, by mode. Each mode's "
                    "orders ran interleaved in one process.",
                    _pivot(g, "p_order", "median_ms", ".3g")))
    last = _final_losses(iters, "custom-gradient")
    for label, g in _by_rest(_ok(cells, "custom-gradient"), "p_square"):
        out.append((f"custom-gradient: ms per training step ({label})",
                    "Median ms per gradient-descent step with each square (`custom` is the exact "
                    "gradient through the custom-gradient facility), by mode.",
                    _pivot(g, "p_square", "median_ms", ".3g")))
        if last is not None:
            g = g.merge(last, on=["params", "mode"], how="left")
            out.append((f"custom-gradient: loss after the last step ({label})",
                        "The noisy square's curves differ between frameworks (each uses its own "
                        "random numbers); plain and custom agree.",
                        _pivot(g, "p_square", "final_loss", ".4g")))
    last = _final_losses(iters, "kfac")
    for label, g in _by_rest(_ok(cells, "kfac"), "p_optimizer"):
        out.append((f"kfac: ms per iteration ({label})",
                    "Median ms per training iteration of each optimizer, by mode.",
                    _pivot(g, "p_optimizer", "median_ms", ".3g")))
        if last is not None:
            g = g.merge(last, on=["params", "mode"], how="left")
            out.append((f"kfac: loss after the last iteration and total wall time ({label})",
                        "Loss after every iteration ran (warm-up included), and the seconds "
                        "they took in all, first call included.",
                        _pivot(g.assign(cell=g["final_loss"].map("{:.3g}".format) + " in "
                                        + g["total_s"].map("{:.2f} s".format)),
                               "p_optimizer", "cell", "s")))
    cn = _ok(cells, "convnet")
    if not cn.empty:
        cols = ["params", "mode", "median_ms", "gflops", "vs_eager", "compile_ms"]
        table = cn[cols].rename(columns={"median_ms": "median ms", "gflops": "GFLOP/s",
                                         "vs_eager": "vs eager twin",
                                         "compile_ms": "compile ms"})
        out.append(("convnet: one training step",
                    "Median ms per SGD step of the small ResNet, achieved GFLOP/s "
                    "(convolutions, forward and backward), ratio to the same framework's "
                    "eager mode, and the compile cost (every warm-up call over the steady "
                    "state: torch.compile compiles this step again on its second call).",
                    table.round(3)))
    return out


def _final_losses(iters: pd.DataFrame, workload: str) -> pd.DataFrame | None:
    """Per (mode, params): the loss after the last iteration and the seconds all took."""
    df = _first_repeat(iters, workload)
    if df.empty or "loss" not in df:
        return None
    rows = []
    for (mode, params), g in df.groupby(["mode", "params"], sort=False):
        rows.append({"mode": mode, "params": params, "final_loss": g["loss"].iloc[-1],
                     "total_s": (g["ms"] * g["calls"]).sum() / 1e3})
    return pd.DataFrame(rows)
