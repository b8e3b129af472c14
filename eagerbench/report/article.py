"""The 2017 article's measurements beside today's: the table that opens a run's README.

Each case the article measured (``../shared/REFERENCE.md``) names the cell that measures it
today; its row shows the article's TensorFlow-eager/PyTorch ratio (on a GPU, 2017), today's
ratio to PyTorch eager of every mode with its interval, and one sentence on what changed, made
from the measured numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd

from eagerbench.report import stats


@dataclass(frozen=True)
class Case:
    name: str
    article: float                  # TF eager time / PyTorch time in the article
    source: str                     # where the article's figure comes from
    pick: Callable[[pd.DataFrame], pd.DataFrame]   # the cells (one per mode) measuring it
    explain: Callable[[pd.DataFrame, pd.DataFrame], str]   # (its cells, every cell) -> sentence


def _cell(workload: str, **params) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def pick(cells: pd.DataFrame) -> pd.DataFrame:
        mask = (cells["workload"] == workload) & (cells["status"] == "ok")
        for k, v in params.items():
            if f"p_{k}" not in cells:
                return cells.iloc[0:0]
            mask &= cells[f"p_{k}"] == v
        return cells[mask]
    return pick


def _largest(workload: str, param: str, at_least: float,
             slowest_ms: float = 0.0) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The cells at the largest value of ``param`` measured, if it is at least ``at_least`` and
    PyTorch eager takes at least ``slowest_ms`` there (what makes it the article's case)."""
    def pick(cells: pd.DataFrame) -> pd.DataFrame:
        ok = cells[(cells["workload"] == workload) & (cells["status"] == "ok")]
        if ok.empty or ok[f"p_{param}"].max() < at_least:
            return ok.iloc[0:0]
        mine = ok[ok[f"p_{param}"] == ok[f"p_{param}"].max()]
        torch_ms = _ms(mine, "torch")
        return mine if torch_ms is None or torch_ms >= slowest_ms else mine.iloc[0:0]
    return pick


def _ms(cells: pd.DataFrame, mode: str) -> Optional[float]:
    row = cells[cells["mode"] == mode]
    return float(row["median_ms"].iloc[0]) if len(row) else None


def _ratio(cells: pd.DataFrame, mode: str) -> Optional[float]:
    row = cells[cells["mode"] == mode]
    return float(row["slowdown"].iloc[0]) if len(row) else None


def _f(value: Optional[float], unit: str = "") -> str:
    return "n/a" if value is None else f"{stats.significant_figures(value)}{unit}"


def _lbfgs(batch_note: str) -> Callable[[pd.DataFrame, pd.DataFrame], str]:
    def explain(mine: pd.DataFrame, cells: pd.DataFrame) -> str:
        tf, torch_ms = _ratio(mine, "tf-eager"), _ms(mine, "torch")
        thp = _ms(mine, "torch +thp")
        text = (f"PyTorch eager takes {_f(torch_ms, ' ms')} per iteration and TF eager "
                f"{_f(tf, 'x')} of that; {batch_note}")
        if thp is not None and torch_ms:
            text += (f" With transparent huge pages PyTorch takes {_f(thp, ' ms')} "
                     f"({_f(thp / torch_ms, 'x')})")
            # The finding is the run's own: a run on another VM found huge pages no faster.
            faster = thp < torch_ms and bool(
                mine.loc[mine["mode"] == "torch +thp", "vs_eager_significant"].iloc[0])
            text += (": its gap is allocating fresh tensors, not dispatch." if faster else
                     ": not significantly faster, so this run cannot say the gap is allocation.")
        return text
    return explain


def _tiny_add(mine: pd.DataFrame, cells: pd.DataFrame) -> str:
    per_op = {m: float(mine.loc[mine["mode"] == m, "us_per_op"].iloc[0])
              for m in ("torch", "tf-eager") if (mine["mode"] == m).any()}
    return (f"2017 on a GPU: 6 us per add in PyTorch, 35 in TF eager (122 in classic TF). Now "
            f"{_f(per_op.get('torch'), ' us')} and {_f(per_op.get('tf-eager'), ' us')}: the cost "
            f"of one op issued from Python, which compiled modes remove.")


def _big_add(mine: pd.DataFrame, cells: pd.DataFrame) -> str:
    gbps = {m: float(g) for m, g in zip(mine["mode"], mine["gbps"])}
    spread = (min(gbps.values()), max(gbps.values())) if gbps else (np.nan, np.nan)
    return (f"A 1 GB add is memory traffic: every mode streams {_f(spread[0])} to "
            f"{_f(spread[1])} GB/s, so dispatch no longer matters (2017: 14.5 ms in PyTorch, "
            f"25.2 in TF eager, 12.8 in classic TF).")


def _matmul(mine: pd.DataFrame, cells: pd.DataFrame) -> str:
    rates = {m: float(g) for m, g in zip(mine["mode"], mine["gflops"])}
    best = max(rates, key=rates.get) if rates else None
    return (f"Long products are the math library's: {_f(rates.get('torch'))} GFLOP/s in "
            f"PyTorch, {_f(rates.get('tf-eager'))} in TF eager, best {best} "
            f"({_f(rates.get(best))}); the ratio reflects oneDNN, Eigen and XLA, not the eager tax.")


CASES = (
    Case("l-BFGS, batch 60k, history 5", 1.4, "article text", _cell("lbfgs", history=5,
                                                                     batch=60000),
         _lbfgs("at this batch five matmuls of 60,000 x 784 x 196 dominate.")),
    Case("l-BFGS, batch 60k, history 100", 2.5, "article text (its notebook: 44.3 / 28.0 ms)",
         _cell("lbfgs", history=100, batch=60000),
         _lbfgs("the 1,200 small ops of a full memory add little beside the matmuls.")),
    Case("l-BFGS, batch 10k, history 100", 4.96, "notebook: 70.0 / 14.1 ms, median",
         _cell("lbfgs", history=100, batch=10000),
         _lbfgs("here the full memory's 1,200 small ops per iteration are a larger share.")),
    Case("in-place add, tiny vectors", 5.8, "35 / 6 us per add", _cell("elementwise", size=10),
         _tiny_add),
    Case("in-place add, 1 GB vectors", 1.74, "25.2 / 14.5 ms per add",
         _largest("elementwise", "size", 2**26), _big_add),   # 256 MiB or more: far past caches
    Case("matmul over 1 ms per product", 1.0, "article text",
         _largest("matmul", "size", 0, slowest_ms=1.0), _matmul),
)


def table(cells: pd.DataFrame, modes: list[str]) -> pd.DataFrame:
    """One row per case measured in this run: the article's ratio, today's per mode."""
    from eagerbench.report.tables import fmt_ratio

    rows = []
    if "status" not in cells:
        return pd.DataFrame()
    for case in CASES:
        mine = case.pick(cells)
        if mine.empty:
            continue
        row = {"case (cell)": f"{case.name} ({mine['params'].iloc[0]})",
               "2017, TF eager / PyTorch": f"{case.article:g}x ({case.source})"}
        for mode in modes:
            r = mine[mine["mode"] == mode]
            row[mode] = (fmt_ratio(r["slowdown"].iloc[0], r["slowdown_lo"].iloc[0],
                                   r["slowdown_hi"].iloc[0]) if len(r) else "")
        row["what changed"] = case.explain(mine, cells)
        rows.append(row)
    return pd.DataFrame(rows)
