"""Planning a run: which cells, in which order, sharing which worker processes."""

from __future__ import annotations

from eagerbench.execute.executors import batch_key
from eagerbench.execute.runner import batches
from eagerbench.plan.grid import plan

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


def test_the_full_grid_adds_the_allocator_companion_in_its_own_process():
    cells, _ = plan(("lbfgs",), ("torch,tf-eager",), {}, repeat=1, grid="full", **COMMON)
    thp = [c for c in cells if c.options.get("allocator") == "thp"]
    assert [(c.params, c.mode) for c in thp] == [({"history": 5, "batch": 60000}, "torch")]
    assert all(batch_key(thp[0]) != batch_key(c) for c in cells if c is not thp[0])
    torch_cells = [c for c in cells if c.mode == "torch"]
    assert torch_cells[-1] is thp[0]    # after torch's others: one process per setting
    assert len(batches(cells)) == 3     # torch, torch +thp, tf
    chosen, _ = plan(("lbfgs",), ("torch",), {}, repeat=1, allocator="default", grid="full",
                     **COMMON)
    assert not [c for c in chosen if c.options.get("allocator") == "thp"]


def test_the_default_grid_is_the_articles_and_full_adds_each_workloads_further_values():
    default, _ = plan(("higher-order", "lbfgs"), ("torch",), {}, repeat=1, **COMMON)
    full, _ = plan(("higher-order", "lbfgs"), ("torch",), {}, repeat=1, grid="full", **COMMON)
    def orders(cells):
        return [c.params["order"] for c in cells if c.workload == "higher-order"]

    assert orders(default) == [[1, 2, 3, 4]] and orders(full) == [[1, 2, 3, 4, 5, 6]]
    assert not [c for c in default if c.options.get("allocator") == "thp"]
    def lbfgs(cells):
        return sorted((c.params["history"], c.params["batch"]) for c in cells
                      if c.workload == "lbfgs" and c.options["allocator"] != "thp")

    assert lbfgs(default) == lbfgs(full) == [(5, 10000), (5, 60000), (100, 10000),
                                             (100, 60000)]
    # values named on the command line are run whichever grid
    named, _ = plan(("higher-order",), ("torch",), {"order": [6]}, repeat=1, **COMMON)
    assert orders(named) == [[6]]


def test_odd_repeats_reverse_the_order_and_only_the_first_carries_the_why_probes():
    cells, _ = plan(("elementwise",), ("torch,torch-compile,jax,jax-jit",), {"size": [10]},
                    repeat=3, **COMMON)
    by_repeat = [[c.mode for c in cells if c.repeat == r] for r in range(3)]
    assert by_repeat[0] == ["torch", "torch-compile", "jax", "jax-jit"]
    assert by_repeat[1] == ["jax-jit", "jax", "torch-compile", "torch"]
    assert by_repeat[2] == by_repeat[0]
    assert [c.why for c in cells] == [True] * 4 + [False] * 8
    off, _ = plan(("elementwise",), ("torch",), {"size": [10]}, repeat=2, why=False, **COMMON)
    assert not any(c.why for c in off)


def test_interleaved_values_stay_one_cell_per_mode():
    cells, _ = plan(("higher-order",), ("torch,jax",), {"order": [1, 3]}, repeat=1, **COMMON)
    assert [c.params["order"] for c in cells] == [[1, 3], [1, 3]]
    assert cells[0].iters == [20, 20]


def test_eager_modes_answer_to_their_aliases():
    cells, _ = plan(("matmul",), ("torch-eager,jax-eager",), {"size": [8]}, repeat=1, **COMMON)
    assert [c.mode for c in cells] == ["torch", "jax"]


