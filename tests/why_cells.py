"""Cells with known prices that the why tests share: a small element-wise cell's parameters,
the machine's limits, and a record of a cell priced as given."""

from __future__ import annotations

from tests.conftest import record

ELEMENTWISE = {"size": 10, "ops": 5}


LIMITS = {"bandwidth_gbps": 10.0, "cache_bandwidth_gbps": 100.0, "llc_bytes": 32 << 20,
          "peak_gflops": {"float32": 100.0, "float64": 50.0}}


def priced_cell(size: int, mode: str, ms: float, ops: int, dispatch_us: float, **why):
    samples = [{"ns": int(ms * 1e6), "calls": 1, "step": i + 2, "gc_collections": 0,
                "gc_ns": 0} for i in range(10)]
    return record({"workload": "elementwise", "params": {"size": size, "ops": ops},
                   "mode": mode, "dtype": "float32"},
                  {"status": "ok", "warmup": samples[:1], "timed": samples,
                   "process": {"pid": 1, "started": 0.0},
                   "why": {"ops": ops, "dispatch_ns": dispatch_us * 1e3, **why}})
