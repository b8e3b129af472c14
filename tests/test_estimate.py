"""The progress bar's time left: right from the start when the cells were measured here
before, and corrected by the run's own pace when they were not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eagerbench import estimate
from eagerbench.results import CellSpec

CELL = CellSpec(workload="matmul", params={"size": 64}, mode="torch", device="cpu",
                dtype="float32", threads=1, seed=1, repeat=0)


def test_expected_seconds_come_from_this_machines_last_run_then_from_the_known_cells():
    later = replace(CELL, repeat=1)
    other = replace(CELL, params={"size": 128}, repeat=1)
    known = {estimate.key(CELL): 30.0, estimate.key(later): 6.0}
    assert estimate.expected([CELL, later, other], known) == [30.0, 6.0, 6.0]
    assert estimate.expected([other], {}) == [estimate.FIRST_GUESS_S[False]]
    assert estimate.expected([CELL], {}) == [estimate.FIRST_GUESS_S[True]]


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
    assert estimate.load() == {"a": 1.0, "b": 2.0}
    (tmp_path / estimate.FILE).write_text("not json")
    assert estimate.load() == {}
