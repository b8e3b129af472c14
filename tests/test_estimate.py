"""The progress bar's time left: right from the start when the cells were measured here
before, and corrected by the run's own pace when they were not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eagerbench.plan import estimate
from eagerbench.records.model import CellSpec

CELL = CellSpec(workload="matmul", params={"size": 64}, mode="torch", device="cpu",
                dtype="float32", threads=1, seed=1, repeat=0)


def test_expected_seconds_come_from_this_machines_last_run_then_from_the_known_cells():
    later = replace(CELL, repeat=1)
    other = replace(CELL, params={"size": 128}, repeat=1)
    known = {estimate.key(CELL): 30.0, estimate.key(later): 6.0}
    assert estimate.expected([CELL, later, other], known) == [30.0, 6.0, 6.0]
    assert estimate.expected([other], {}) == [estimate.FIRST_GUESS_S[False]]
    assert estimate.expected([CELL], {}) == [estimate.FIRST_GUESS_S[True]]


def test_a_cell_asked_to_time_less_or_in_another_environment_has_its_own_landing_time():
    """A test's 2-iteration cell, or the same cell in another release, is not the cell of a
    real run: their landing times must not stand in for each other."""
    others = [replace(CELL, iters=2), replace(CELL, warmup=0), replace(CELL, min_time_s=3.0),
              replace(CELL, options={"env": "jax==0.4.30"})]
    keys = {estimate.key(c) for c in [CELL, *others]}
    assert len(keys) == 1 + len(others)
    assert estimate.key(replace(CELL, options={"compile_mode": "default"})) == estimate.key(CELL)


def test_time_left_runs_down_from_the_start_and_follows_the_runs_pace():
    left = estimate.Remaining([10.0] * 4)
    assert left.left(0.0) == 40.0 and left.left(5.0) == 35.0   # an estimate before any cell
    left.landed(10.0, 20.0)             # the first cell took twice its expectation
    assert left.left(20.0) == pytest.approx(60.0)
    assert left.left(30.0) == pytest.approx(50.0)
    for at in (40.0, 60.0, 80.0):
        left.landed(10.0, at)
    assert left.left(80.0) == 0.0


def test_landing_times_are_kept_in_the_cache_and_merged(tmp_path, monkeypatch):
    monkeypatch.setenv("EAGERBENCH_CACHE", str(tmp_path))
    estimate.remember({"a": 1.0})
    estimate.remember({"b": 2.0})
    assert estimate.landing_times() == {"a": 1.0, "b": 2.0}
    (tmp_path / estimate.FILE).write_text("not json")
    assert estimate.landing_times() == {}


class _SlowExecutor:
    """Lands each cell 20 ms after the last, with a failure (no framework, no process)."""

    def run_one(self, cell, timeout):
        raise AssertionError("no start state to prepare")

    def run_batches(self, batches, timeout, progress):
        import time

        from eagerbench.execute.local import failed

        for batch in batches:
            for cell in batch:
                time.sleep(0.02)
                yield cell, failed("planted")


def test_a_run_keeps_each_cells_landing_time_and_counts_every_repeat(tmp_path, monkeypatch):
    """The estimate sums every cell, repeats included (a cell's repeats share one key), and a
    run without a progress bar still records real landing times, never zeros."""
    from eagerbench.execute.runner import run_cells
    from eagerbench.records.runfile import RAW, RunHeader, RunWriter

    monkeypatch.setenv("EAGERBENCH_CACHE", str(tmp_path))
    cells = [replace(CELL, repeat=r) for r in range(3)] + [replace(CELL, mode="tf-eager")]
    totals = []
    monkeypatch.setattr(estimate.Remaining, "__init__",
                        lambda self, s, init=estimate.Remaining.__init__: (totals.append(sum(s)),
                                                                           init(self, s))[1])
    with RunWriter(tmp_path / RAW, RunHeader.new({})) as writer:
        run_cells(cells, writer, timeout=10, progress=False, executor=_SlowExecutor())
    assert totals == [2 * estimate.FIRST_GUESS_S[True] + 2 * estimate.FIRST_GUESS_S[False]]
    kept = estimate.landing_times()
    assert len(kept) == 3 and all(seconds >= 0.015 for seconds in kept.values())