def test_the_quick_grid_is_one_small_cell_per_family_in_the_eager_modes_and_their_twins():
    import pytest

    from eagerbench.plan.grid import PlanError
    from workloads import all_workloads

    cells, _ = plan((), (), {}, repeat=3, grid="quick", **COMMON)
    quick = {name for name, w in all_workloads().items() if w.quick}
    assert {c.workload for c in cells} == quick and {"lbfgs", "matmul"} <= quick
    first = [c for c in cells if c.repeat == 0]
    assert len({(c.workload, str(c.params)) for c in first}) == len(quick)   # one cell each
    assert {c.mode for c in first} == {"torch", "torch-compile", "tf-eager", "tf-graph",
                                       "jax", "jax-jit"}
    lbfgs = next(c for c in first if c.workload == "lbfgs")
    assert lbfgs.params == all_workloads()["lbfgs"].quick
    order = next(c for c in first if c.workload == "higher-order")
    assert order.params["order"] == all_workloads()["higher-order"].quick["order"]
    with pytest.raises(PlanError, match="drop --size"):
        plan(("matmul",), (), {"size": [64]}, repeat=3, grid="quick", **COMMON)
    named, _ = plan(("matmul",), ("torch,tf-xla",), {}, repeat=1, grid="quick", **COMMON)
    assert {c.mode for c in named} == {"torch", "tf-xla"}     # named modes are kept


def test_quick_on_the_command_line_sets_three_processes_without_why_or_limits(monkeypatch):
    from click.testing import CliRunner

    from eagerbench import cli as cli_module
    from eagerbench.cli import run as run_command
    from eagerbench.cli.common import UserError

    seen = {}

    def planned(*args, **kwargs):
        seen.update(kwargs)
        raise UserError("stop here")

    monkeypatch.setattr(run_command, "plan", planned)
    CliRunner().invoke(cli_module.cli, ["run", "--quick"])
    assert seen["grid"] == "quick" and seen["repeat"] == 3 and seen["why"] is False
    CliRunner().invoke(cli_module.cli, ["run", "--quick", "--repeat", "5", "--why"])
    assert seen["repeat"] == 5 and seen["why"] is True
    bad = CliRunner().invoke(cli_module.cli, ["run", "--quick", "--grid", "full"])
    assert bad.exit_code == 2 and "--quick chooses its own grid" in bad.output


def test_the_model_suite_is_its_own_grid_and_not_in_the_default_run():
    """No workload named: the default grid runs the article's workloads only, --grid models
    the model suite's; -w models names the suite."""
    default, _ = plan((), ("torch",), {}, repeat=1, **COMMON)
    models, _ = plan((), ("torch",), {}, repeat=1, grid="models", **COMMON)
    named, _ = plan(("models",), ("torch",), {"batch": [1]}, repeat=1, **COMMON)
    article = {"lbfgs", "matmul", "elementwise", "higher-order", "custom-gradient", "kfac",
               "convnet"}
    suite = {"resnet18", "mobilenet", "vit", "gpt", "bert", "keras-resnet18",
             "keras-mobilenet", "keras-vit", "keras-gpt", "keras-bert"}
    # (a user workload another test registered in this process may run by default too)
    assert article <= {c.workload for c in default} and not suite & {c.workload for c in default}
    assert {c.workload for c in models} == {c.workload for c in named} == suite
    assert {(c.params["step"], c.params["batch"]) for c in models if c.workload == "gpt"} == {
        ("train", 1), ("train", 16), ("infer", 1), ("infer", 16)}


def test_a_skipped_mode_is_noted_only_where_it_could_have_run_a_chosen_workload(tmp_path,
                                                                                monkeypatch):
    """torch-cudagraph (GPU only) is noted for a run with a PyTorch workload on the CPU, not
    for one whose workloads run in JAX or TensorFlow alone."""
    import workloads

    monkeypatch.delenv(workloads.ENV, raising=False)
    path = tmp_path / "jax_step.py"
    path.write_text("from eagerbench import native\n"
                    "WORKLOAD = native.workload('jax-step', 'jax', lambda p, env: ({}, {}),\n"
                    "                           lambda st, mem: (st, mem))\n")
    name = workloads.register([str(path)])[0]
    _, jax_only = plan((name,), (), {}, repeat=1, **COMMON)
    _, with_torch = plan((name, "matmul"), (), {}, repeat=1, **COMMON)
    assert not [n for n in jax_only if "torch-cudagraph" in n]
    assert [n for n in with_torch if "torch-cudagraph" in n]
