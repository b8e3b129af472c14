"""Statistics of measured cells: per-process summaries, ratios with intervals that are right
at a handful of processes, and the tests behind the flags. Pure functions of the samples.

The model. A cell is measured in ``n`` processes (``--repeat``); within process ``p`` its
per-call times scatter around a level that itself moves from process to process (address-space
layout, page placement, thread placement, a neighbour on the host: one run's second process ran
21% faster than its first across cells). A cell's time is the geometric mean of its processes'
medians.

A ratio of two cells measured in the same processes (a mode and its eager twin share a worker,
measured back to back) is estimated from the per-process log-ratios ``d_p = log a_p - log b_p``:
a shift that moves every mode of a process cancels in ``d_p`` instead of widening the interval.
Two cells measured in different processes (tf-eager against torch) are compared as the
difference of their mean logs, each with its own between-process variance (Welch).

With five processes a cell's own variance has four degrees of freedom: too few to trust alone,
and one pooled variance for all cells is wrong for most of them (per-cell spread varies 4x and
more). So each variance is moderated as limma moderates per-gene variances (Smyth 2004,
``squeezeVar``): the sample variances of a *class* of cells (one workload's paired ratios, say)
are fitted by a scaled F distribution whose prior degrees of freedom ``d0`` and scale ``s0^2``
are estimated from the run (``fit_prior``); a cell's posterior variance is
``(d0 s0^2 + d s^2) / (d0 + d)`` with ``d0 + d`` degrees of freedom, and its interval is a t
interval with those. A class whose cells agree on their spread (large ``d0``) lends each cell
many degrees of freedom; one whose cells differ lends few, and each cell keeps its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Optional

import numpy as np
from scipy import special
from scipy import stats as sps

SPIKE_FACTOR = 3.0     # an iteration this many times the median is a spike
LEVEL = 0.95
IMPRECISE = 0.10       # an interval's half-width over this share of the ratio
DISAGREE_P = 0.01      # Cochran's Q p-value under which a cell's processes disagree
BIMODAL_MIN_SAMPLES = 30
MIN_CLASS = 5          # cells with a variance a class needs to estimate its own prior
MIN_OWN_DF = 2         # a cell's own t interval counts from this many degrees of freedom


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


BATCHES = 5            # contiguous batches of a process's samples, for their batch means


def median_log_variance(ms: np.ndarray) -> float:
    """The sampling variance of the log of a process's median time, from its own samples.

    Two estimates, the larger kept. ``pi / 2 * sigma^2 / n`` with ``sigma`` the MAD of the log
    times (robust to the heavy tail of per-call times) is right for independent samples only.
    Samples in a process are not independent (a slow spell of the host spans many), so from
    ``2 * BATCHES`` samples on, the variance of the medians of ``BATCHES`` contiguous batches,
    over ``BATCHES`` (batch means, as for any autocorrelated series), is taken where it is
    larger. Without it, Cochran's Q called processes that agreed "disagreeing" in 23% of
    simulated cells whose samples had a lag-1 correlation of 0.5 (1% is its level)."""
    logs = np.log(np.asarray(ms, dtype=float))
    if logs.size < 2:
        return np.nan
    sigma = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    if sigma == 0:
        sigma = float(np.std(logs, ddof=1))
    independent = float(np.pi / 2 * sigma**2 / logs.size)
    if logs.size < 2 * BATCHES:
        return independent
    medians = [float(np.median(part)) for part in np.array_split(logs, BATCHES)]
    return max(independent * _autocorrelation_factor(logs),
               float(np.var(medians, ddof=1)) / BATCHES)


def _autocorrelation_factor(logs: np.ndarray) -> float:
    """``(1 + r) / (1 - r)``: how much a lag-1 correlation ``r`` between successive samples
    inflates the variance of their mean (``n`` over the effective sample size of an AR(1)
    series); ``r`` is clipped to [0, 0.95]."""
    centred = logs - np.mean(logs)
    denominator = float(np.sum(centred ** 2))
    if denominator == 0:
        return 1.0
    r = float(np.clip(np.sum(centred[1:] * centred[:-1]) / denominator, 0.0, 0.95))
    return (1 + r) / (1 - r)


@dataclass(frozen=True)
class Level:
    """A cell's time from its processes: ``logs`` are the log medians, one per process,
    ``within`` the sampling variance of each (``median_log_variance``)."""

    logs: tuple[float, ...]
    processes: tuple[str, ...]      # the process of each median (pairs cells by process)
    within: tuple[float, ...] = ()

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
    kept = [(float(np.log(np.median(ms))), p, median_log_variance(ms))
            for ms, p in zip(per_process, processes) if len(ms)]
    if not kept:
        return None
    return Level(tuple(v for v, _, _ in kept), tuple(p for _, p, _ in kept),
                 tuple(w for _, _, w in kept))


# --- empirical Bayes -----------------------------------------------------------------------


def _trigamma_inverse(x: float) -> float:
    """The y with trigamma(y) = x (limma's Newton iteration)."""
    if x > 1e7:
        return 1 / np.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        step = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


@dataclass(frozen=True)
class Prior:
    """A scaled inverse chi-square prior for cell variances: ``df`` (``d0``, infinite when the
    class's variances agree beyond what sampling allows) and ``scale`` (``s0^2``). ``df == 0``:
    no prior (each cell keeps its own variance)."""

    df: float = 0.0
    scale: float = 0.0

    def posterior(self, variance: float, df: int) -> tuple[float, float]:
        """The moderated variance of a cell with sample ``variance`` on ``df`` degrees of
        freedom, and its degrees of freedom."""
        if np.isinf(self.df):
            return self.scale, np.inf
        total = self.df + df
        if total <= 0:
            return np.nan, 0.0
        own = variance if df > 0 else 0.0
        return (self.df * self.scale + df * own) / total, total


def fit_prior(variances: np.ndarray, dfs: np.ndarray) -> Prior:
    """limma's ``fitFDist`` by moments on the log variances: ``d0`` from the variance of the
    log variances beyond what their own degrees of freedom explain, ``s0^2`` from their mean.
    Cells without a variance (one process) are left out; fewer than two cells: no prior."""
    variances, dfs = np.asarray(variances, float), np.asarray(dfs, float)
    keep = (dfs > 0) & np.isfinite(variances)
    variances, dfs = variances[keep], dfs[keep]
    if variances.size < 2:
        return Prior()
    positive = variances[variances > 0]
    if positive.size == 0:
        return Prior(np.inf, 0.0)
    # a variance of exactly 0 (identical medians) has no log: floor it as limma offsets it
    variances = np.maximum(variances, 1e-5 * float(np.median(positive)))
    z = np.log(variances)
    e = z - special.digamma(dfs / 2) + np.log(dfs / 2)
    mean = float(np.mean(e))
    spread = float(np.var(e, ddof=1)) - float(np.mean(special.polygamma(1, dfs / 2)))
    if spread <= 0:
        return Prior(np.inf, float(np.exp(mean)))
    d0 = 2 * _trigamma_inverse(spread)
    return Prior(d0, float(np.exp(mean + special.digamma(d0 / 2) - np.log(d0 / 2))))


def fit_priors(samples: dict[Hashable, np.ndarray], classes: dict[Hashable, Hashable],
               min_class: int = MIN_CLASS) -> dict[Hashable, Prior]:
    """A prior per class of cells (``classes`` maps a cell to its class), each fitted from its
    own cells' sample variances; a class with fewer than ``min_class`` cells with a variance
    borrows the prior fitted over all cells."""
    def variances(keys):
        values = [samples[k] for k in keys if samples[k].size > 1]
        return (np.array([np.var(v, ddof=1) for v in values]),
                np.array([v.size - 1 for v in values]))

    overall = fit_prior(*variances(list(samples)))
    members: dict[Hashable, list] = {}
    for key in samples:
        members.setdefault(classes.get(key), []).append(key)
    priors = {}
    for cls, keys in members.items():
        var, dfs = variances(keys)
        priors[cls] = fit_prior(var, dfs) if var.size >= min_class else overall
    return priors


# --- ratios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ratio:
    """``a / b`` with its interval; ``lo``/``hi`` are NaN where no interval can be given.
    ``disagreement_p`` is Cochran's Q p-value of the per-process ratios (paired ratios only)."""

    value: float
    lo: float = np.nan
    hi: float = np.nan
    paired: bool = False
    df: float = np.nan
    processes: int = 0
    disagreement_p: float = np.nan
    se: float = np.nan          # the standard error of log(value) behind the interval

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.lo) and (self.lo > 1.0 or self.hi < 1.0))

    @property
    def half_width(self) -> float:
        """Half the interval's width on a log scale, as a share of the ratio (0.05: +-5%)."""
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return np.nan
        return float(np.exp((np.log(self.hi) - np.log(self.lo)) / 2) - 1)

    @property
    def imprecise(self) -> bool:
        return bool(np.isfinite(self.half_width) and self.half_width > IMPRECISE)

    @property
    def disagree(self) -> bool:
        return bool(np.isfinite(self.disagreement_p) and self.disagreement_p < DISAGREE_P)


