"""The eager tax across framework releases: a run with ``--env`` environments, read per
framework as a table (a row per release, a column per cell), a plot (the tax against the
release, with intervals) and sentences (where the tax moved most, with the interval of the
move). Everything comes from the cells table and the run's header."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eagerbench.frameworks.modes import all_modes, graph_twins
from eagerbench.frameworks.modes.base import release
from eagerbench.report import answer, flags
from eagerbench.report import format as fmt
from eagerbench.report.rows import CellRow

Z95 = 1.959964


@dataclass(frozen=True)
class ReleaseTax:
    """One cell's eager tax (eager / graph twin) in one environment."""

    framework: str
    environment: str      # the --env label
    version: str          # the framework's release in it
    ratio: answer.ModeRatio

    @property
    def cell(self) -> str:
        return f"{self.ratio.workload} {self.ratio.params} ({self.ratio.numerator} / " \
               f"{self.ratio.denominator})"


def split_label(label: str) -> tuple[str, str]:
    """``jax-jit @jax==0.4.30`` -> ("jax-jit", "jax==0.4.30"); no environment: ''."""
    mode, _, rest = label.partition(" ")
    envs = [tag[1:] for tag in rest.split() if tag.startswith("@")]
    return mode, (envs[0] if envs else "")


def framework_version(env: dict, label: str, framework: str) -> str:
    """The framework's release in the environment ``label``, from the run's header."""
    packages = ((env.get("environments") or {}).get(label) or {}).get("packages") or {}
    names = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly"), "torch": ("torch",),
             "jax": ("jax",)}.get(framework, (framework,))
    return next((packages[n] for n in names if n in packages), label.split("==")[-1])


def taxes(rows: list[CellRow], env: dict) -> list[ReleaseTax]:
    """Every eager tax measured in an environment: the graph twin's row holds graph / eager
    (``vs_eager``), and the tax is its inverse, interval and flags included."""
    twins = {graph: eager for eager, graph in graph_twins().items()}
    modes = all_modes()
    out = []
    for row in rows:
        mode, label = split_label(row.mode)
        if not row.ok or not label or mode not in twins or row.vs_eager is None:
            continue
        framework = modes[mode].framework
        graph = row.vs_eager
        ratio = answer.ModeRatio(row.workload, row.params, twins[mode], mode, 1 / graph.value,
                                 1 / graph.hi, 1 / graph.lo,
                                 tuple(flags.ratio_flags(row, "vs_eager")))
        out.append(ReleaseTax(framework, label, framework_version(env, label, framework), ratio))
    return out


@dataclass(frozen=True)
class ReleaseTime:
    """One mode's time in one environment, per op where the workload counts its ops (per
    step otherwise), with its 95% interval over processes."""

    framework: str
    environment: str
    version: str
    cell: str             # workload and parameters
    mode: str
    twin: str             # the eager mode of the pair it belongs to
    value: float
    lo: float
    hi: float
    per_op: bool

    def text(self) -> str:
        unit = (lambda v: f"{fmt.significant(v * 1e3)}") if self.per_op else fmt.duration
        if not np.isfinite(self.lo):
            return unit(self.value)
        return f"{unit(self.value)} [{unit(self.lo)}, {unit(self.hi)}]"


def times(rows: list[CellRow], env: dict) -> list[ReleaseTime]:
    """Each eager mode's and graph twin's time per environment, apart: what a tax (their
    quotient) cannot show, a release slower in both."""
    pairs = graph_twins()
    twin_of = {**{eager: eager for eager in pairs}, **{g: e for e, g in pairs.items()}}
    modes = all_modes()
    out = []
    for row in rows:
        mode, label = split_label(row.mode)
        if not row.ok or not label or mode not in twin_of:
            continue
        framework = modes[mode].framework
        per_op = bool(row.ops_per_call)
        scale = 1 / row.ops_per_call if per_op else 1.0    # ms per op, or per step
        out.append(ReleaseTime(framework, label, framework_version(env, label, framework),
                               f"{row.workload} {row.params}", mode, twin_of[mode],
                               row.median_ms * scale, row.median_lo_ms * scale,
                               row.median_hi_ms * scale, per_op))
    return out


