"""Planning a run: which cells, in which order, sharing which worker processes."""

from __future__ import annotations

from eagerbench.plan import plan
from eagerbench.executors.local import batch_key
from eagerbench.runner import batches

COMMON = dict(iters=None, warmup=None, threads=1, device="cpu", dtype="float32", seed=1,
              data=None, gc_mode="on")


def test_every_cell_runs_in_repeat_processes_one_per_framework_and_repeat():
    cells, _ = plan(("elementwise",), ("torch,torch-compile,tf-eager,tf-graph,jax,jax-jit",),
                    {"size": [10, 1000]}, repeat=2, **COMMON)
    assert len(cells) == 2 * 2 * 6
    assert [c.repeat for c in cells] == [0] * 12 + [1] * 12
    groups = batches(cells)
    assert len(groups) == 2 * 3                 # a worker per framework and repeat
    for group in groups:
        assert len({batch_key(c) for c in group}) == 1
    torch_first = groups[0]
    # eager next to compiled for each size: they are measured interleaved
    assert [(c.params["size"], c.mode) for c in torch_first] == [
        (10, "torch"), (10, "torch-compile"), (1000, "torch"), (1000, "torch-compile")]


def test_the_default_suite_adds_the_allocator_companion_in_its_own_process():
    cells, _ = plan(("lbfgs",), ("torch,tf-eager",), {}, repeat=1, **COMMON)
    thp = [c for c in cells if c.options.get("allocator") == "thp"]
    assert [(c.params, c.mode) for c in thp] == [({"history": 5, "batch": 60000}, "torch")]
    assert all(batch_key(thp[0]) != batch_key(c) for c in cells if c is not thp[0])
    torch_cells = [c for c in cells if c.mode == "torch"]
    assert torch_cells[-1] is thp[0]    # after torch's others: one process per setting
    assert len(batches(cells)) == 3     # torch, torch +thp, tf
    chosen, _ = plan(("lbfgs",), ("torch",), {}, repeat=1, allocator="default", **COMMON)
    assert not [c for c in chosen if c.options.get("allocator") == "thp"]


def test_interleaved_values_stay_one_cell_per_mode():
    cells, _ = plan(("higher-order",), ("torch,jax",), {"order": [1, 3]}, repeat=1, **COMMON)
    assert [c.params["order"] for c in cells] == [[1, 3], [1, 3]]
    assert cells[0].iters == [20, 20]
