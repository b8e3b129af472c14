"""Statistics on known inputs: intervals that cover the truth when processes differ, A/A
comparisons that contain 1, paired comparisons, flags, significant figures."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench import stats, tables


def _simulated_cell(rng, true_ms: float, processes: int, offset: float, jitter: float,
                    samples: int = 50, tag: str = "") -> stats.Level:
    """A cell measured in ``processes`` processes: each shifts the level by a log-normal
    offset, and each sample within it jitters."""
    per_process = [true_ms * np.exp(rng.normal(0, offset)) * np.exp(rng.normal(0, jitter, samples))
                   for _ in range(processes)]
    return stats.level(per_process, [f"{tag}{i}" for i in range(processes)])


def _coverage(rng, truth: float, trials: int, cells: int, processes: int = 2) -> float:
    """Share of 95% intervals of A/B that contain the true ratio, with pools over ``cells``
    cells per mode (as in a run) and 3% process offsets, 1% jitter (the audit's simulation)."""
    hits = total = 0
    for _ in range(trials):
        a = [_simulated_cell(rng, truth, processes, 0.03, 0.01, tag="a") for _ in range(cells)]
        b = [_simulated_cell(rng, 1.0, processes, 0.03, 0.01, tag="b") for _ in range(cells)]
        pool_a, pool_b = stats.pooled(a), stats.pooled(b)
        for x, y in zip(a, b):
            r = stats.ratio(x, y, pool_a, pool_b)
            hits += r.lo <= truth <= r.hi
            total += 1
    return hits / total


def _pooled_bootstrap(num: np.ndarray, den: np.ndarray, rng) -> tuple:
    """The interval of the first version: every sample independent, processes pooled."""
    boot = (np.median(rng.choice(num, (1000, num.size)), axis=1)
            / np.median(rng.choice(den, (1000, den.size)), axis=1))
    return np.percentile(boot, [2.5, 97.5])


def test_intervals_cover_the_true_ratio_when_processes_differ():
    """The audit's simulation: 3% offsets between processes, 1% jitter within. The interval
    over processes covers the truth about 95% of the time; the pooled bootstrap did not."""
    rng = np.random.default_rng(0)
    assert _coverage(rng, truth=1.5, trials=40, cells=12) >= 0.90
    naive_hits = 0
    for _ in range(300):
        per = [[1.5 * np.exp(rng.normal(0, 0.03)) * np.exp(rng.normal(0, 0.01, 50))
                for _ in range(2)], [np.exp(rng.normal(0, 0.03)) * np.exp(rng.normal(0, 0.01, 50))
                                     for _ in range(2)]]
        lo, hi = _pooled_bootstrap(np.concatenate(per[0]), np.concatenate(per[1]), rng)
        naive_hits += lo <= 1.5 <= hi
    assert naive_hits / 300 < 0.6     # why the first version's intervals were too narrow


def test_a_a_comparison_contains_one():
    """The same cell measured as two arms (each in its own processes): the interval contains
    1.00x in about 95% of runs (for a 95% interval, one in twenty misses by design)."""
    rng = np.random.default_rng(1)
    assert _coverage(rng, truth=1.0, trials=40, cells=12) >= 0.90


def test_paired_cells_cancel_what_their_process_shifts():
    """Two modes measured in the same processes share each process's offset: the paired
    interval is much narrower than the unpaired one, and still covers the truth."""
    rng = np.random.default_rng(2)
    hits, widths = 0, []
    for trial in range(200):
        offsets = rng.normal(0, 0.05, 2)
        a = stats.level([1.3 * np.exp(o) * np.exp(rng.normal(0, 0.01, 50)) for o in offsets],
                        ["p0", "p1"])
        b = stats.level([np.exp(o) * np.exp(rng.normal(0, 0.01, 50)) for o in offsets],
                        ["p0", "p1"])
        pool = stats.Pool().add(np.asarray(a.logs) - np.asarray(b.logs))
        for _ in range(10):   # other cells' paired differences, as in a run
            pool = pool.add(rng.normal(0, 0.003, 2))
        paired = stats.ratio(a, b, stats.pooled([a]), stats.pooled([b]), pool)
        unpaired = stats.ratio(a, b, stats.pooled([a]), stats.pooled([b]))
        assert paired.paired and not unpaired.paired
        hits += paired.lo <= 1.3 <= paired.hi
        widths.append((paired.hi / paired.lo, unpaired.hi / unpaired.lo))
    assert hits / 200 >= 0.85
    assert np.median([p for p, _ in widths]) < np.median([u for _, u in widths])


def test_one_process_per_cell_gives_no_interval():
    one = stats.level([np.ones(20)], ["p"])
    r = stats.ratio(one, one, stats.pooled([one]), stats.pooled([one]))
    assert r.value == 1.0 and np.isnan(r.lo) and not r.significant


def test_a_cell_whose_processes_disagree_widens_its_mode_without_a_t_of_one_df():
    """Moderated, not replaced: a cell whose two processes disagree widens the intervals of
    its mode through the pool, and its own interval stays finite, with the pool's degrees of
    freedom, instead of the t quantile of its one degree of freedom (12.7)."""
    quiet = [stats.level([np.full(10, 1.0), np.full(10, 1.01)], [f"q{i}a", f"q{i}b"])
             for i in range(10)]
    loud = stats.level([np.full(10, 1.0), np.full(10, 1.5)], ["la", "lb"])
    calm, noisy = stats.pooled(quiet), stats.pooled(quiet + [loud])
    before = stats.ratio(quiet[1], quiet[0], calm, calm)
    after = stats.ratio(quiet[1], quiet[0], noisy, noisy)
    assert after.hi / after.lo > 1.3 * (before.hi / before.lo)
    own = stats.ratio(loud, quiet[0], noisy, noisy)
    assert 1.1 < own.hi / own.lo < 3.0
    variance, df = stats.moderated(np.asarray(loud.logs), noisy)
    assert df == 10 + 1
    assert variance < np.var(loud.logs, ddof=1)


def test_summarize_known_values():
    s = stats.summarize(np.array([1.0, 2, 3, 4, 100]))
    assert s["min_ms"] == 1 and s["max_ms"] == 100
    assert s["q1_ms"] == 2 and s["q3_ms"] == 4 and s["iqr_ms"] == 2
    assert s["spikes"] == 1          # 100 > 3 x median


def test_noise_warnings_name_the_problem_within_a_process():
    steady = np.full(50, 10.0) + np.linspace(0, 0.1, 50)
    assert stats.noise_warnings([steady, steady * 1.3]) == []   # a shift between processes
    spiky = steady.copy()
    spiky[7] = 100
    assert any("3x the median" in w for w in stats.noise_warnings([spiky]))
    drifting = np.concatenate([np.full(25, 10.0), np.full(25, 14.0)])
    assert any("drifts" in w for w in stats.noise_warnings([drifting]))
    wide = np.random.default_rng(1).uniform(5, 15, 50)
    assert any("IQR" in w for w in stats.noise_warnings([wide]))


def test_bimodal_finds_a_wake_up_mode_but_not_contention_or_a_skew():
    rng = np.random.default_rng(3)
    fast = 0.012 * np.exp(rng.normal(0, 0.05, 300))
    woken = 0.100 * np.exp(rng.normal(0, 0.05, 200))
    found = stats.bimodal(np.concatenate([fast, woken]))
    assert found is not None
    assert found["shares"][0] == pytest.approx(0.6, abs=0.05)
    assert found["centres_ms"][0] == pytest.approx(0.012, rel=0.1)
    assert found["centres_ms"][1] == pytest.approx(0.100, rel=0.1)
    assert stats.bimodal(0.012 * np.exp(rng.normal(0, 0.3, 500))) is None   # one skewed mode
    contended = np.concatenate([fast, 1.75 * fast])                        # a busy neighbour
    assert stats.bimodal(contended) is None


def test_small_ratios_keep_three_significant_figures():
    """The first version printed 0.0006x as 0.00x."""
    assert tables.fmt_ratio(0.0006123, np.nan, np.nan) == "0.000612x"
    assert tables.fmt_ratio(0.0556, 0.0501, 0.0612) == "0.0556x [0.0501, 0.0612]"
    assert tables.fmt_ratio(29.87, 29.4, 30.05) == "29.9x [29.4, 30.1]"
    assert tables.fmt_ratio(1.0, np.nan, np.nan) == "1.00x"
    assert stats.significant_figures(1234.5) == "1234"
