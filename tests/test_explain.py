"""Why a cell takes its time: op counts per framework, the compiler's diagnostics (a planted graph
break and a planted recompile), memory around a step, and the decomposition's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench import diagnose, explain, tables
from tests.conftest import build, record
from tests.fake_backend import FakeBackend

ELEMENTWISE = {"size": 10, "ops": 5}


@pytest.mark.parametrize("mode", ["torch", "torch-compile", "tf-eager", "tf-graph", "jax",
                                  "jax-jit"])
def test_each_framework_counts_the_ops_a_known_step_dispatches(mode):
    """``b += a`` five times: five dispatches of the eager program, in every framework (a
    compiled mode's count is its eager program's, run once eagerly)."""
    B, task = build(mode, "elementwise", ELEMENTWISE, dtype="float32")
    count, (st, mem) = B.count_ops(B.eager_step(task.step), task.st, task.mem)
    B.block((st, mem))
    assert count == 5


def test_the_torch_count_sees_every_aten_op_of_an_autoencoder_step():
    """The l-BFGS step issues hundreds of ops (matmuls, sigmoids, the two-loop recursion's
    dots and axpys); the count grows with the history it walks."""
    counts = []
    for history in (2, 4):
        B, task = build("torch", "lbfgs", {"history": history, "batch": 20})
        st, mem = task.st, task.mem
        for _ in range(history + 1):   # fill the memory
            st, mem = task.step(st, mem)
        counts.append(B.count_ops(task.step, st, mem)[0])
    assert 50 < counts[0] < counts[1]


def test_the_memory_of_a_step_is_its_high_water_mark_above_what_was_held():
    held = np.ones(1 << 20)   # 8 MiB, held throughout

    def step(st, mem):
        scratch = np.ones(12_500_000)   # 100 MB, freed when the step returns
        return {"total": float(scratch.sum() + held[0])}, mem

    found, (st, _) = diagnose.step_memory(step, lambda tree: None, {}, {}, FakeBackend())
    assert st["total"] == 12_500_001
    assert found["rss_peak_bytes"] - found["rss_before_bytes"] >= 90e6
    assert found["device_peak_bytes"] is None


PLANTED = '''
import torch
from eagerbench import native

CALLS = [0]


def setup(params, env):
    w = torch.as_tensor(env.rng.standard_normal((8, 8)), dtype=env.dtype, device=env.device)
    return {"w": w}, {}


def breaking(st, mem):
    w = st["w"] * 0.5
    torch._dynamo.graph_break()
    return {"w": w + 0.1}, mem


def recompiling(st, mem):
    CALLS[0] += 1   # a Python value Dynamo guards on: a new graph every call
    return {"w": st["w"] * 0.5 + CALLS[0] % 3}, mem


BREAKING = native.workload("breaking", "torch", setup, breaking, iters=3, warmup=2)
RECOMPILING = native.workload("recompiling", "torch", setup, recompiling, iters=3, warmup=3)
'''


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Both planted workloads measured in one run (one torch.compile set-up), in torch and
    torch-compile: the run's records and its cells table."""
    from eagerbench import results
    from tests.conftest import eagerbench_cli

    folder = tmp_path_factory.mktemp("planted")
    path = folder / "planted.py"
    path.write_text(PLANTED)
    proc = eagerbench_cli("run", "-w", f"{path}:BREAKING,{path}:RECOMPILING", "--modes",
                          "torch,torch-compile", "--repeat", "1", "--min-time", "0",
                          "--threads", "1", "--no-limits", "-q", "--out", folder / "run")
    assert proc.returncode == 0, proc.stderr
    run = results.load(folder / "run")
    cells = tables.cells_table(run.latest())
    why = explain.why_table(run.latest(), cells, None)
    return {(r.workload, r.mode): r for r in why.itertuples()}, cells


def test_a_planted_graph_break_is_reported_with_its_reason(planted):
    why, _ = planted
    compiled = why[("breaking", "torch-compile")]
    assert compiled.graph_breaks >= 1
    assert "graph_break" in compiled.graph_break_reasons
    assert compiled.dispatches_per_call >= 2   # a graph on each side of the break
    assert compiled.graphs >= 2
    assert why[("breaking", "torch")].ops_per_call == 2   # mul and add: no break in eager