def time_tables(found: list[ReleaseTime]) -> dict[str, pd.DataFrame]:
    """Per framework: a row per release, a column per cell and mode (the eager mode, then its
    graph twin), each time with its interval."""
    out = {}
    for framework in dict.fromkeys(t.framework for t in found):
        mine = [t for t in found if t.framework == framework]
        versions = sorted({t.version for t in mine}, key=release)
        columns = list(dict.fromkeys((t.cell, t.mode, t.per_op) for t in
                                     sorted(mine, key=lambda t: t.mode != t.twin)))
        by = {(t.version, t.cell, t.mode): t for t in mine}
        out[framework] = pd.DataFrame([{"release": f"{framework} {v}", **{
            f"{cell} {mode} ({'us per op' if per_op else 'per step'})":
                by[(v, cell, mode)].text() if (v, cell, mode) in by else ""
            for cell, mode, per_op in columns}} for v in versions])
    return out


def _time_change(before: ReleaseTime, after: ReleaseTime) -> tuple[float, float, float]:
    """after / before with its 95% interval (independent processes: log variances add)."""
    change = after.value / before.value
    se = float(np.hypot(*(np.log(t.hi / t.lo) / (2 * Z95) for t in (before, after))))
    return change, change * np.exp(-Z95 * se), change * np.exp(Z95 * se)


def _pair_ends(mine: list[ReleaseTime], cell: str, eager: str, graph: str):
    """The oldest and newest release with both modes of a pair measured on ``cell``: their
    four times, or None."""
    by = {(t.version, t.mode): t for t in mine if t.cell == cell}
    both = sorted({v for v, m in by if m == eager and (v, graph) in by}, key=release)
    if len(both) < 2:
        return None
    return (by[(both[0], eager)], by[(both[0], graph)], by[(both[-1], eager)],
            by[(both[-1], graph)])


def hidden_sentences(found: list[ReleaseTime]) -> list[str]:
    """Per framework, from the oldest to the newest release with both modes: the cell whose
    eager mode and graph twin both got significantly slower (or faster), by the most, in a
    sentence that says what the tax, their quotient, hid."""
    lines = []
    for framework in dict.fromkeys(t.framework for t in found):
        mine = [t for t in found if t.framework == framework]
        moved = []
        for cell, eager, graph in dict.fromkeys((t.cell, t.twin, t.mode) for t in mine
                                                if t.mode != t.twin):
            ends = _pair_ends(mine, cell, eager, graph)
            if ends is None:
                continue
            e_change, g_change = _time_change(ends[0], ends[2]), _time_change(ends[1], ends[3])
            if all(c[1] > 1 for c in (e_change, g_change)) or \
                    all(c[2] < 1 for c in (e_change, g_change)):
                moved.append((abs(np.log(e_change[0])), ends, e_change, g_change))
        if not moved:
            continue
        _, ends, e_change, g_change = max(moved, key=lambda m: m[0])
        old, new = ends[0], ends[2]
        lines.append(
            f"From {framework} {old.version} to {new.version}, {old.cell}: {old.mode} takes "
            f"{fmt.ratio(*e_change)} and {ends[1].mode} {fmt.ratio(*g_change)} as long "
            f"{'per op' if old.per_op else 'per step'} ({old.text()} -> {new.text()}"
            f"{' us' if old.per_op else ''} eager): both got "
            f"{'slower' if e_change[0] > 1 else 'faster'}, and the eager tax, their quotient, "
            f"moved only {fmt.significant(e_change[0] / g_change[0])}x.")
    return lines


def unavailable(rows: list[CellRow]) -> list[str]:
    """The modes an environment's release lacks, as recorded ('unavailable in jax 0.4.13')."""
    return list(dict.fromkeys(f"{row.mode}: {row.reason}" for row in rows
                              if row.status == "unsupported"
                              and row.reason.startswith("unavailable in")))


def tables(found: list[ReleaseTax]) -> dict[str, pd.DataFrame]:
    """Per framework: a row per release (oldest first), a column per cell, each the tax with
    its interval and flag marks."""
    out = {}
    for framework in dict.fromkeys(t.framework for t in found):
        mine = [t for t in found if t.framework == framework]
        versions = sorted({t.version for t in mine}, key=release)
        cells = list(dict.fromkeys(t.cell for t in mine))
        by = {(t.version, t.cell): t.ratio for t in mine}
        out[framework] = pd.DataFrame(
            [{"release": f"{framework} {v}", **{c: answer.cell_text(by.get((v, c)))
                                               for c in cells}} for v in versions])
    return out


def _log_se(ratio: answer.ModeRatio) -> float:
    return (np.log(ratio.hi) - np.log(ratio.lo)) / (2 * Z95)


