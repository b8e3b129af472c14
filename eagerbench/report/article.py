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

from eagerbench.report import format as fmt
from eagerbench.report.rows import CellRow


@dataclass(frozen=True)
class Case:
    name: str
    article: float                  # TF eager time / PyTorch time in the article
    source: str                     # where the article's figure comes from
    pick: Callable[[list[CellRow]], list[CellRow]]   # the cells (one per mode) measuring it
    explain: Callable[[list[CellRow]], str]          # its cells -> one sentence


def _ok(rows: list[CellRow], workload: str) -> list[CellRow]:
    return [r for r in rows if r.workload == workload and r.ok]


def _cell(workload: str, **params) -> Callable[[list[CellRow]], list[CellRow]]:
    def pick(rows: list[CellRow]) -> list[CellRow]:
        return [r for r in _ok(rows, workload)
                if all(r.param_values.get(k) == v for k, v in params.items())]
    return pick


def _largest(workload: str, param: str, at_least: float,
             slowest_ms: float = 0.0) -> Callable[[list[CellRow]], list[CellRow]]:
    """The cells at the largest value of ``param`` measured, if it is at least ``at_least`` and
    PyTorch eager takes at least ``slowest_ms`` there (what makes it the article's case)."""
    def pick(rows: list[CellRow]) -> list[CellRow]:
        ok = [r for r in _ok(rows, workload) if param in r.param_values]
        if not ok or max(r.param_values[param] for r in ok) < at_least:
            return []
        largest = max(r.param_values[param] for r in ok)
        mine = [r for r in ok if r.param_values[param] == largest]
        torch_ms = _ms(mine, "torch")
        return mine if torch_ms is None or torch_ms >= slowest_ms else []
    return pick


def _mode(rows: list[CellRow], mode: str) -> Optional[CellRow]:
    return next((r for r in rows if r.mode == mode), None)


def _ms(rows: list[CellRow], mode: str) -> Optional[float]:
    row = _mode(rows, mode)
    return float(row.median_ms) if row else None


def _ratio(rows: list[CellRow], mode: str) -> Optional[float]:
    row = _mode(rows, mode)
    return float(row.slowdown.value) if row and row.slowdown else None


def _f(value: Optional[float], unit: str = "") -> str:
    return "n/a" if value is None else f"{fmt.significant(value)}{unit}"


def _lbfgs(batch_note: str) -> Callable[[list[CellRow]], str]:
    def explain(mine: list[CellRow]) -> str:
        tf, torch_ms = _ratio(mine, "tf-eager"), _ms(mine, "torch")
        thp = _mode(mine, "torch +thp")
        text = (f"PyTorch eager takes {_f(torch_ms, ' ms')} per iteration and TF eager "
                f"{_f(tf, 'x')} of that; {batch_note}")
        if thp is not None and torch_ms:
            text += (f" With transparent huge pages PyTorch takes {_f(thp.median_ms, ' ms')} "
                     f"({_f(thp.median_ms / torch_ms, 'x')})")
            # The finding is the run's own: a run on another VM found huge pages no faster.
            faster = thp.median_ms < torch_ms and bool(thp.vs_eager and thp.vs_eager.significant)
            text += (": its gap is allocating fresh tensors, not dispatch." if faster else
                     ": not significantly faster, so this run cannot say the gap is allocation.")
        return text
    return explain


def _tiny_add(mine: list[CellRow]) -> str:
    per_op = {r.mode: r.us_per_op for r in mine if r.mode in ("torch", "tf-eager")}
    return (f"2017 on a GPU: 6 us per add in PyTorch, 35 in TF eager (122 in classic TF). Now "
            f"{_f(per_op.get('torch'), ' us')} and {_f(per_op.get('tf-eager'), ' us')}: the cost "
            f"of one op issued from Python, which compiled modes remove.")


def _big_add(mine: list[CellRow]) -> str:
    gbps = [r.gbps for r in mine]
    spread = (min(gbps), max(gbps)) if gbps else (np.nan, np.nan)
    return (f"A 1 GB add is memory traffic: every mode streams {_f(spread[0])} to "
            f"{_f(spread[1])} GB/s, so dispatch no longer matters (2017: 14.5 ms in PyTorch, "
            f"25.2 in TF eager, 12.8 in classic TF).")


def _matmul(mine: list[CellRow]) -> str:
    rates = {r.mode: r.gflops for r in mine}
    best = max(rates, key=lambda m: rates[m]) if rates else None
    return (f"Long products are the math library's: {_f(rates.get('torch'))} GFLOP/s in "
            f"PyTorch, {_f(rates.get('tf-eager'))} in TF eager, best {best} "
            f"({_f(rates.get(best) if best else None)}); the ratio reflects oneDNN, Eigen and "
            f"XLA, not the eager tax.")


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


def table(rows: list[CellRow], modes: list[str]) -> pd.DataFrame:
    """One row per case measured in this run: the article's ratio, today's per mode."""
    out = []
    for case in CASES:
        mine = case.pick(rows)
        if not mine:
            continue
        line = {"case (cell)": f"{case.name} ({mine[0].params})",
                "2017, TF eager / PyTorch": f"{case.article:g}x ({case.source})"}
        for mode in modes:
            row = _mode(mine, mode)
            line[mode] = (fmt.ratio(row.slowdown.value, row.slowdown.lo, row.slowdown.hi)
                          if row and row.slowdown else "")
        line["what changed"] = case.explain(mine)
        out.append(line)
    return pd.DataFrame(out)
