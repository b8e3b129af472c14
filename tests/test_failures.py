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
    cell = Cell("matmul", {"size": 1024}, "torch", threads=1, iters=100000, warmup=2)
    records = run_cells([cell], tmp_path, timeout=4, progress=False)
    assert records[0]["result"]["status"] == "failed"
    assert "timed out after 4 s" in records[0]["result"]["reason"]


def test_a_worker_killed_mid_batch_costs_only_the_cell_in_progress(tmp_path, monkeypatch):
    """The cells of one framework share a worker: when it dies (SIGKILL, as an out-of-memory
    kill does) the cell it was measuring is recorded as failed, and a new worker measures the
    rest."""
    monkeypatch.setenv("EAGERBENCH_KILL_AT", "1")
    cells = [Cell("matmul", {"size": n}, "torch", threads=1, iters=2, warmup=1)
             for n in (16, 24, 32)]
    records = run_cells(cells, tmp_path, timeout=300, progress=False)
    assert [r["result"]["status"] for r in records] == ["ok", "failed", "ok"]
    assert "SIGKILL" in records[1]["result"]["reason"]
    pids = [r["result"]["process"]["pid"] for r in (records[0], records[2])]
    assert pids[0] != pids[1]
    assert len((tmp_path / "raw.jsonl").read_text().splitlines()) == 3


def test_one_mode_that_fails_does_not_take_its_unit_down(tmp_path):
    """Eager and compiled modes of a parameter set are measured together; when one of them
    fails, the others are measured alone and kept."""
    cells = [Cell("matmul", {"size": 16}, mode, threads=1, iters=2, warmup=1,
                  options={"compile_mode": mode_option})
             for mode, mode_option in (("torch", "default"), ("torch-compile", "no-such-mode"))]
    records = run_cells(cells, tmp_path, timeout=600, progress=False)
    assert [r["result"]["status"] for r in records] == ["ok", "failed"]
    assert "no-such-mode" in records[1]["result"]["reason"]


def test_report_and_warnings_survive_a_run_where_every_cell_failed(tmp_path, capsys):
    from eagerbench import report
    from eagerbench.cli import _warn_noisy

    cell = Cell("matmul", {"size": 16}, "torch", dtype="float16", threads=1, iters=2, warmup=1)
    run_cells([cell], tmp_path, timeout=300, progress=False)
    summary = report.build(tmp_path)
    assert summary["note"].str.contains("failed").all()
    _warn_noisy(tmp_path)   # no measured cell: nothing to warn about, and no crash
    assert "Cells not measured" in (tmp_path / "README.md").read_text()


def test_interleaved_cell_is_one_process_but_one_record_per_value(tmp_path):
    """Orders of a derivative share a worker; each becomes its own record, and a failure of
    that one process is recorded against every value it carried."""
    from eagerbench.cli import plan

    cells, _ = plan(["higher-order"], ["torch"], {"order": [1, 3], "size": [8]}, iters=None,
                    warmup=None, repeat=1, threads=1, device="cpu", dtype="float64", seed=1,
                    data=None, gc_mode="on", min_time_s=0.0)
    assert len(cells) == 1 and cells[0].params["order"] == [1, 3]
    assert cells[0].iters == [20, 20]
    killer = tmp_path / "killer"
    killer.mkdir()
    (killer / "sitecustomize.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    doomed = Cell(**{**cells[0].__dict__, "extra_env": {"PYTHONPATH": str(killer)}})
    records = run_cells([cells[0], doomed], tmp_path / "run", timeout=300, progress=False)
    assert [(r["cell"]["params"]["order"], r["result"]["status"]) for r in records] == [
        (1, "ok"), (3, "ok"), (1, "failed"), (3, "failed")]
    assert all(r["cell"]["interleaved"] == {"order": [1, 3]} for r in records)
    assert [len(r["result"]["timed"]) for r in records[:2]] == [20, 20]
    assert records[0]["result"]["check"] != records[1]["result"]["check"]
    assert "SIGKILL" in records[3]["result"]["reason"]
