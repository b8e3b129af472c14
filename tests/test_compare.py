"""``eagerbench compare`` on stored and simulated runs: an A/A comparison passes the CI gate in
both views, even with the second run 10% slower as a whole; a slowdown is caught; the whole
run's shift is reported once; environments that differ are listed; nothing is dropped."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from simulated_runs import simulated_run

from eagerbench.records.runfile import RAW, RunHeader, RunWriter
from eagerbench.report import compare
from tests.conftest import record

MODES = ("torch", "torch-compile")
SIZES = (8, 16, 32, 64, 128, 256)


def _run(folder: Path, rng, slow: dict | None = None, env: dict | None = None,
         processes: int = 2, sizes=SIZES, hosts: list | None = None,
         whole: float = 1.0) -> Path:
    """Matmul cells in two modes, each in ``processes`` processes whose levels differ by a
    few percent (as real processes do), with 1% noise within a process; every time times
    ``whole``. ``hosts``: per process, the ``(fingerprint, limits)`` of its cluster node."""
    folder.mkdir(parents=True)
    header = RunHeader.new({"device": "cpu", "threads": 2, "versions": {"torch": "2.13.0"},
                            "cpu": "Test CPU", "cpu_count": 2, **(env or {})})
    with RunWriter(folder / RAW, header) as writer:
        for p in range(processes):
            pid = int(rng.integers(1, 1 << 30))
            for size in sizes:
                for mode in MODES:
                    base = size / 8 * (0.5 if mode == "torch-compile" else 1.0)
                    base *= (slow or {}).get((size, mode), 1.0) * whole
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
    """20 pairs of identical stored runs: the 20% gate never trips in either view, and about
    95% of the intervals contain 1.00x (the moderated t intervals are not too narrow)."""
    flagged, covered, total = 0, 0, 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        sides = [compare.load_side(_run(tmp_path / f"{seed}a", rng)),
                 compare.load_side(_run(tmp_path / f"{seed}b", rng))]
        for changes in (compare.tax_view(sides), compare.absolute_view(sides)):
            flagged += len(compare.regressions(changes, 20))
            covered += sum(c.ratio(1).lo <= 1 <= c.ratio(1).hi for c in changes)
            total += len(changes)
        assert len(compare.tax_view(sides)) == len(SIZES)
        assert len(compare.absolute_view(sides)) == len(SIZES) * len(MODES)
    assert flagged == 0
    assert covered / total > 0.90


def _simulated_a_a(rng, cells: int = 400):
    """Two simulated runs of the same truth, the second 10% slower as a whole; in each, a
    process's cells share a 10% log-normal offset."""
    first = simulated_run(rng, cells=cells)
    second = simulated_run(rng, cells=cells, run_offset=np.log(1.1), means=first.means)
    return [first.side("a"), second.side("b")]


def test_a_a_of_runs_a_whole_10_percent_apart_calls_few_cells_significant():
    """Over 2,000 simulated cells per view: 5% or fewer are called significant, in the tax
    view (a ratio of ratios: the shift cancels) and in the absolute view (judged beyond each
    framework's shift); and the absolute view reports the shift, once per framework."""
    rng = np.random.default_rng(21)
    tax, absolute, shifts = [], [], []
    for _ in range(5):
        sides = _simulated_a_a(rng)
        shifts.append(compare.shifts(sides))
        tax += [c.ratio(1).significant for c in compare.tax_view(sides)]
        absolute += [c.ratio(1).significant for c in compare.absolute_view(sides, shifts[-1])]
    assert len(tax) >= 2000 and len(absolute) >= 2000
    assert np.mean(tax) <= 0.05, np.mean(tax)
    assert np.mean(absolute) <= 0.05, np.mean(absolute)
    found = [shift for run in shifts for shift in run]
    assert [s.framework for s in found] == ["ab", "c"] * 5
    assert [s.cells for s in found] == [800, 400] * 5      # a and b share processes; c its own
    # each run's shift is the day's 10% and its five processes' luck (10% each, averaged)
    assert all(abs(np.log(s.ratio.value) - np.log(1.1)) < 0.2 for s in found)
    assert np.mean([s.ratio.significant for s in found]) > 0.5


def test_the_raw_absolute_ratio_of_a_slower_day_is_kept_beside_the_verdict():
    sides = _simulated_a_a(np.random.default_rng(22), cells=100)
    changes = compare.absolute_view(sides)
    assert np.exp(np.mean(np.log([c.raw[0] for c in changes]))) > 1.0
    assert np.mean([c.ratio(1).significant for c in changes]) <= 0.10


def test_a_slower_cell_is_caught_and_the_rest_are_not(tmp_path):
    """A 1.5x slower eager cell is a regression in absolute time, and in the tax view makes
    its compiled twin's eager tax 1.5x larger, never a regression; a 1.5x slower compiled cell
    cuts its tax by 1.5x, and that is caught. Taxes read as `run` prints them: eager over
    compiled (2x here), labelled eager / compiled."""
    rng = np.random.default_rng(7)
    a = compare.load_side(_run(tmp_path / "a", rng))
    b = compare.load_side(_run(tmp_path / "b", rng, slow={(64, "torch"): 1.5}))
    changes = compare.absolute_view([a, b])
    worse = compare.regressions(changes, 20)
    assert [(c.params, c.mode) for c in worse] == [("size=64", "torch")]
    assert worse[0].ratio(1).lo > 1.2 and worse[0].ratio(1).significant
    summary = {m.mode: m for m in compare.by_mode(changes, 2)}
    assert summary["torch"].slower[0] >= 1
    assert summary["torch"].geomeans[0] > 1.0
    tax = {c.params: c for c in compare.tax_view([a, b])}
    assert len(compare.regressions(list(tax.values()), 20)) == 0
    assert tax["size=64"].values[0] == pytest.approx(2.0, rel=0.1)
    assert tax["size=64"].ratio(1).value == pytest.approx(1.5, rel=0.1)
    assert compare.display(list(tax.values()), [a, b])["mode"].iloc[0] == \
        "torch / torch-compile"
    c = compare.load_side(_run(tmp_path / "c", rng, slow={(32, "torch-compile"): 1.5}))
    worse = compare.regressions(compare.tax_view([a, c]), 20)
    assert [w.params for w in worse] == ["size=32"]
    assert worse[0].ratio(1).value == pytest.approx(1 / 1.5, rel=0.1)
    assert compare.by_mode(worse, 2)[0].slower == (1,)


