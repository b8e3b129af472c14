"""A cell that crashes or is killed is recorded with its reason, and the run goes on."""

from __future__ import annotations

import json

from eagerbench.runner import Cell, run_cells


def test_killed_and_crashing_cells_are_recorded_and_the_run_continues(tmp_path):
    killer = tmp_path / "killer"
    killer.mkdir()
    # Imported at interpreter start-up by the worker: it dies the way an OOM kill looks.
    (killer / "sitecustomize.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    cells = [
        Cell("matmul", {"size": 16}, "torch", threads=1, iters=2, warmup=1,
             extra_env={"PYTHONPATH": str(killer)}),
        Cell("matmul", {"size": 16}, "torch", dtype="float16", threads=1, iters=2, warmup=1),
        Cell("matmul", {"size": 16}, "torch", threads=1, iters=2, warmup=1),
    ]
    out = tmp_path / "run"
    records = run_cells(cells, out, timeout=300, progress=False)
    lines = [json.loads(l) for l in (out / "raw.jsonl").read_text().splitlines()]
    assert [r["result"]["status"] for r in lines] == ["failed", "failed", "ok"]
    assert lines == records
    assert "SIGKILL" in lines[0]["result"]["reason"]
    assert "float16" in lines[1]["result"]["reason"]
    assert len(lines[2]["result"]["timed"]) == 2


def test_a_cell_past_its_timeout_is_killed_and_recorded(tmp_path):
    cell = Cell("lbfgs", {"history": 5, "batch": 60000}, "torch", threads=1, iters=1000,
                warmup=2)
    records = run_cells([cell], tmp_path, timeout=4, progress=False)
    assert records[0]["result"]["status"] == "failed"
    assert "timed out after 4 s" in records[0]["result"]["reason"]


def test_report_and_warnings_survive_a_run_where_every_cell_failed(tmp_path, capsys):
    from eagerbench import report
    from eagerbench.cli import _warn_noisy

    cell = Cell("matmul", {"size": 16}, "torch", dtype="float16", threads=1, iters=2, warmup=1)
    run_cells([cell], tmp_path, timeout=300, progress=False)
    summary = report.build(tmp_path)
    assert summary["note"].str.contains("failed").all()
    _warn_noisy(tmp_path)   # no measured cell: nothing to warn about, and no crash
    assert "Cells not measured" in (tmp_path / "README.md").read_text()