def moves(found: list[ReleaseTax]) -> list[dict]:
    """Per framework and cell, the tax's change between consecutive releases: the ratio of
    the two taxes with its 95% interval (the two come from separate processes, so their
    log-scale variances add)."""
    groups: dict[tuple[str, str], list[ReleaseTax]] = {}
    for tax in found:
        groups.setdefault((tax.framework, tax.cell), []).append(tax)
    out = []
    for (framework, cell), taxes_of_cell in groups.items():
        ordered = sorted(taxes_of_cell, key=lambda t: release(t.version))
        for before, after in zip(ordered, ordered[1:]):
            change = after.ratio.value / before.ratio.value
            se = float(np.hypot(_log_se(before.ratio), _log_se(after.ratio)))
            out.append({"framework": framework, "cell": cell, "from": before, "to": after,
                        "change": change, "lo": change * np.exp(-Z95 * se),
                        "hi": change * np.exp(Z95 * se)})
    return out


def sentences(found: list[ReleaseTax]) -> list[str]:
    """Per framework, the release step in which its eager tax moved most (of the steps whose
    interval excludes no change, where there are such), with the interval."""
    lines = []
    for framework in dict.fromkeys(t.framework for t in found):
        steps = [m for m in moves(found) if m["framework"] == framework
                 and np.isfinite(m["change"]) and np.isfinite(m["lo"])]
        if not steps:
            versions = sorted({t.version for t in found if t.framework == framework}, key=release)
            lines.append(f"{framework}: one release measured ({versions[0]}): nothing to "
                         f"compare." if len(versions) < 2 else
                         f"{framework}: releases {', '.join(versions)} have no intervals to "
                         f"compare (one process per cell: --repeat 2 or more).")
            continue
        clear = [m for m in steps if m["lo"] > 1 or m["hi"] < 1]
        top = max(clear or steps, key=lambda m: abs(np.log(m["change"])))
        a, b = top["from"], top["to"]
        verdict = ("" if clear else "; no step's interval excludes no change: within noise")
        lines.append(
            f"{framework}'s eager tax moved most from {a.version} to {b.version}, on "
            f"{top['cell']}: {a.ratio.text(False)} -> {b.ratio.text(False)}, a change of "
            f"{fmt.ratio(top['change'], top['lo'], top['hi'])}"
            f"{verdict}.")
    return lines


def plot(found: list[ReleaseTax], out_dir: Path) -> list[Path]:
    """Per framework, ``releases_<framework>.png``: the eager tax against the release (in
    release order), a line per cell, 95% interval bars, log scale."""
    import matplotlib.ticker

    from eagerbench.report.figures.headline import _colors, _save, plt

    made = []
    for framework in dict.fromkeys(t.framework for t in found):
        mine = [t for t in found if t.framework == framework]
        versions = sorted({t.version for t in mine}, key=release)
        cells = list(dict.fromkeys(t.cell for t in mine))
        colors = _colors(cells)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(versions) + 3), 4.0))
        for k, cell in enumerate(cells):
            points = sorted((t for t in mine if t.cell == cell), key=lambda t: release(t.version))
            xs = [versions.index(t.version) + (k - (len(cells) - 1) / 2) * 0.06 for t in points]
            ys = np.array([t.ratio.value for t in points])
            err = [ys - [t.ratio.lo for t in points], [t.ratio.hi for t in points] - ys]
            ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, lw=1.2, capsize=3,
                        color=colors[cell], label=cell)
        ax.axhline(1.0, color="gray", lw=0.8, ls=":")
        ax.set_yscale("log")
        times = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x")
        low, high = ax.get_ylim()
        ax.yaxis.set_major_formatter(times)     # minor ticks labelled within one decade only
        ax.yaxis.set_minor_formatter(times if high / low < 10 else
                                     matplotlib.ticker.NullFormatter())
        ax.set_xticks(range(len(versions)))
        ax.set_xticklabels(versions, fontsize=8, rotation=30 if len(versions) > 6 else 0)
        ax.set_xlabel(f"{framework} release")
        ax.set_ylabel("eager tax, eager / graph (log scale)")
        ax.set_title(f"{framework}: the eager tax by release (95% intervals over processes)",
                     fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=1,
                  frameon=False)   # under the axes: the cells' names are long
        made.append(_save(fig, out_dir / f"releases_{framework}.png"))
    return made


