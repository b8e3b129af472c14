"""The result model: typed records round-trip, old files upgrade, bad files are one clear error
naming the file and line, and a stored run reports the same way whatever today's code says."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eagerbench.records import runfile
from eagerbench.records.model import CellResult, CellSpec, Record
from eagerbench.records.runfile import RAW, SCHEMA_VERSION, ResultsError, RunHeader, RunWriter
from eagerbench.report import build as report
from eagerbench.report import summary
from tests.conftest import record

SCHEMA1 = Path(__file__).parent / "data" / "schema1"   # a slice of the results of 1ada6ac


def _result(ms=(1.0, 1.1, 0.9), pid=1):
    samples = [{"ns": int(v * 1e6), "calls": 1, "step": i + 2, "gc_collections": 0, "gc_ns": 0,
                "loss": 0.5} for i, v in enumerate(ms)]
    return {"status": "ok", "warmup": samples[:1], "timed": samples, "setup_s": 0.1,
            "threads_applied": {"intra_op": 1}, "process": {"pid": pid, "started": 0.0},
            "wall_s": 1.0}


def _spec(**kw):
    return {"workload": "matmul", "params": {"size": 8}, "mode": "torch", "threads": 1,
            "iters": 3, "warmup": 1, **kw}


def _write_run(folder: Path, records, footer=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with RunWriter(folder / RAW, RunHeader.new({"device": "cpu", "threads": 1})) as writer:
        for rec in records:
            writer.record(rec)
        if footer:
            writer.footer({"run_wall_s": 5.0})
    return folder / RAW


def test_a_record_round_trips_through_json():
    rec = record(_spec(), _result())
    again = Record.from_json(json.loads(json.dumps(rec.to_json())))
    assert again == rec
    assert again.result.timed[0].observed == {"loss": 0.5}
    assert again.facts.label == "torch" and again.facts.flops == 2 * 8**3


def test_a_stored_run_keeps_its_facts_when_the_code_changes(tmp_path, monkeypatch):
    """Work counts and eager twins are stored when measured: a report of an old run does not
    depend on today's workload code."""
    rec = record(_spec(mode="torch-compile"), _result())
    _write_run(tmp_path, [rec])
    import workloads
    from eagerbench.frameworks import modes

    monkeypatch.setattr(workloads, "get_workload", lambda *a: pytest.fail("workload code read"))
    monkeypatch.setattr(modes, "get_mode", lambda *a: pytest.fail("mode code read"))
    (row,) = summary.cell_rows(runfile.read(tmp_path).records)
    assert row.eager_twin == "torch"
    assert row.gflops == pytest.approx(2 * 8**3 / 1e-3 / 1e9)


def test_the_committed_schema_1_results_load_through_the_upgrader(tmp_path):
    from eagerbench.frameworks import facts

    shutil.copytree(SCHEMA1, tmp_path / "run")
    with pytest.raises(ResultsError, match="facts.open_run"):
        runfile.read(tmp_path / "run")   # the record layer knows no workload code
    run = facts.open_run(tmp_path / "run")
    assert run.header.schema == 1 and run.finished
    assert len(run.records) == len((SCHEMA1 / RAW).read_text().splitlines())
    assert {r.facts.derived_by for r in run.records} == {"upgrade from schema 1"}
    assert run.header.host["cpu"] and run.env()["limits"]
    summary = report.build(tmp_path / "run")
    assert len(summary) == 14 and (tmp_path / "run" / "README.md").exists()
    assert (SCHEMA1 / RAW).read_bytes() == (tmp_path / "run" / RAW).read_bytes()


def test_a_new_run_writes_a_header_records_and_a_footer(tmp_path):
    _write_run(tmp_path, [record(_spec(), _result())])
    lines = [json.loads(line) for line in (tmp_path / RAW).read_text().splitlines()]
    assert lines[0]["header"]["schema"] == SCHEMA_VERSION
    assert set(lines[0]["header"]["host"]) >= {"cpu", "cores", "gpus"}
    assert "facts" in lines[1] and lines[2] == {"footer": {"run_wall_s": 5.0}}
    run = runfile.read(tmp_path)
    assert run.finished and run.env()["run_wall_s"] == 5.0


def test_a_rerun_supersedes_the_failed_record_which_stays_in_the_file(tmp_path):
    failed = record(_spec(), {"status": "failed", "reason": "killed"})
    ok = record(_spec(), _result())
    other = record(_spec(params={"size": 16}), _result())
    _write_run(tmp_path, [failed, other, ok])
    run = runfile.read(tmp_path)
    assert len(run.records) == 3
    assert run.latest() == [other, ok]


