"""The runner turns a cell's results into records: one per value of a sweep, never one
result copied onto values it did not measure."""

from __future__ import annotations

import pytest

from eagerbench.execute.runner import to_records
from eagerbench.records.model import CellResult, CellSpec

SWEEP = CellSpec("custom-gradient", {"square": ["plain", "noisy"], "noise": 1.0, "batch": 8},
                 "torch", iters=[2, 2])


def _ok(value: float) -> CellResult:
    return CellResult("ok", timed=(), info={"value": value})


def test_a_sweep_has_one_record_per_value_in_order():
    records = to_records(SWEEP, (_ok(1.0), _ok(2.0)))
    assert [r.spec.params["square"] for r in records] == ["plain", "noisy"]
    assert [r.result.info["value"] for r in records] == [1.0, 2.0]


def test_one_measured_result_is_never_copied_onto_a_sweeps_other_values():
    with pytest.raises(ValueError, match="1 results for 2 values"):
        to_records(SWEEP, (_ok(1.0),))


def test_a_sweep_that_failed_as_one_gives_each_value_the_reason():
    failed = CellResult("failed", reason="worker killed by SIGKILL")
    records = to_records(SWEEP, (failed,))
    assert [r.result.reason for r in records] == ["worker killed by SIGKILL"] * 2