def environment_lines(env: dict) -> list[str]:
    """Each environment: its requirements, the frameworks' exact releases, and its state."""
    lines = []
    for label, info in (env.get("environments") or {}).items():
        if info.get("failed"):
            lines.append(f"`{label}`: **failed to install**: {info['failed']}")
            continue
        packages = info.get("packages") or {}
        shown = ", ".join(f"{k} {v}" for k, v in packages.items()
                          if k in ("torch", "tensorflow", "tensorflow-cpu", "jax", "jaxlib",
                                   "numpy"))
        notes = "; ".join(info.get("notes") or [])
        lines.append(f"`{label}`: {shown} ({len(packages)} packages, frozen in `env.json`)"
                     + (f"; {notes}" if notes else ""))
    return lines


CHECK = "timeit_check.md"   # written beside the page by scripts/releases_timeit.py


def page(rows: list[CellRow], env: dict, header: str, figures: list[Path],
         folder: Path | None = None) -> str:
    """README.md of a run across releases: per framework its table and plot, the sentences,
    what was unavailable, and the environments (and the independent check, where it was
    run on this folder)."""
    found = taxes(rows, env)
    timed = times(rows, env)
    absolute = time_tables(timed)
    parts = ["# The eager tax across releases", "", header, ""]
    said = sentences(found) + hidden_sentences(timed)
    if said:
        parts += ["## What it says", ""] + [f"- {line}" for line in said] + [""]
    shown = {p.name for p in figures}
    for framework, table in tables(found).items():
        parts += [f"## {framework}", "",
                  "Eager / graph per cell and release, 95% intervals over processes; marks: "
                  + ", ".join(f"({m}) {name}" for name, m in answer.MARKS.items()) + ".", "",
                  table.to_markdown(index=False), ""]
        if f"releases_{framework}.png" in shown:
            parts += [f"![{framework}: the eager tax by release](releases_{framework}.png)", ""]
        if framework in absolute:
            parts += ["Each mode's own time, per release: microseconds per op where the "
                      "workload counts its ops, per step otherwise; 95% intervals over "
                      "processes. A release slower in both modes leaves the tax unmoved.", "",
                      absolute[framework].to_markdown(index=False), ""]
    missing = unavailable(rows)
    if missing:
        parts += ["## Not in every release", ""] + [f"- {line}" for line in missing] + [""]
    failed = [row for row in rows if row.status == "failed"]
    if failed:
        parts += ["## Failed", ""] + [f"- {row.mode} {row.workload} {row.params}: {row.reason}"
                                      for row in failed]
        parts += [""]
    parts += ["## Environments", "", "Each built with uv from the requirement shown (cached "
              "under `~/.cache/eagerbench/envs`); their processes took turns (A B, B A, ...) "
              "so that drift of the host falls on every release alike.", ""]
    parts += [f"- {line}" for line in environment_lines(env)] + [""]
    if folder is not None and (folder / CHECK).is_file():
        parts += [f"The tiny-op time of each framework's oldest and newest release, timed again "
                  f"by a plain timeit loop in its environment: [{CHECK}]({CHECK}).", ""]
    parts += ["How it was measured: [run.md](run.md).", ""]
    return "\n".join(parts)


def terminal(rows: list[CellRow], env: dict) -> str:
    """The answer in the terminal for a run across releases: per framework, a row per release
    and a numbered column per cell (named above the table), each ``2.71x +-4%`` and marks."""
    found = taxes(rows, env)
    lines = []
    for framework in dict.fromkeys(t.framework for t in found):
        mine = [t for t in found if t.framework == framework]
        cells_of = list(dict.fromkeys(t.cell for t in mine))
        versions = sorted({t.version for t in mine}, key=release)
        by = {(t.version, t.cell): t.ratio for t in mine}
        lines.append(f"{framework}: eager tax (eager / graph) by release")
        lines += [f"  [{i + 1}] {cell}" for i, cell in enumerate(cells_of)]
        lines.append((f"  {'release':<12}" + "".join(f"{f'[{i + 1}]':<18}"
                                                     for i in range(len(cells_of)))).rstrip())
        for version in versions:
            shown = []
            for cell in cells_of:
                ratio = by.get((version, cell))
                marks = ratio.marks() if ratio else ""
                shown.append(f"{answer.compact(ratio) + (' ' + marks if marks else ''):<18}")
            lines.append((f"  {version:<12}" + "".join(shown)).rstrip())
        lines.append("")
    lines += sentences(found) + [f"note: {line}" for line in unavailable(rows)]
    return "\n".join(lines) if lines else "no eager tax measured in any environment"
