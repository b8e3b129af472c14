"""Summary statistics of one cell's samples and confidence intervals for ratios between cells."""

from __future__ import annotations

import numpy as np

SPIKE_FACTOR = 3.0     # an iteration this many times the median is a spike
NOISY_IQR = 0.10       # IQR / median above this makes a ratio shaky (torch.utils.benchmark's 10%)


def summarize(ms: np.ndarray) -> dict:
    """Median, quartiles, min, max, p95, mean and std of per-iteration times in ms."""
    ms = np.asarray(ms, dtype=float)
    if ms.size == 0:
        return {}
    q1, med, q3, p95 = np.percentile(ms, [25, 50, 75, 95])
    return {"n": int(ms.size), "median_ms": med, "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1,
            "min_ms": ms.min(), "max_ms": ms.max(), "p95_ms": p95, "mean_ms": ms.mean(),
            "std_ms": ms.std(ddof=1) if ms.size > 1 else 0.0,
            "spikes": int(np.sum(ms > SPIKE_FACTOR * med))}


def ratio_ci(num: np.ndarray, den: np.ndarray, resamples: int = 2000, level: float = 0.95,
             seed: int = 0) -> tuple[float, float, float]:
    """``median(num) / median(den)`` with a percentile-bootstrap interval (each sample set
    resampled independently: the cells ran in different processes)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    ratio = float(np.median(num) / np.median(den))
    if num.size < 2 or den.size < 2:
        return ratio, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    a = np.median(rng.choice(num, size=(resamples, num.size)), axis=1)
    b = np.median(rng.choice(den, size=(resamples, den.size)), axis=1)
    lo, hi = np.percentile(a / b, [50 * (1 - level), 50 * (1 + level)])
    return ratio, float(lo), float(hi)


def noise_warnings(ms: np.ndarray) -> list[str]:
    """hyperfine-style reasons to distrust a cell's median, empty when it looks stable."""
    ms = np.asarray(ms, dtype=float)
    out = []
    if ms.size < 5:
        return [f"only {ms.size} timed iterations"]
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    if (q3 - q1) / med > NOISY_IQR:
        out.append(f"IQR is {100 * (q3 - q1) / med:.0f}% of the median")
    spikes = int(np.sum(ms > SPIKE_FACTOR * med))
    if spikes:
        out.append(f"{spikes} iteration(s) over {SPIKE_FACTOR:g}x the median")
    half = ms.size // 2
    first, second = np.median(ms[:half]), np.median(ms[half:])
    if abs(second - first) / med > 0.2:
        out.append(f"median drifts {100 * (second - first) / first:+.0f}% from first to second half")
    return out
