"""Statistics and tables on known inputs."""

from __future__ import annotations

import numpy as np

from eagerbench import stats, tables


def test_summarize_known_values():
    s = stats.summarize(np.array([1.0, 2, 3, 4, 100]))
    assert s["median_ms"] == 3 and s["min_ms"] == 1 and s["max_ms"] == 100
    assert s["q1_ms"] == 2 and s["q3_ms"] == 4 and s["iqr_ms"] == 2
    assert s["spikes"] == 1          # 100 > 3 x median


def test_ratio_interval_brackets_the_true_ratio():
    rng = np.random.default_rng(0)
    a = 2.0 * (1 + 0.05 * rng.standard_normal(200))
    b = 1.0 * (1 + 0.05 * rng.standard_normal(200))
    r, lo, hi = stats.ratio_ci(a, b)
    assert lo < 2.0 < hi and lo < r < hi
    assert hi - lo < 0.2


def test_noise_warnings_name_the_problem():
    steady = np.full(50, 10.0) + np.linspace(0, 0.1, 50)
    assert stats.noise_warnings(steady) == []
    spiky = steady.copy()
    spiky[7] = 100
    assert any("3x the median" in w for w in stats.noise_warnings(spiky))
    drifting = np.concatenate([np.full(25, 10.0), np.full(25, 14.0)])
    assert any("drifts" in w for w in stats.noise_warnings(drifting))
    wide = np.random.default_rng(1).uniform(5, 15, 50)
    assert any("IQR" in w for w in stats.noise_warnings(wide))


def _record(mode, ms, status="ok"):
    cell = {"workload": "matmul", "params": {"size": 8}, "mode": mode, "device": "cpu",
            "dtype": "float32", "threads": 1, "repeat": 0, "iters": len(ms), "warmup": 1}
    if status != "ok":
        return {"cell": cell, "result": {"status": "failed", "reason": "boom"}}
    samples = [{"ns": int(v * 1e6), "gc_collections": int(i == 0), "gc_ns": 5} for i, v in enumerate(ms)]
    return {"cell": cell, "result": {"status": "ok", "setup_s": 1.0, "warmup": samples[:1],
                                     "timed": samples, "stopped": None, "traces_before_timing": 1,
                                     "traces_during_timing": 0, "threads_applied": {"intra_op": 1},
                                     "device_name": "cpu", "check": {}}}


def test_cells_table_ratios_rates_and_failures():
    records = [_record("torch", [1.0] * 9 + [1.1]), _record("tf-eager", [3.0] * 10),
               _record("tf-graph", [1.5] * 10), _record("tf-graph", [], status="failed")]
    cells = tables.cells_table(records[:3] + [dict(records[3], cell={**records[3]["cell"],
                                                                     "params": {"size": 9}})])
    by = cells.set_index(["params", "mode"])
    assert by.loc[("size=8", "tf-eager"), "slowdown"] == 3.0
    assert by.loc[("size=8", "tf-graph"), "vs_eager"] == 0.5
    assert by.loc[("size=8", "torch"), "slowdown"] == 1.0
    assert by.loc[("size=8", "torch"), "gflops"] == 2 * 8**3 / 1e-3 / 1e9
    assert by.loc[("size=8", "torch"), "gc_iters"] == 1
    assert by.loc[("size=9", "tf-graph"), "status"] == "failed"
    summary = tables.summary_table(cells)
    assert "failed: boom" in summary["note"].tolist()
    iters = tables.iterations_table(records)
    assert len(iters) == 3 * 11 and not iters["spike"].any()