def paired_differences(a: Level, b: Level) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Per process shared by both, ``log a - log b`` and its sampling variance (``None`` when
    the cells share no process)."""
    where = {p: (v, w) for p, v, w in zip(b.processes, b.logs, b.within or [np.nan] * b.n)}
    pairs = [(v - where[p][0], w + where[p][1])
             for p, v, w in zip(a.processes, a.logs, a.within or [np.nan] * a.n) if p in where]
    if not pairs:
        return None
    return np.array([d for d, _ in pairs]), np.array([w for _, w in pairs])


def cochran_q(values: np.ndarray, variances: np.ndarray) -> float:
    """The p-value of Cochran's Q: do the processes' values differ by more than their own
    sampling variances allow (a heterogeneity test, as in a meta-analysis)?"""
    values, variances = np.asarray(values, float), np.asarray(variances, float)
    if values.size < 2 or not np.all(np.isfinite(variances)) or np.any(variances <= 0):
        return np.nan
    weights = 1 / variances
    centre = np.sum(weights * values) / np.sum(weights)
    q = float(np.sum(weights * (values - centre) ** 2))
    return float(sps.chi2.sf(q, values.size - 1))


def _interval(log_value: float, se2: float, df: float, level_: float) -> tuple:
    """``(lo, hi, se, df)`` of a t interval about ``log_value`` (NaNs where there is none)."""
    if not (df > 0 and np.isfinite(se2) and se2 > 0):
        return np.nan, np.nan, np.nan, np.nan
    half = float(sps.t.ppf(0.5 + level_ / 2, df)) * np.sqrt(se2)
    return (float(np.exp(log_value - half)), float(np.exp(log_value + half)),
            float(np.sqrt(se2)), float(df))


def level_interval(lv: Level, level_: float = LEVEL) -> tuple[float, float]:
    """A cell's time (the geometric mean of its processes' medians) with a t interval over
    its processes, unmoderated (NaNs with one process): what an absolute time carries."""
    logs = np.asarray(lv.logs, float)
    variance, df = _sample_variance(logs)
    lo, hi, _, _ = _interval(float(np.mean(logs)), variance / max(logs.size, 1), df, level_)
    return lo, hi


def _sample_variance(values: np.ndarray) -> tuple[float, int]:
    return (float(np.var(values, ddof=1)), values.size - 1) if values.size > 1 else (np.nan, 0)


def _paired_ratio(diffs: np.ndarray, within: np.ndarray, prior: Prior,
                  level_: float) -> Ratio:
    log_value = float(np.mean(diffs))
    own = _sample_variance(diffs)
    var, df = prior.posterior(*own)
    lo, hi, se, chosen_df = _wider(_interval(log_value, var / diffs.size, df, level_),
                                   _own_interval(log_value, own[0] / diffs.size, own[1],
                                                 level_))
    return Ratio(float(np.exp(log_value)), lo, hi, True, chosen_df, diffs.size,
                 cochran_q(diffs, within), se)


def difference(first: np.ndarray, second: np.ndarray, prior_first: Prior,
               prior_second: Prior, level_: float = LEVEL) -> Ratio:
    """``exp(mean first - mean second)`` of two independent sets of log values (two cells'
    process medians, or two runs' per-process eager taxes), each variance moderated by its
    prior, with a Welch interval (and never narrower than the two sets' own)."""
    first, second = np.asarray(first, float), np.asarray(second, float)
    log_value = float(np.mean(first) - np.mean(second))
    moderated: list[tuple[float, float]] = []
    own: list[tuple[float, float]] = []
    for values, prior in ((first, prior_first), (second, prior_second)):
        sample = _sample_variance(values)
        var, df = prior.posterior(*sample)
        moderated.append((var / values.size, df))
        own.append((sample[0] / values.size, sample[1]))
    lo, hi, se, df = _wider(_interval(log_value, *_welch(moderated), level_),
                            _own_interval(log_value, *_welch(own), level_,
                                          min(d for _, d in own)))
    return Ratio(float(np.exp(log_value)), lo, hi, False, df, min(first.size, second.size),
                 se=se)


def _welch(parts: list[tuple[float, float]]) -> tuple[float, float]:
    """The variance of a sum of means and its Welch-Satterthwaite degrees of freedom."""
    se2 = sum(v for v, _ in parts)
    if any(not d > 0 for _, d in parts):
        return se2, 0.0
    terms = sum(v**2 / d for v, d in parts if np.isfinite(d))
    return se2, (se2**2 / terms if terms > 0 else np.inf)


def _own_interval(log_value: float, se2: float, df: float, level_: float,
                  smallest_df: float | None = None) -> tuple[float, float, float, float]:
    """The cell's own t interval, from its processes alone: only from ``MIN_OWN_DF`` degrees
    of freedom (with fewer, its t quantile is 12.7 and the moderated interval decides)."""
    if (df if smallest_df is None else smallest_df) < MIN_OWN_DF:
        return np.nan, np.nan, np.nan, np.nan
    return _interval(log_value, se2, df, level_)


def _wider(first: tuple, second: tuple) -> tuple:
    """The wider of two intervals about the same centre (NaN ones ignored)."""
    found = [iv for iv in (first, second) if np.isfinite(iv[0])]
    return max(found, key=lambda iv: iv[1] / iv[0]) if found else first


def ratios(levels: dict[Hashable, Level], classes: dict[Hashable, Hashable],
           wanted: dict[Hashable, tuple[Hashable, Hashable]],
           level_: float = LEVEL) -> dict[Hashable, Ratio]:
    """Each wanted ratio ``levels[a] / levels[b]`` with its interval.

    ``wanted`` maps a name to the keys ``(a, b)`` of its cells; ``classes`` maps a cell's key
    to its class. A paired ratio (cells sharing processes) is moderated among the paired
    ratios of ``a``'s class; an unpaired one takes each cell's variance moderated among the
    cells of its class. Moderation lends a cell degrees of freedom and a floor, never a
    narrower interval than its own processes give: shrinking a noisy cell's variance toward
    its class's is what makes the noisiest cells' intervals miss (0.89 coverage in the
    noisiest third of a simulated run at five processes; the wider of the two: 0.95).
    """
    found = {name: paired_differences(levels[a], levels[b]) for name, (a, b) in wanted.items()}
    paired = {name: d for name, d in found.items() if d is not None}
    pair_priors = fit_priors({name: d for name, (d, _) in paired.items()},
                             {name: classes.get(wanted[name][0]) for name in paired})
    level_priors = fit_priors({k: np.asarray(lv.logs) for k, lv in levels.items()}, classes)
    out = {}
    for name, (a, b) in wanted.items():
        if name in paired:
            out[name] = _paired_ratio(*paired[name], pair_priors[classes.get(a)], level_)
        else:
            out[name] = difference(np.asarray(levels[a].logs), np.asarray(levels[b].logs),
                                   level_priors[classes.get(a)], level_priors[classes.get(b)],
                                   level_)
    return out


def shift(differences: np.ndarray, variances: np.ndarray, level_: float = LEVEL) -> Ratio:
    """A whole run's shift against another from its cells' log differences (a random-effects
    mean, DerSimonian-Laird): what moves every cell at once, with an interval that includes
    how much the cells' own changes scatter."""
    d, v = np.asarray(differences, float), np.asarray(variances, float)
    keep = np.isfinite(d) & np.isfinite(v) & (v > 0)
    d, v = d[keep], v[keep]
    if d.size < 2:
        return Ratio(float(np.exp(d.mean())) if d.size else np.nan)
    w = 1 / v
    fixed = np.sum(w * d) / np.sum(w)
    q = float(np.sum(w * (d - fixed) ** 2))
    tau2 = max(0.0, (q - (d.size - 1)) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    w_random = 1 / (v + tau2)
    centre = float(np.sum(w_random * d) / np.sum(w_random))
    lo, hi, se, df = _interval(centre, 1 / float(np.sum(w_random)), d.size - 1, level_)
    return Ratio(float(np.exp(centre)), lo, hi, False, df, d.size, se=se)


def relative(ratio: Ratio, to: Ratio, level_: float = LEVEL) -> Ratio:
    """``ratio / to`` (a cell's change beyond its run's shift), the two standard errors added
    (the cell is one of those the shift was estimated from, so this errs wide)."""
    log_value = float(np.log(ratio.value) - np.log(to.value))
    se2 = ratio.se**2 + (to.se**2 if np.isfinite(to.se) else 0.0)
    lo, hi, se, df = _interval(log_value, se2, ratio.df, level_)
    return Ratio(float(np.exp(log_value)), lo, hi, False, df, ratio.processes, se=se)


# --- flags -------------------------------------------------------------------------------------

BIMODAL_RATIO = 2.0    # modes closer than this are what host contention makes (see limits)


def bimodal(ms: np.ndarray, min_share: float = 0.10, valley: float = 0.5,
            ratio_: float = BIMODAL_RATIO) -> Optional[dict]:
    """Two modes in one process's times, or None: a property of the step (an idle thread pool
    waking up costs a 10 us step 10x), judged over ``BIMODAL_MIN_SAMPLES`` samples or more.

    A Gaussian kernel density of the log times (Silverman's bandwidth, which smooths a
    multimodal sample rather than splitting a unimodal one) with two peaks, each holding at
    least ``min_share`` of the samples, a valley between them lower than ``valley`` times the
    lower peak, and centres at least ``ratio_`` apart: a busy neighbour on a shared host slows
    everything by up to 1.8x for spells of milliseconds to seconds (the machine probe in the
    report measures it). Returns each mode's share and centre (ms).
    """
    ms = np.asarray(ms, dtype=float)
    if ms.size < BIMODAL_MIN_SAMPLES or np.ptp(ms) <= 0:
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
