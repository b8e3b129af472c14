"""l-BFGS is timed with the memory it is labelled with: every cell starts from a prepared state
whose memory is full, and every row says how many pairs its timed iterations held."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.execute import start_states as prepared
from eagerbench.execute.runner import Cell
from eagerbench.frameworks.modes import all_modes, get_mode
from eagerbench.report import cell_table, summary
from tests.conftest import rel_diff, run_into
from workloads import get_workload, lbfgs_optimizer, mnist

MODES = [m.name for m in all_modes().values() if m.installed() and "cpu" in m.devices]
PARAMS = {"history": 4, "batch": 80}
CTX = {"seed": 1, "data": lambda batch: mnist.standin(batch, 1)}


@pytest.fixture(scope="module")
def start_state():
    return get_workload("lbfgs").prepare(get_mode("torch").make("cpu", "float64", 1), PARAMS, CTX)


def test_the_prepared_state_holds_history_minus_one_pairs(start_state):
    assert int(start_state["k"]) == PARAMS["history"] - 1
    assert start_state["S"].shape == (PARAMS["history"], 784 * 196)
    filled = np.abs(start_state["S"]).sum(axis=1) > 0
    assert filled.sum() == PARAMS["history"] - 1       # the next iteration fills the last slot


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_continues_from_it_with_a_full_memory_and_the_same_numbers(mode,
                                                                            start_state):
    """Resumed in each mode, the next iterations hold ``history`` pairs and agree with PyTorch
    eager resumed from the same state, in float64."""
    def losses(name):
        B = get_mode(name).make("cpu", "float64", 1)
        task = get_workload("lbfgs").build(B, PARAMS, {**CTX, "prepared": start_state})
        st, mem, seen = task.st, task.mem, []
        for _ in range(3):
            st, mem = task.step(st, mem)
            seen.append(task.observe(st, mem))
        return [s["loss"] for s in seen], [s["pairs"] for s in seen]

    ours, pairs = losses(mode)
    assert pairs == [PARAMS["history"]] * 3
    assert rel_diff(ours, losses("torch")[0]) < 1e-8


def test_export_and_resume_are_inverse():
    B = get_mode("tf-eager").make("cpu", "float64", 1)   # keeps its history as a list of rows
    task = get_workload("lbfgs").build(B, PARAMS, CTX)
    st, mem = task.st, task.mem
    for _ in range(3):
        st, mem = task.step(st, mem)
    saved = lbfgs_optimizer.export_state(B, st, mem)
    again = lbfgs_optimizer.export_state(B, *lbfgs_optimizer.resume_state(B, saved))
    for name, value in saved.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)


def test_a_run_prepares_once_and_every_row_shows_a_full_memory(tmp_path, monkeypatch):
    """End to end: the first version's history-100 rows held at most 6 pairs. Now the state is
    prepared once per run (cached), and the ``pairs`` column shows the memory held."""
    monkeypatch.setenv("EAGERBENCH_CACHE", str(tmp_path / "cache"))
    cells = [Cell("lbfgs", dict(PARAMS), mode, threads=1, iters=3, warmup=2, repeat=r)
             for r in range(2) for mode in ("torch", "tf-graph")]
    said = []
    records = run_into(cells, tmp_path / "run", timeout=600)
    assert all(r.result.ok for r in records), records
    states = {r.spec.prepared["path"] for r in records}
    assert len(states) == 1 and list((tmp_path / "cache" / "prepared").glob("*.npz"))
    for r in records:
        assert [s.observed["pairs"] for s in r.result.timed] == [PARAMS["history"]] * 3
    rows = summary.cell_rows(records)
    assert {r.shown_values["pairs"] for r in rows} == {str(PARAMS["history"])}
    table = cell_table.summary_table(rows)
    assert set(table["pairs"]) == {str(PARAMS["history"])}
    # a second run finds the state cached
    again = prepared.attach(cells[:1], 600, said.append)
    assert again[0].prepared["cached"] and said == []


def test_a_prepared_state_depends_on_its_own_program_only():
    """The cache key hashes the modules l-BFGS is made of (a change to one recomputes minutes
    of l-BFGS at batch 60k), not every workload: editing the element-wise one keeps it."""
    from workloads import get_workload

    names = [m.__name__ for m in prepared._program_modules(get_workload("lbfgs"))]
    assert names == ["workloads.autoencoder", "workloads.lbfgs", "workloads.lbfgs_optimizer",
                     "workloads.mnist"]
    assert [m.__name__ for m in prepared._program_modules(get_workload("elementwise"))] == [
        "workloads.elementwise"]
    assert prepared._code_hash(get_workload("lbfgs")) != prepared._code_hash(
        get_workload("elementwise"))
