"""Statistics of measured cells: per-process summaries, intervals that include what varies
between processes, noise and bimodality flags. Pure functions of the samples.

The model. A cell is measured in ``n`` processes (``--repeat``, 2 by default); within process
``p`` its per-call times scatter around a level that itself moves from process to process
(address-space layout, page placement, thread placement, clocks: the same torch call took 1,502
ms in one process and 854 ms in another here). The cell's time is the geometric mean of its
processes' medians, and its uncertainty is the spread of those medians (on a log scale), which
contains both the process effect and the noise of each median.

With two or three processes a cell's own spread is a poor estimate (one or two degrees of
freedom), and a bootstrap over so few processes is far too narrow: resampling two processes
cannot show more spread than the two showed. So each cell's spread is moderated the way limma
moderates per-gene variances (Smyth 2004): its own variance and the variance pooled over the
other cells of the same mode in the run, weighted by their degrees of freedom, which add up. A
cell whose processes disagree more than the others' gets a wider interval, without the t
quantile of one degree of freedom (12.7). A ratio's interval is then a t interval on the
difference of log times, with Welch-Satterthwaite degrees of freedom. Two cells measured in the same processes (the eager and compiled modes of one
framework share a worker) are compared process by process, so that what the process shifts for
both cancels; the spread of those paired differences is pooled over the same pair of modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import stats as sps

SPIKE_FACTOR = 3.0     # an iteration this many times the median is a spike
NOISY_IQR = 0.10       # IQR / median above this makes a ratio shaky (torch.utils.benchmark's 10%)
DRIFT = 0.20           # the median moving this much between the halves of a process's samples
LEVEL = 0.95


def summarize(ms: np.ndarray) -> dict:
    """Median, quartiles, min, max, p95, mean and std of per-call times in ms."""
    ms = np.asarray(ms, dtype=float)
    if ms.size == 0:
        return {}
    q1, med, q3, p95 = np.percentile(ms, [25, 50, 75, 95])
    return {"n": int(ms.size), "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1,
            "min_ms": ms.min(), "max_ms": ms.max(), "p95_ms": p95, "mean_ms": ms.mean(),
            "std_ms": ms.std(ddof=1) if ms.size > 1 else 0.0,
            "spikes": int(np.sum(ms > SPIKE_FACTOR * med))}


@dataclass(frozen=True)
class Level:
    """A cell's time from its processes: ``logs`` are the log medians, one per process."""

    logs: tuple[float, ...]
    processes: tuple[str, ...]      # the process of each median (pairs cells by process)

    @property
    def n(self) -> int:
        return len(self.logs)

    @property
    def estimate(self) -> float:
        return float(np.exp(np.mean(self.logs)))

    def spread(self) -> float:
        """Largest over smallest process median, minus 1 (0 with one process)."""
        return float(np.exp(max(self.logs) - min(self.logs)) - 1.0) if self.logs else np.nan


def level(per_process: list[np.ndarray], processes: list[str]) -> Optional[Level]:
    """The level of a cell from each process's per-call times (processes with none dropped)."""
    kept = [(float(np.log(np.median(ms))), p) for ms, p in zip(per_process, processes)
            if len(ms)]
    if not kept:
        return None
    return Level(tuple(v for v, _ in kept), tuple(p for _, p in kept))


@dataclass(frozen=True)
class Pool:
    """A variance of log times pooled over cells, with its degrees of freedom."""

    variance: float = 0.0
    df: int = 0

    def add(self, deviations: np.ndarray) -> "Pool":
        """This pool with one more cell's values (their spread about their own mean)."""
        if deviations.size < 2:
            return self
        ss = float(np.sum((deviations - deviations.mean()) ** 2))
        total = self.variance * self.df + ss
        df = self.df + deviations.size - 1
        return Pool(total / df, df)

    def without(self, values: np.ndarray) -> "Pool":
        """This pool less one cell's values (so that a cell is not its own prior)."""
        if values.size < 2 or self.df <= values.size - 1:
            return Pool()
        ss = float(np.sum((values - values.mean()) ** 2))
        df = self.df - (values.size - 1)
        return Pool(max(self.variance * self.df - ss, 0.0) / df, df)


def pooled(levels: list[Level]) -> Pool:
    """The between-process variance pooled over cells (each with two processes or more)."""
    pool = Pool()
    for lv in levels:
        pool = pool.add(np.asarray(lv.logs))
    return pool


def paired_differences(a: Level, b: Level) -> Optional[np.ndarray]:
    """Per process, log a - log b, when both were measured in the same processes."""
    if a.n != b.n or a.n < 1 or set(a.processes) != set(b.processes):
        return None
    where = {p: v for p, v in zip(b.processes, b.logs)}
    return np.array([v - where[p] for p, v in zip(a.processes, a.logs)])


def moderated(values: np.ndarray, pool: Pool) -> tuple[float, int]:
    """The variance of one cell's log times (or paired differences), moderated: its own and
    the pool of the other cells, weighted by degrees of freedom; with those degrees of freedom."""
    own_df = values.size - 1
    own = float(np.var(values, ddof=1)) if own_df > 0 else 0.0
    prior = pool.without(values)
    df = prior.df + own_df
    if df == 0:
        return 0.0, 0
    return (prior.df * prior.variance + own_df * own) / df, df