def test_a_whole_run_slower_is_one_shift_not_every_cell(tmp_path):
    rng = np.random.default_rng(8)
    a = compare.load_side(_run(tmp_path / "a", rng, processes=5))
    b = compare.load_side(_run(tmp_path / "b", rng, processes=5, whole=1.3))
    shift = compare.shifts([a, b])[0]
    assert shift.framework == "torch" and shift.ratio.lo > 1.15 and shift.ratio.significant
    assert len(compare.regressions(compare.absolute_view([a, b]), 10)) == 0
    assert len(compare.slower_shifts(compare.shifts([a, b]), 10)) == 1


def test_a_uniform_slowdown_over_too_few_cells_for_a_shift_fails_the_gate_cell_by_cell(
        tmp_path):
    """Two cells a framework, each 30% slower: a shift over two cells has a t interval on one
    degree of freedom (1.32x [0.897, 1.95] here: "no shift") and judged beyond it each cell read
    "same"; too few cells for a shift, each cell is judged on its own, and the gate fails."""
    rng = np.random.default_rng(21)
    a = _run(tmp_path / "a", rng, processes=5, sizes=(64,))
    b = _run(tmp_path / "b", rng, processes=5, sizes=(64,), whole=1.3)
    sides = [compare.load_side(a), compare.load_side(b)]
    (shift,) = compare.shifts(sides)
    assert shift.cells == 2 and not shift.estimated and np.isnan(shift.ratio.lo)
    assert compare.slower_shifts([shift], 20) == []
    worse = compare.regressions(compare.absolute_view(sides), 20)
    assert {c.mode for c in worse} == {"torch", "torch-compile"}
    assert "too few cells to estimate a shift" in compare.display_shifts([shift], sides)[0]
    gate = _cli(a, b, "--view", "absolute", "--fail-slower", 20)
    assert gate.returncode == 1 and "2 cell(s)" in gate.stderr


def test_environment_differences_and_unmatched_cells_are_listed(tmp_path):
    rng = np.random.default_rng(3)
    a = compare.load_side(_run(tmp_path / "a", rng))
    b = compare.load_side(_run(tmp_path / "b", rng,
                               env={"threads": 1, "versions": {"torch": "2.14"}},
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
    assert "## Whole-run shift" in ok.stdout
    bad = _cli(a, slow, "--fail-slower", 20, "--changed", "--plot", tmp_path / "changes.png")
    assert bad.returncode == 1
    assert "matmul size=32 [torch-compile]" in bad.stderr and "eager tax" in bad.stderr
    # the compiled cell twice as slow: its tax halved, the compiled mode +100% slower
    assert re.search(r"0\.\d+x \[.*\]  \+\d\d\d% slower", bad.stdout)
    assert (tmp_path / "changes.png").stat().st_size > 0


def test_the_gate_judges_the_view_it_is_given(tmp_path):
    """A whole run 1.5x slower: the eager-tax gate passes (the tax did not move), the
    absolute gate fails and names the whole run's shift."""
    rng = np.random.default_rng(12)
    a = _run(tmp_path / "a", rng, processes=4)
    slower = _run(tmp_path / "slower", rng, processes=4, whole=1.5)
    tax = _cli(a, slower, "--fail-slower", 20)
    assert tax.returncode == 0, tax.stderr
    absolute = _cli(a, slower, "--view", "absolute", "--fail-slower", 20)
    assert absolute.returncode == 1
    assert "whole run slower" in absolute.stderr and "torch 1.5" in absolute.stderr
    assert "the whole run is +50% slower" in absolute.stdout


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
    from eagerbench.records import runfile
    from eagerbench.report import build as report

    hosts = [_host("Xeon", "A100", 1000.0), _host("EPYC", "H100", 4000.0)]
    folder = _run(tmp_path / "run", np.random.default_rng(0), hosts=hosts)
    assert [h.host["cpu"] for h in runfile.read(folder).hosts()] == ["Xeon", "EPYC"]
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
    sides = [compare.load_side(_run(tmp_path / "a", rng, hosts=[a100, a100]), "a100"),
             compare.load_side(_run(tmp_path / "b", rng, hosts=[h100, h100]), "h100")]
    env = compare.environment_differences(sides).set_index("setting")
    assert env.loc["host", "a100"] == "Xeon + A100 (driver 580.1)"
    assert env.loc["host", "h100"] == "EPYC + H100 (driver 580.1)"
    assert env.loc["host peak float32 GFLOP/s"].tolist() == ["1000", "4000"]
    changes = compare.absolute_view(sides)
    shown = compare.display(changes, sides, view_name="absolute")
    row, last = shown.iloc[-1], changes[-1]
    key = (last.workload, last.params, last.mode)
    ratio = sides[0].shares[key] / sides[1].shares[key]
    assert row["a100 of limit"].endswith("%") and row["h100 of limit"].endswith("%")
    np.testing.assert_allclose(ratio, 4000 / 1000 * last.raw[0], rtol=1e-9)
