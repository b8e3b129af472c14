"""Small runs stored as the worker stores them, for the report's and the answer's tests: no
framework is imported."""

from __future__ import annotations

import numpy as np

from eagerbench.records.runfile import RAW, RunHeader, RunWriter
from tests.conftest import record


def record_of(workload, params, mode, ms, process, repeat, options=None, warmup_ms=None):
    """One cell measured in one process, as the worker stores it."""
    samples = [{"ns": int(v * 1e6), "calls": 1, "step": i + 3, "gc_collections": 0, "gc_ns": 0}
               for i, v in enumerate(ms)]
    warm = [{"ns": int(v * 1e6), "calls": 1, "step": i + 1, "gc_collections": 0, "gc_ns": 0}
            for i, v in enumerate(warmup_ms or [ms[0], ms[0]])]
    cell = {"workload": workload, "params": params, "mode": mode, "device": "cpu",
            "dtype": "float32", "threads": 2, "repeat": repeat, "iters": len(ms), "warmup": 2,
            "options": options or {"compile_mode": "default", "allocator": "default"}}
    result = {"status": "ok", "setup_s": 0.1, "warmup": warm, "timed": samples, "latency_ns": [],
              "block_calls": 1, "floor_ns": 200.0, "stopped": None, "traces_before_timing": 1,
              "traces_during_timing": 0, "compiles_before_timing": 1, "compiles_during_timing": 0,
              "compile_events_s": 0.0, "host_reads_per_call": 0.0, "threads_applied": {},
              "device_name": "cpu", "check": {}, "wall_s": 1.0, "donation": None,
              "phases_s": {"warm-up": 0.2, "timed": 0.5},
              "process": {"pid": process, "started": 0, "position": 0}}
    return record(cell, result)


def two_process_run(rng):
    """lbfgs at batch 60k and the tiny add, in torch, tf-eager and tf-graph, two processes each
    (tf-eager and tf-graph share theirs), and torch again with huge pages."""
    levels = {"torch": 850.0, "tf-eager": 575.0, "tf-graph": 490.0, "torch +thp": 600.0}
    records = []
    for repeat in range(2):
        for label, ms in levels.items():
            mode, *tags = label.split(" ")
            options = {"compile_mode": "default",
                       "allocator": "thp" if tags else "default"}
            pid = {"torch": 1, "tf-eager": 2, "tf-graph": 2}[mode] + 10 * repeat + 5 * len(tags)
            shift = np.exp(rng.normal(0, 0.02))
            records.append(record_of("lbfgs", {"history": 5, "batch": 60000}, mode,
                                   list(ms * shift * np.exp(rng.normal(0, 0.01, 8))), pid, repeat,
                                   options))
        for mode, us in (("torch", 1.0), ("tf-eager", 30.0), ("tf-graph", 3.5)):
            pid = {"torch": 1, "tf-eager": 2, "tf-graph": 2}[mode] + 10 * repeat
            records.append(record_of("elementwise", {"size": 10, "ops": 100}, mode,
                                   list(us / 10 * np.exp(rng.normal(0, 0.01, 20))), pid, repeat,
                                   warmup_ms=[60.0, 20.0] if mode == "tf-graph" else None))
    return records


def write_run(tmp_path, records, env=None):
    with RunWriter(tmp_path / RAW, RunHeader.new({"device": "cpu", **(env or {})})) as writer:
        for rec in records:
            writer.record(rec)
        writer.footer({"run_wall_s": 600.0})


TAXES = {"jax==0.4.30": 8.0, "jax==0.10.2": 4.0}


def two_release_run(tmp_path, rng, taxes=TAXES):
    """elementwise at 10 elements in jax and jax-jit, in two environments (``--env``), three
    processes each, with the eager tax of each release as given; written to ``tmp_path``."""
    records, pid = [], 0
    for repeat in range(3):
        for label, tax in taxes.items():
            pid += 1
            options = {"compile_mode": "default", "allocator": "default", "env": label,
                       "env_requirements": [label]}
            for mode, us in (("jax", 8.0 * tax), ("jax-jit", 8.0)):
                records.append(record_of("elementwise", {"size": 10, "ops": 100}, mode,
                                         list(us / 1e3 * np.exp(rng.normal(0, 0.01, 20))), pid,
                                         repeat, options))
    version = {label: {"label": label, "requirements": [label],
                       "packages": {"jax": label.split("==")[1], "jaxlib": label.split("==")[1]}}
               for label in taxes}
    write_run(tmp_path, records, {"environments": version})
    return tmp_path
