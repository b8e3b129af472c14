"""``eagerbench compare`` on stored runs: an A/A comparison passes the CI gate, a slowdown is
caught, environments that differ are listed, and nothing is silently dropped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from eagerbench import compare
from eagerbench.results import RAW, RunHeader, RunWriter
from tests.conftest import record

MODES = ("torch", "torch-compile")
SIZES = (8, 16, 32, 64, 128, 256)


def _run(folder: Path, rng, slow: dict | None = None, env: dict | None = None,
         processes: int = 2, sizes=SIZES, hosts: list | None = None) -> Path:
    """Matmul cells in two modes, each in ``processes`` processes whose levels differ by a
    few percent (as real processes do), with 1% noise within a process. ``hosts``: per
    process, the ``(fingerprint, limits)`` of the cluster node it ran on."""
    folder.mkdir(parents=True)
    header = RunHeader.new({"device": "cpu", "threads": 2, "versions": {"torch": "2.13.0"},
                            "cpu": "Test CPU", "cpu_count": 2, **(env or {})})
    with RunWriter(folder / RAW, header) as writer:
        for p in range(processes):
            pid = int(rng.integers(1, 1 << 30))
            for size in sizes:
                for mode in MODES:
                    base = size / 8 * (0.5 if mode == "torch-compile" else 1.0)
                    base *= (slow or {}).get((size, mode), 1.0)
                    level = base * np.exp(rng.normal(0, 0.03))
                    ms = level * np.exp(rng.normal(0, 0.01, 30))
                    samples = [{"ns": int(v * 1e6), "calls": 1, "step": i + 2,
                                "gc_collections": 0, "gc_ns": 0} for i, v in enumerate(ms)]
                    cell = {"workload": "matmul", "params": {"size": size}, "mode": mode,
                            "threads": 2, "iters": 30, "warmup": 1, "repeat": p}
                    writer.record(record(cell, {
                        "status": "ok", "warmup": samples[:1], "timed": samples,
                        "process": {"pid": pid, "started": 0.0,
                                    **({"host": hosts[p][0]} if hosts else {})}}))
        footer = {"run_wall_s": 10.0}
        if hosts:
            footer["hosts"] = [{"host": h, "limits": lim} for h, lim in hosts]
        writer.footer(footer)
    return folder


def test_a_a_comparisons_flag_nothing_and_their_intervals_hold_one(tmp_path):
    """20 pairs of identical runs (240 cells): the 20% gate never trips, and about 95% of the
    intervals contain 1.00x (the moderated t intervals are not too narrow)."""
    flagged, covered, total = 0, 0, 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        sides = [compare.load(_run(tmp_path / f"{seed}a", rng)),
                 compare.load(_run(tmp_path / f"{seed}b", rng))]
        table = compare.cells(sides)
        assert len(table) == len(SIZES) * len(MODES)
        flagged += len(compare.regressions(table, 2, 20))
        covered += int(((table["lo_1"] <= 1) & (table["hi_1"] >= 1)).sum())
        total += len(table)
    assert flagged == 0
    assert covered / total > 0.90


def test_a_slower_cell_is_caught_and_the_rest_are_not(tmp_path):
    rng = np.random.default_rng(7)
    a = compare.load(_run(tmp_path / "a", rng))
    b = compare.load(_run(tmp_path / "b", rng, slow={(64, "torch"): 1.5}))
    table = compare.cells([a, b])
    worse = compare.regressions(table, 2, 20)
    assert list(zip(worse["params"], worse["mode"])) == [("size=64", "torch")]
    row = worse.iloc[0]
    assert row["lo_1"] > 1.2 and row["significant_1"]
    summary = compare.by_mode(table, 2).set_index("mode")
    assert summary.loc["torch", "slower_1"] >= 1
    assert summary.loc["torch", "geomean_1"] > 1.0


def test_environment_differences_and_unmatched_cells_are_listed(tmp_path):
    rng = np.random.default_rng(3)
    a = compare.load(_run(tmp_path / "a", rng))
    b = compare.load(_run(tmp_path / "b", rng, env={"threads": 1, "versions": {"torch": "2.14"}},
                          sizes=SIZES[:-1]), name="b")
    diffs = compare.environment_differences([a, b]).set_index("setting")
    assert set(diffs.index) == {"threads", "torch version"}
    assert diffs.loc["threads", "b"] == "1"
    assert compare.unmatched([a, b]) == [f"2 cell(s) only in {a.name}, not in b"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "eagerbench.cli", "compare", *map(str, args)],
                          capture_output=True, text=True)


def test_the_gate_exits_1_on_a_regression_and_0_on_a_a(tmp_path):
    rng = np.random.default_rng(11)
    a = _run(tmp_path / "a", rng)
    same = _run(tmp_path / "same", rng)
    slow = _run(tmp_path / "slow", rng, slow={(32, "torch-compile"): 2.0})
    ok = _cli(a, same, "--fail-slower", 20, "--format", "markdown")
    assert ok.returncode == 0, ok.stderr
    assert "| cell" in ok.stdout and "## Per mode" in ok.stdout
    bad = _cli(a, slow, "--fail-slower", 20, "--changed", "--plot", tmp_path / "changes.png")
    assert bad.returncode == 1
    assert "matmul size=32 [torch-compile]" in bad.stderr
    assert "+100% slower" in bad.stdout
    assert (tmp_path / "changes.png").stat().st_size > 0


def test_compare_of_a_missing_or_corrupt_run_is_one_line_and_exit_2(tmp_path):
    a = _run(tmp_path / "a", np.random.default_rng(1))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / RAW).write_text("garbage\n")
    for other in (tmp_path / "missing", tmp_path / "bad"):
        proc = _cli(a, other)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and str(other) in proc.stderr


def _host(cpu: str, gpu: str, peak: float) -> tuple[dict, dict]:
    return ({"cpu": cpu, "cores": 64, "gpus": [{"name": gpu, "driver": "580.1"}]},
            {"device": "cuda", "matmul_n": 2048, "bandwidth_gbps": None, "llc_bytes": 1 << 25,
             "peak_gflops": {"float32": peak, "float64": peak / 2},
             "per_library": {"torch": {"matmul_gflops": {"float32": peak,
                                                         "float64": peak / 2}}}})


def test_a_run_on_two_host_types_reports_each_apart(tmp_path):
    """Process 0 ran on one node type and process 1 on another: each gets its own report with
    its own limits, and no cell pools the two."""
    from eagerbench import report, results

    hosts = [_host("Xeon", "A100", 1000.0), _host("EPYC", "H100", 4000.0)]
    folder = _run(tmp_path / "run", np.random.default_rng(0), hosts=hosts)
    assert [h.host["cpu"] for h in results.load(folder).hosts()] == ["Xeon", "EPYC"]
    summary = report.build(folder)
    assert sorted(summary["host"].unique()) == [1, 2]
    top = (folder / "README.md").read_text()
    assert "2 host types" in top and "Xeon + A100 (driver 580.1)" in top
    for number, (host, limits) in enumerate(hosts, 1):
        cells = pd.read_csv(folder / "hosts" / str(number) / "cells.csv")
        assert len(cells) == len(SIZES) * len(MODES)
        assert (cells["processes"] == 1).all()   # one process per host: nothing pooled
        share = cells["gflops"] / limits["peak_gflops"]["float32"]
        np.testing.assert_allclose(cells["limit_share"], share)
        assert host["cpu"] in (folder / "hosts" / str(number) / "README.md").read_text()


def test_compare_puts_hosts_side_by_side_with_their_own_limits(tmp_path):
    """Two runs on different GPUs: the hosts and their measured peaks are listed, and every
    cell shows its share of its own host's peak."""
    rng = np.random.default_rng(1)
    a100, h100 = _host("Xeon", "A100", 1000.0), _host("EPYC", "H100", 4000.0)
    sides = [compare.load(_run(tmp_path / "a", rng, hosts=[a100, a100]), "a100"),
             compare.load(_run(tmp_path / "b", rng, hosts=[h100, h100]), "h100")]
    env = compare.environment_differences(sides).set_index("setting")
    assert env.loc["host", "a100"] == "Xeon + A100 (driver 580.1)"
    assert env.loc["host", "h100"] == "EPYC + H100 (driver 580.1)"
    assert env.loc["host peak float32 GFLOP/s"].tolist() == ["1000", "4000"]
    table = compare.cells(sides)
    shown = compare.display(table, sides)
    row = shown.iloc[-1]
    ratio = table.iloc[-1]["share_0"] / table.iloc[-1]["share_1"]
    assert row["a100 of limit"].endswith("%") and row["h100 of limit"].endswith("%")
    np.testing.assert_allclose(ratio, 4000 / 1000 * table.iloc[-1]["ratio_1"], rtol=1e-9)
