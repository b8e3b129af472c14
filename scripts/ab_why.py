"""A/B of the why phase on cache-resident cells: the same cells measured with and without
``--why``, in interleaved runs (A, B, A, B, ...), same commit. Prints, per cell, the ratio of the
median per-call times (why / no-why) with a t interval over the pairs of runs, and writes it to
``OUT/ab_why.md``. Usage: python scripts/ab_why.py OUT [PAIRS]"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import eagerbench

MODES = ["torch", "torch-compile", "tf-eager", "tf-graph", "jax", "jax-jit"]
CELLS = [("elementwise", {"size": [10, 100, 1000]}), ("matmul", {"size": [64, 256]})]


def one_run(out: Path, why: bool) -> pd.DataFrame:
    frames = []
    for workload, params in CELLS:
        measured = eagerbench.measure(workload, modes=MODES, params=params, repeat=1,
                                      why=why, limits=False, out=out / workload)
        cells = measured.cells[["workload", "params", "mode", "median_ms"]]
        frames.append(cells)
    return pd.concat(frames)


def main() -> None:
    out, pairs = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rows = []
    for pair in range(pairs):
        for why in ((True, False) if pair % 2 == 0 else (False, True)):
            cells = one_run(out / f"pair{pair}-{'why' if why else 'nowhy'}", why)
            rows.append(cells.assign(pair=pair, why=why))
    data = pd.concat(rows)
    wide = data.pivot_table(index=["workload", "params", "mode", "pair"], columns="why",
                            values="median_ms").dropna()
    logs = np.log(wide[True] / wide[False]).groupby(level=[0, 1, 2])
    table = []
    for key, values in logs:
        n, mean = len(values), values.mean()
        half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        table.append({"workload": key[0], "params": key[1], "mode": key[2], "pairs": n,
                      "why/no-why": np.exp(mean), "low": np.exp(mean - half),
                      "high": np.exp(mean + half)})
    result = pd.DataFrame(table)
    everything = np.log(wide[True] / wide[False])
    overall = np.exp(everything.mean())
    text = (result.to_markdown(index=False, floatfmt=".3f")
            + f"\n\nAll {len(everything)} cell-pairs: geometric mean ratio {overall:.3f}\n")
    (out / "ab_why.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