BAD_FILES = {
    "not JSON": ('{"header": {"schema": 2}}\n{"cell": oops\n', ":2: not JSON"),
    "truncated": ('{"header": {"schema": 2}}\n{"cell": {"workload": "mat', ":2: truncated"),
    "foreign": ('{"name": "something else"}\n', ":1: not an eagerbench raw.jsonl"),
    "newer schema": ('{"header": {"schema": 99}}\n', ":1: written with result schema 99"),
    "sample not a number": (None, ":2: a sample's ns is not a number: 'fast'"),
    "unknown workload (schema 1)": (None, ":1: unknown workload 'no-such'"),
    "unknown status": (None, ":2: result status 'maybe'"),
    "empty": ("", "empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\xff", "not text"),
}


def _bad_file(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RAW
    text, _ = BAD_FILES[kind]
    good = record(_spec(), _result()).to_json()
    if kind == "sample not a number":
        good["result"]["timed"][1]["ns"] = "fast"
        text = json.dumps({"header": {"schema": 2}}) + "\n" + json.dumps(good) + "\n"
    elif kind == "unknown workload (schema 1)":
        good["cell"]["workload"] = "no-such"
        good.pop("facts")
        text = json.dumps(good) + "\n"
    elif kind == "unknown status":
        good["result"]["status"] = "maybe"
        text = json.dumps({"header": {"schema": 2}}) + "\n" + json.dumps(good) + "\n"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_file_is_one_error_naming_file_and_line(tmp_path, kind):
    path = _bad_file(kind, tmp_path)
    from eagerbench.frameworks import facts

    with pytest.raises(ResultsError) as err:
        facts.open_run(tmp_path)
    assert str(err.value).startswith(str(path))
    assert BAD_FILES[kind][1] in str(err.value)
    assert "\n" not in str(err.value)


def test_a_record_of_an_unknown_workload_reports_from_its_stored_facts(tmp_path):
    """Schema 2 stores what a report needs: a workload since removed still reports."""
    recs = [record(_spec(params={"size": n}), _result()) for n in (8, 16)]
    gone = [dataclasses.replace(r, spec=dataclasses.replace(r.spec, workload="retired"))
            for r in recs]
    _write_run(tmp_path, gone)
    summary = report.build(tmp_path)
    assert list(summary["workload"]) == ["retired", "retired"]
    # the figure matmul declared when it was measured: a GFLOP/s sweep over size
    assert (tmp_path / "matmul_gflops.png").stat().st_size > 1000


@pytest.mark.parametrize("kind", ["truncated", "newer schema", "sample not a number"])
def test_report_on_a_bad_file_exits_2_with_one_line_and_changes_nothing(tmp_path, kind):
    path = _bad_file(kind, tmp_path)
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "eagerbench.cli", "report", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in proc.stderr
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [RAW]


def test_a_spec_identity_ignores_where_arrays_go():
    spec = CellSpec.from_json(_spec())
    assert spec.identity() == dataclasses.replace(spec, prepared={"path": "/x"}).identity()
    assert spec.identity() != dataclasses.replace(spec, repeat=1).identity()


def test_an_unknown_field_in_a_result_is_kept_not_dropped():
    res = CellResult.from_json({**_result(), "seconds": 3.5})
    assert res.extra == {"seconds": 3.5} and res.to_json()["seconds"] == 3.5


def test_promoting_a_finished_run_moves_everything_it_wrote(tmp_path):
    """The tables, the why table, the per-host reports and a cluster's job files all move with
    the run: the staging folder is gone, and the run that was there is whole in previous/."""
    from eagerbench.records import store

    def fill(folder: Path, tag: str) -> None:
        for name in (RAW, "env.json", "cells.csv", "why.csv", "README.md", "heatmap.png"):
            (folder / name).write_text(tag)
        for sub in ("hosts/1/README.md", "slurm/jobs/7_0/7_0_log.out"):
            (folder / sub).parent.mkdir(parents=True, exist_ok=True)
            (folder / sub).write_text(tag)

    target = tmp_path / "D"
    target.mkdir()
    fill(target, "old")
    staging = target / "run-1.partial"
    staging.mkdir()
    fill(staging, "new")
    kept = store.promote(staging, target)
    assert not staging.exists()
    for name in (RAW, "why.csv", "heatmap.png", "hosts/1/README.md", "slurm/jobs/7_0/7_0_log.out"):
        assert (target / name).read_text() == "new"
        assert (kept / name).read_text() == "old"
