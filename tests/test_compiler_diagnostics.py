"""The compiler's diagnostics: a planted graph break and a planted recompile, and the bytes a
compiled program moves (XLA's optimised HLO)."""

from __future__ import annotations

import pytest

from eagerbench.report import cell_table, explain, summary
from eagerbench.worker import counters
from tests.conftest import build

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
    from eagerbench.records import runfile
    from tests.conftest import eagerbench_cli

    folder = tmp_path_factory.mktemp("planted")
    path = folder / "planted.py"
    path.write_text(PLANTED)
    proc = eagerbench_cli("run", "-w", f"{path}:BREAKING,{path}:RECOMPILING", "--modes",
                          "torch,torch-compile", "--repeat", "1", "--min-time", "0",
                          "--threads", "1", "--no-limits", "-q", "--out", folder / "run")
    assert proc.returncode == 0, proc.stderr
    run = runfile.read(folder / "run")
    cells = summary.cell_rows(run.latest())
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
    row = next(r for r in cells if (r.workload, r.mode) == ("recompiling", "torch-compile"))
    assert row.compiles_during_timing > 0
    assert "RECOMPILED" in cell_table.summary_table(cells).set_index(
        ["workload", "mode"]).loc[("recompiling", "torch-compile"), "note"]


@pytest.mark.parametrize("mode", ["jax-jit", "torch-compile"])
def test_the_compiler_counts_a_fused_chains_bytes_without_compiling_again(mode):
    """Five adds of 4,096 floats, fused: 3 x 4 B x 4,096 per call, once. Taking XLA's count
    compiles nothing (its executable is the first call's)."""
    B, task = build(mode, "elementwise", {"size": 4096, "ops": 5}, dtype="float32")
    before = B.graph_diagnostics()
    st, mem = task.step(task.st, task.mem)
    st, mem = task.step(st, mem)
    compiles = B.compile_events()["count"]
    delta = counters.compiler_delta(before, B.graph_diagnostics())
    assert delta["bytes_accessed"] == 3 * 4 * 4096
    assert B.compile_events()["count"] == compiles


@pytest.mark.parametrize("size,ops", [(4096, 5), (10**7, 1)])
def test_tensorflows_xla_bytes_are_read_from_its_optimised_hlo_without_tracing_again(size, ops):
    """tf-xla: five adds of 4,096 floats into a variable fuse into one loop (a and b in, b
    out): 3 reads and writes of 4 B x 4,096 per call; the input the step hands back unchanged
    is handed back outside the graph, not copied by XLA (2 more). TensorFlow has no cost
    analysis; its HLO says as much. Arguments of 80 MB (1e7 floats) are made again for it
    too."""
    B, task = build("tf-xla", "elementwise", {"size": size, "ops": ops}, dtype="float32")
    before = B.graph_diagnostics()
    st, mem = task.step(task.st, task.mem)
    traces = B.trace_count()
    delta = counters.compiler_delta(before, B.graph_diagnostics())
    assert delta["bytes_accessed"] == 3 * 4 * size
    assert B.trace_count() == traces
    assert st["a"] is task.st["a"]


HLO = """HloModule step, entry_computation_layout={(f32[10]{0}, f32[10]{0})->(f32[10]{0})}

%fused (p0: f32[10], p1: f32[10]) -> f32[10] {
  %p0 = f32[10]{0} parameter(0)
  ROOT %add = f32[10]{0} add(%p0, %p0)
}

ENTRY %main (a: f32[10], b: f32[20]) -> (f32[10], f32[10]) {
  %a = f32[10]{0} parameter(0), parameter_replication={false}
  %b = f32[20]{0} parameter(1)
  %copy = f32[10]{0} copy(%a)
  %fusion = f32[10]{0} fusion(%a, %b), kind=kLoop, calls=%fused, metadata={op_name="x(y)"}
  ROOT %tuple = (f32[10]{0}, f32[10]{0}) tuple(%copy, %fusion)
}
"""


def test_an_hlo_programs_bytes_are_its_top_level_instructions_operands_and_results():
    """A copy (40 B in, 40 out) and a fusion (40 + 80 in, 40 out); parameters and tuples
    move nothing, and a fused computation's inside is not counted again. A loop's count is
    unknown."""
    from eagerbench.frameworks.backends.hlo import entry_bytes

    assert entry_bytes(HLO) == 80 + 160
    looping = HLO.replace("copy(%a)", "while(%a), condition=%c, body=%fused")
    assert entry_bytes(looping) is None and entry_bytes("HloModule empty") is None