@dataclass(frozen=True)
class Ratio:
    """``a / b`` with its interval; ``lo``/``hi`` are NaN where no interval can be given."""

    value: float
    lo: float = np.nan
    hi: float = np.nan
    paired: bool = False

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.lo) and (self.lo > 1.0 or self.hi < 1.0))


def ratio(a: Level, b: Level, pool_a: Pool, pool_b: Pool, pool_pair: Optional[Pool] = None,
          level_: float = LEVEL) -> Ratio:
    """The ratio of two cells' times with a t interval that includes process-to-process
    variation (paired when both cells were measured in the same processes)."""
    value = float(np.exp(np.mean(a.logs) - np.mean(b.logs)))
    diffs = paired_differences(a, b)
    if diffs is not None and pool_pair is not None:
        var, df = moderated(diffs, pool_pair)
        se2, paired = var / diffs.size, True
    else:
        var_a, df_a = moderated(np.asarray(a.logs), pool_a)
        var_b, df_b = moderated(np.asarray(b.logs), pool_b)
        va, vb = var_a / a.n, var_b / b.n
        se2, paired = va + vb, False
        parts = [(v, d) for v, d in ((va, df_a), (vb, df_b)) if v > 0]
        df = se2**2 / sum(v**2 / d for v, d in parts) if parts and all(d > 0 for _, d in parts) \
            else 0
    if df <= 0 or se2 <= 0:
        return Ratio(value, paired=paired)
    half = sps.t.ppf(0.5 + level_ / 2, df) * np.sqrt(se2)
    centre = np.log(value)
    return Ratio(value, float(np.exp(centre - half)), float(np.exp(centre + half)), paired)


# --- flags -------------------------------------------------------------------------------------

BIMODAL_RATIO = 2.0    # modes closer than this are what host contention makes (see limits)


def bimodal(ms: np.ndarray, min_share: float = 0.10, valley: float = 0.5,
            ratio_: float = BIMODAL_RATIO) -> Optional[dict]:
    """Two modes in one process's times, or None.

    A Gaussian kernel density of the log times (Silverman's bandwidth, which smooths a
    multimodal sample rather than splitting a unimodal one) with two peaks, each holding at
    least ``min_share`` of the samples, a valley between them lower than ``valley`` times the
    lower peak, and centres at least ``ratio_`` apart: a busy neighbour on a shared host slows
    everything by up to 1.8x for spells of milliseconds to seconds (the machine probe in the
    report measures it), while an idle thread pool waking up costs a 10 us step 10x.
    Returns each mode's share and centre (ms).
    """
    ms = np.asarray(ms, dtype=float)
    if ms.size < 20 or np.ptp(ms) <= 0:
        return None
    logs = np.log(ms)
    try:
        kde = sps.gaussian_kde(logs, bw_method="silverman")
    except (np.linalg.LinAlgError, ValueError):
        return None
    grid = np.linspace(logs.min(), logs.max(), 512)
    density = kde(grid)
    peaks = [i for i in range(1, len(grid) - 1)
             if density[i] >= density[i - 1] and density[i] > density[i + 1]]
    best = None
    for i, j in zip(peaks, peaks[1:]):
        low = i + int(np.argmin(density[i:j + 1]))
        cut = grid[low]
        share = float(np.mean(logs < cut))
        if min(share, 1 - share) < min_share or density[low] > valley * min(density[i],
                                                                               density[j]):
            continue
        depth = min(density[i], density[j]) - density[low]
        if grid[j] - grid[i] < np.log(ratio_):
            continue
        if best is None or depth > best[0]:
            best = (depth, share, cut)
    if best is None:
        return None
    _, share, cut = best
    return {"shares": (share, 1 - share),
            "centres_ms": (float(np.median(ms[logs < cut])), float(np.median(ms[logs >= cut])))}


def noise_warnings(per_process: list[np.ndarray]) -> list[str]:
    """hyperfine-style reasons to distrust a cell's time, from each process's own samples (a
    shift between processes is not noise within one: the interval carries it)."""
    per_process = [np.asarray(ms, dtype=float) for ms in per_process if len(ms)]
    if not per_process:
        return []
    out = []
    total = sum(ms.size for ms in per_process)
    if total < 5:
        return [f"only {total} timed samples"]
    # the typical process (the median over them): one slow spell in one process is spread
    iqr = float(np.median([(np.percentile(ms, 75) - np.percentile(ms, 25)) / np.median(ms)
                           for ms in per_process]))
    if iqr > NOISY_IQR:
        out.append(f"IQR is {100 * iqr:.0f}% of the median")
    spikes = sum(int(np.sum(ms > SPIKE_FACTOR * np.median(ms))) for ms in per_process)
    if spikes:
        out.append(f"{spikes} sample(s) over {SPIKE_FACTOR:g}x the median")
    drifts = []
    for ms in per_process:
        half = ms.size // 2
        if half:
            first, second = np.median(ms[:half]), np.median(ms[half:])
            drifts.append((second - first) / first)
    drift = float(np.median(drifts)) if drifts else 0.0
    if abs(drift) > DRIFT:
        out.append(f"median drifts {100 * drift:+.0f}% from first to second half")
    return out


def significant_figures(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant figures, never rounded to zero (0.00061, 29.9,
    1.02)."""
    if not np.isfinite(value):
        return ""
    return f"{value:#.{digits}g}".rstrip(".") if abs(value) < 10**digits else f"{value:.0f}"
