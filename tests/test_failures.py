"""A cell that crashes or is killed is recorded with its reason, and the run goes on."""

from __future__ import annotations

from dataclasses import replace

from eagerbench.execute.runner import Cell
from eagerbench.records import runfile
from tests.conftest import run_into

# Imported at interpreter start-up by the worker: it dies the way an OOM kill looks.
KILLER = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"

def test_killed_and_crashing_cells_are_recorded_and_the_run_continues(tmp_path):
    killer = tmp_path / "killer"
    killer.mkdir()
    # Imported at interpreter start-up by the worker: it dies the way an OOM kill looks.
    (killer / "sitecustomize.py").write_text(KILLER)
    cells = [
        Cell("matmul", {"size": 16}, "torch", threads=1, iters=2, warmup=1,
             extra_env={"PYTHONPATH": str(killer)}),
        Cell("matmul", {"size": 16}, "torch", dtype="float16", threads=1, iters=2, warmup=1),
        Cell("matmul", {"size": 16}, "torch", threads=1, iters=2, warmup=1),
    ]
    out = tmp_path / "run"
    records = run_into(cells, out, timeout=300)
    lines = list(runfile.read(out).records)
    assert [r.result.status for r in lines] == ["failed", "failed", "ok"]
    assert lines == records
    assert "SIGKILL" in lines[0].result.reason
    assert "float16" in lines[1].result.reason
    assert len(lines[2].result.timed) == 2


def test_a_cell_past_its_timeout_is_killed_and_recorded(tmp_path):
    cell = Cell("matmul", {"size": 1024}, "torch", threads=1, iters=100000, warmup=2)
    records = run_into([cell], tmp_path, timeout=4)
    assert records[0].result.status == "failed"
    assert "timed out after 4 s" in records[0].result.reason


def test_a_worker_killed_mid_batch_costs_only_the_cell_in_progress(tmp_path, monkeypatch):
    """The cells of one framework share a worker: when it dies (SIGKILL, as an out-of-memory
    kill does) the cell it was measuring is recorded as failed, and a new worker measures the
    rest."""
    monkeypatch.setenv("EAGERBENCH_KILL_AT", "1")
    cells = [Cell("matmul", {"size": n}, "torch", threads=1, iters=2, warmup=1)
             for n in (16, 24, 32)]
    records = run_into(cells, tmp_path, timeout=300)
    assert [r.result.status for r in records] == ["ok", "failed", "ok"]
    assert "SIGKILL" in records[1].result.reason
    pids = [r.result.process["pid"] for r in (records[0], records[2])]
    assert pids[0] != pids[1]
    assert len(runfile.read(tmp_path).records) == 3


def test_one_mode_that_fails_does_not_take_its_unit_down(tmp_path):
    """Eager and compiled modes of a parameter set are measured together; when one of them
    fails, the others are measured alone and kept."""
    cells = [Cell("matmul", {"size": 16}, mode, threads=1, iters=2, warmup=1,
                  options={"compile_mode": mode_option})
             for mode, mode_option in (("torch", "default"), ("torch-compile", "no-such-mode"))]
    records = run_into(cells, tmp_path, timeout=600)
    assert [r.result.status for r in records] == ["ok", "failed"]
    assert "no-such-mode" in records[1].result.reason


def test_report_and_warnings_survive_a_run_where_every_cell_failed(tmp_path, capsys):
    from eagerbench.cli.output import print_answer
    from eagerbench.report import build as report

    cell = Cell("matmul", {"size": 16}, "torch", dtype="float16", threads=1, iters=2, warmup=1)
    run_into([cell], tmp_path, timeout=300)
    summary = report.build(tmp_path)
    assert summary["note"].str.contains("failed").all()
    print_answer(tmp_path)   # no measured cell: an answer with no rows, and no crash
    assert "README.md" in capsys.readouterr().out
    assert "1 cells were not measured" in (tmp_path / "README.md").read_text()
    assert "Cells not measured" in (tmp_path / "workloads" / "matmul.md").read_text()


def test_interleaved_cell_is_one_process_but_one_record_per_value(tmp_path):
    """Orders of a derivative share a worker; each becomes its own record, and a failure of
    that one process is recorded against every value it carried."""
    from eagerbench.cli.common import plan

    cells, _ = plan(["higher-order"], ["torch"], {"order": [1, 3], "size": [8]}, iters=None,
                    warmup=None, repeat=1, threads=1, device="cpu", dtype="float64", seed=1,
                    data=None, gc_mode="on", min_time_s=0.0)
    assert len(cells) == 1 and cells[0].params["order"] == [1, 3]
    assert cells[0].iters == [20, 20]
    killer = tmp_path / "killer"
    killer.mkdir()
    (killer / "sitecustomize.py").write_text(KILLER)
    doomed = replace(cells[0], extra_env={"PYTHONPATH": str(killer)})
    records = run_into([cells[0], doomed], tmp_path / "run", timeout=300)
    assert [(r.spec.params["order"], r.result.status) for r in records] == [
        (1, "ok"), (3, "ok"), (1, "failed"), (3, "failed")]
    assert all(r.spec.interleaved == {"order": [1, 3]} for r in records)
    assert [len(r.result.timed) for r in records[:2]] == [20, 20]
    assert records[0].result.check != records[1].result.check
    assert "SIGKILL" in records[3].result.reason


def test_notes_of_a_run_where_some_cells_failed_read_nan_as_nothing():
    """A failed cell's row has NaN counters beside measured ones: its notes used to crash the
    end of such a run (int(NaN)) after every cell had been measured."""
    from eagerbench.report import cell_table, summary
    from tests.conftest import record

    sample = {"ns": 10**6, "calls": 1, "gc_collections": 0, "gc_ns": 0}
    ok = record({"workload": "matmul", "params": {"size": 8}, "mode": "torch"},
                {"status": "ok", "warmup": [sample], "timed": [sample] * 3,
                 "traces_during_timing": 1, "process": {"pid": 1}})
    failed = record({"workload": "matmul", "params": {"size": 16}, "mode": "torch"},
                    {"status": "failed", "reason": "worker killed by SIGKILL"})
    rows = summary.cell_rows([ok, failed])
    assert cell_table.notes(rows[0])[0] == "RETRACED 1x while timing"
    assert cell_table.notes(rows[1]) == []
    assert cell_table.summary_table(rows)["note"].tolist()[1] == \
        "failed: worker killed by SIGKILL"