def test_a_planted_recompile_is_counted(planted):
    why, cells = planted
    assert why[("recompiling", "torch-compile")].graphs >= 3   # each warm-up saw a new value
    row = cells.set_index(["workload", "mode"]).loc[("recompiling", "torch-compile")]
    assert row["compiles_during_timing"] > 0
    assert "RECOMPILED" in tables.summary_table(cells).set_index(
        ["workload", "mode"]).loc[("recompiling", "torch-compile"), "note"]


LIMITS = {"bandwidth_gbps": 10.0, "cache_bandwidth_gbps": 100.0, "llc_bytes": 32 << 20,
          "peak_gflops": {"float32": 100.0, "float64": 50.0}}


def _cell(size: int, mode: str, ms: float, ops: int, dispatch_us: float):
    samples = [{"ns": int(ms * 1e6), "calls": 1, "step": i + 2, "gc_collections": 0,
                "gc_ns": 0} for i in range(10)]
    return record({"workload": "elementwise", "params": {"size": size, "ops": ops},
                   "mode": mode, "dtype": "float32"},
                  {"status": "ok", "warmup": samples[:1], "timed": samples,
                   "process": {"pid": 1, "started": 0.0},
                   "why": {"ops": ops, "dispatch_ns": dispatch_us * 1e3}})


def test_the_decomposition_is_dispatch_plus_kernels_and_the_rest():
    """10 ops at 20 us each are 0.2 ms of dispatch; 2^24 floats (a 128 MiB footprint, beyond
    the cache) move 3 x 4 B x 2^24 x 10 at 10 GB/s: 201 ms; the rest of 250 ms remains. At
    1000 floats the data stays in cache: 100 GB/s."""
    big, small = 1 << 24, 1000
    records = [_cell(big, "torch", 250.0, 10, 20.0), _cell(small, "torch", 0.25, 10, 20.0)]
    why = explain.why_table(records, tables.cells_table(records, LIMITS), LIMITS)
    rows = {r.params: r for r in why.itertuples()}
    large = rows[f"size={big} ops=10"]
    assert large.dispatch_ms == pytest.approx(0.2)
    assert large.memory_ms == pytest.approx(3 * 4 * big * 10 / 10e9 * 1e3)
    assert large.bound == "memory"
    assert large.remainder_ms == pytest.approx(250.0 - 0.2 - large.memory_ms)
    assert large.dispatch_share + large.kernels_share + large.remainder_share == \
        pytest.approx(1.0)
    cached = rows[f"size={small} ops=10"]
    assert cached.memory_ms == pytest.approx(3 * 4 * small * 10 / 100e9 * 1e3)
    assert "torch at elementwise size=16777216 ops=10: 0% dispatch, 81% memory, 19% unexplained, 20.0 us per op over 10 ops" in \
        " ".join(explain.sentences(why))


def test_the_tax_is_explained_only_where_there_is_one():
    records = [_cell(1000, "torch", 1.0, 100, 9.0), _cell(1000, "torch-compile", 0.2, 100, 30.0),
               _cell(10, "torch", 0.1, 10, 9.0), _cell(10, "torch-compile", 0.3, 10, 30.0)]
    cells = tables.cells_table(records, LIMITS).assign(vs_eager_significant=True)
    why = explain.why_table(records, cells, LIMITS)
    taxes = explain.tax_table(why).set_index("params")
    paying = taxes.loc["size=1000 ops=100"]
    assert paying["tax_ms"] == pytest.approx(0.8)
    # eager dispatch 100 x 9 us = 0.9 ms; compiled one launch of 30 us: 0.87 ms of the 0.8 ms
    assert paying["dispatch_explains"] == pytest.approx((0.9 - 0.03) / 0.8)
    assert np.isnan(taxes.loc["size=10 ops=10", "dispatch_explains"])   # compiled is slower


def test_a_tax_within_its_interval_is_not_split_into_shares():
    records = [_cell(1000, "torch", 1.0, 100, 9.0), _cell(1000, "torch-compile", 0.2, 100, 30.0)]
    cells = tables.cells_table(records, LIMITS).assign(vs_eager_significant=False)
    taxes = explain.tax_table(explain.why_table(records, cells, LIMITS))
    assert taxes["tax_ms"].iloc[0] == pytest.approx(0.8)
    assert taxes[[f"{p}_explains" for p in explain.PARTS]].isna().all(axis=None)
