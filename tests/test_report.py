"""The report from stored records alone: the suite's figures, the article's table beside
today's, settings compared, the headline heatmap, ratios with intervals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from eagerbench.report import accounting, article, cellstats, summary
from eagerbench.report import build as report
from eagerbench.report import format as fmt
from eagerbench.report.pages import front as pages
from eagerbench.report.pages import run as runpage
from tests.recorded_runs import record_of as _record
from tests.recorded_runs import two_process_run as _run
from tests.recorded_runs import write_run as _write


def _rows(records) -> dict:
    return {(r.params, r.mode): r for r in summary.cell_rows(records)}


def test_cells_from_two_processes_have_ratios_with_intervals_paired_where_shared():
    cells = _rows(_run(np.random.default_rng(0)))
    lb = "history=5 batch=60000"
    graph = cells[(lb, "tf-graph")]
    assert graph.processes == 2
    assert graph.slowdown.lo < graph.slowdown.value < graph.slowdown.hi
    assert graph.vs_eager.significant
    # tf-graph and tf-eager shared their processes: the eager-tax interval is paired, narrower
    assert (graph.vs_eager.hi / graph.vs_eager.lo) < (graph.slowdown.hi / graph.slowdown.lo)
    thp = cells[(lb, "torch +thp")]
    assert thp.vs_eager.value < 0.8 and thp.vs_eager.significant   # against plain torch


def test_report_opens_with_the_run_line_the_answer_and_the_article_table(tmp_path):
    records = _run(np.random.default_rng(1))
    _write(tmp_path, records)
    report.build(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    first = readme.splitlines()[2]
    assert first.startswith("**This run:** ")          # the one-line header
    assert "10.0 min" in first and "2 processes per cell" in first and "flagged" in first
    assert "## The eager tax" in readme and "## The article beside today" in readme
    assert readme.index("## The eager tax") < readme.index("## The article beside today")
    assert "article measured on a GPU" in readme     # said plainly on a CPU run
    table = [line for line in readme.splitlines() if line.startswith("| l-BFGS, batch 60k")]
    eager = _rows(records)[("history=5 batch=60000", "tf-eager")].slowdown
    today = fmt.ratio(eager.value, eager.lo, eager.hi)
    assert len(table) == 1 and "1.4x" in table[0] and today in table[0]
    assert "not dispatch" in table[0]             # the allocation finding, with its numbers
    run = (tmp_path / "run.md").read_text()       # how the run went, in full
    assert "## This run" in run and "wall time was timed samples" in run
    assert "the workers' phases: warm-up 2 s, timed 5 s" in run and "## Machine" in run
    lbfgs = (tmp_path / "workloads" / "lbfgs.md").read_text()
    assert "## Settings compared" in lbfgs and "torch +thp" in lbfgs
    assert "torch +thp" not in readme.split("## The article")[0]   # a setting is no headline
    assert (tmp_path / "heatmap.png").stat().st_size > 1000


def test_the_allocation_finding_is_said_only_where_huge_pages_were_faster(tmp_path):
    """A run on another VM found torch with huge pages 1.05x plain torch's time, and the
    report still said its gap was allocating fresh tensors."""
    records = [replace(rec, result=replace(rec.result, timed=[
        replace(s, ns=int(s.ns * 850 / 600 * 1.05)) for s in rec.result.timed]))
        if rec.spec.options.get("allocator") == "thp" else rec
        for rec in _run(np.random.default_rng(1))]
    _write(tmp_path, records)
    report.build(tmp_path)
    head = (tmp_path / "README.md").read_text()
    table = [line for line in head.splitlines() if line.startswith("| l-BFGS, batch 60k")]
    assert "not dispatch" not in table[0] and "cannot say the gap is allocation" in table[0]


def test_article_rows_show_each_mode_and_skip_cases_not_measured():
    cells = summary.cell_rows(_run(np.random.default_rng(2)))
    table = article.table(cells, ["torch", "tf-eager", "tf-graph"])
    assert list(table["case (cell)"].str.split(" \\(").str[0]) == [
        "l-BFGS, batch 60k, history 5", "in-place add, tiny vectors"]
    tiny = table.iloc[1]
    assert float(tiny["tf-eager"].split("x")[0]) == pytest.approx(30, rel=0.05)
    assert "[" in tiny["tf-eager"]                 # with its interval
    assert "us" in tiny["what changed"]


def test_the_runs_account_counts_timed_time_and_flagged_rows():
    # every l-BFGS cell loads one start state, computed in this run in 42 s
    state = {"path": "/cache/lbfgs-1.npz", "by": "tf-graph", "cached": False, "seconds": 42.0}
    records = [replace(r, spec=replace(r.spec, prepared=state)) if r.spec.workload == "lbfgs"
               else r for r in _run(np.random.default_rng(3))]
    rows = summary.summarize(records).rows
    contention = {"before": {"iqr_share": 0.54}, "after": {"iqr_share": 0.31}}
    figures = accounting.account(records, rows, {"run_wall_s": 100.0,
                                                 "contention": contention}, 20.0)
    assert figures.suite_wall_s == 120.0
    assert figures.machine_iqr == {"before": 0.54, "after": 0.31}
    assert figures.prepare_s == 42.0
    assert "of which 42 s computing start states" in runpage.suite_lines(figures)[2]
    line = next(x for x in runpage.suite_lines(figures) if "host noisy" in x)
    assert "an IQR of 54% of its median (before) and 31% of its median (after)" in line
    timed = sum(s.ns for r in records for s in r.result.timed) / 1e9
    assert figures.timed_s == timed
    assert figures.timed_share == timed / len(records)   # each record's wall is 1 s
    assert figures.rows == len(rows)
    assert figures.flagged_rows == sum(bool(r.flags) for r in rows)
    assert sum(figures.flag_counts.values()) >= figures.flagged_rows
    # ten units (tf-eager and tf-graph share theirs), each with its own phase clock
    assert figures.phases_s == {"warm-up": pytest.approx(2.0), "timed": pytest.approx(5.0)}


def test_compile_costs_come_from_the_first_process_and_are_never_negative():
    """A compile cost is the cold first process's (a later one loads cached graphs, and its
    faster first calls must not count); warm-up calls no slower than the steady state cost 0,
    with a note, never a negative figure."""
    recs = [_record("elementwise", {"size": 10, "ops": 100}, "tf-graph", [1.0] * 10, 1, 0,
                    warmup_ms=[60.0, 20.0]),
            _record("elementwise", {"size": 10, "ops": 100}, "tf-graph", [1.0] * 10, 2, 1,
                    warmup_ms=[2.0, 1.0]),
            _record("elementwise", {"size": 10, "ops": 100}, "torch", [1.0] * 10, 3, 0,
                    warmup_ms=[0.5, 0.5])]
    first_call, compile_ms, note = cellstats.first_call_costs(recs[:2])
    assert first_call == pytest.approx(60.0)
    assert compile_ms == pytest.approx(78.0) and note == ""
    _, quick, quick_note = cellstats.first_call_costs(recs[2:])
    assert quick == 0.0 and quick_note.startswith("within noise")


def test_a_unit_that_started_cold_is_cold_though_it_found_its_own_graphs():
    """A model's torch-compile unit in a first process found graphs in its cache: its own,
    compiled earlier in its warm-up (a recompile of the same graph). Its unit started from
    the empty template, so its compile cost is measured; a record that does not say so, with
    hits, stays unmeasured; a later process never counts."""
    rec = next(r for r in _run(np.random.default_rng(4)) if r.spec.repeat == 0)
    rec.result.compile_cache.update({"graph_hits": 3, "cold_unit": 1})
    assert cellstats.compiled_cold(rec)
    rec.result.compile_cache["cold_unit"] = 0
    assert not cellstats.compiled_cold(rec)
    del rec.result.compile_cache["cold_unit"]
    assert not cellstats.compiled_cold(rec)
    rec.result.compile_cache.update({"graph_hits": 0, "cold_unit": 1})
    assert not cellstats.compiled_cold(replace(rec, spec=replace(rec.spec, repeat=1)))


def test_a_compile_cost_not_measured_says_why_and_is_not_read_as_never(tmp_path):
    """A first process that found its graphs in the cache measured no compile: the row says
    so, and the break-even table and plot show "not measured", not "never"."""
    from eagerbench.report.figures.headline import break_even, break_even_table

    recs = _run(np.random.default_rng(4))
    for rec in recs:
        if rec.spec.mode == "tf-graph":
            rec.result.compile_cache["graph_hits"] = 1
    cells = summary.cell_rows(recs)
    graph = _rows(recs)[("size=10 ops=100", "tf-graph")]
    assert np.isnan(graph.compile_ms) and graph.compile_note.startswith("not measured")
    be = break_even_table(cells).set_index(["params", "mode"]).loc[("size=10 ops=100",
                                                                    "tf-graph")]
    assert np.isnan(be["break_even_calls"]) and be["note"].startswith("not measured")
    row = next(line for line in pages._break_even(cells)[-2].splitlines()
               if "tf-graph" in line and "size=10" in line)
    assert "not measured" in row and "never" not in row
    assert break_even(cells, tmp_path) is not None


def test_a_compile_that_repays_within_its_first_call_is_marked_not_left_blank():
    """On a log axis from one call, a bar of under one call has no length: jax-jit's rows
    (a compile of 31 ms against eager steps 188x slower) looked like missing data."""
    import matplotlib.pyplot as plt

    from eagerbench.report.figures.headline import break_even_figure

    be = pd.DataFrame([{"workload": "w", "params": "p", "mode": mode, "break_even_calls": n}
                       for mode, n in (("jax-jit", 0.3), ("tf-graph", 40.0),
                                       ("tf-xla", np.inf), ("torch-compile", np.nan))])
    fig = break_even_figure(be)
    ax = fig.axes[0]
    marks = sorted(t.get_text() for t in ax.texts)
    assert marks == ["1", "n/m"]
    widths = sorted(bar.get_width() for bar in ax.patches)
    assert len(widths) == 2 and widths[0] == 40.0     # tf-graph's bar and tf-xla's "never"
    plt.close(fig)


def test_break_even_uses_the_whole_compile_cost():
    cells = summary.cell_rows(_run(np.random.default_rng(4)))
    from eagerbench.report.figures.headline import break_even_table

    be = break_even_table(cells).set_index(["params", "mode"])
    row = be.loc[("size=10 ops=100", "tf-graph")]
    # a 60 ms first call and a 20 ms second one (a compile the first version left out)
    assert row["compile_ms"] > 79 and row["first_call_ms"] == pytest.approx(60)
    assert row["break_even_calls"] == pd.Series(row["compile_ms"]
                                                / row["saving_ms_per_call"]).iloc[0]


def test_the_rate_column_shows_time_per_op_only_where_a_call_dispatches_several():
    """A matmul is one op: its time per op is its time, so the column gives GFLOP/s; a chain
    of 100 adds gives us per op, and both give GB/s where the bytes are known."""
    nan = float("nan")
    assert fmt.rate(15600.0, 137.0, nan, 15.6 * 1e3 / 15600.0) == "137 GFLOP/s"     # matmul
    assert fmt.rate(2.0, 0.5, 6.0, 0.2 * 1e3 / 2.0) == "2.00 us/op, 6.00 GB/s"      # a chain
    assert fmt.rate(nan, 60.0, nan, 0.0) == "60.0 GFLOP/s"                           # l-BFGS


def test_report_out_writes_elsewhere_and_leaves_the_run_as_it_was(tmp_path):
    from click.testing import CliRunner

    from eagerbench.cli import cli

    run = tmp_path / "run"
    run.mkdir()
    _write(run, _run(np.random.default_rng(1)))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = CliRunner().invoke(cli, ["report", str(run), "--out", str(tmp_path / "page")])
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert (tmp_path / "page" / "README.md").is_file()
    assert (tmp_path / "page" / "cells.csv").is_file()
    (tmp_path / "file").write_text("x")
    bad = CliRunner().invoke(cli, ["report", str(run), "--out", str(tmp_path / "file")])
    assert bad.exit_code == 2 and "is a file" in bad.output


def test_the_front_page_links_the_runs_kept_in_its_folder(tmp_path):
    """results/models/ and results/releases/ are runs of their own: the front page links each
    by its page's title; a folder without records (previous/, workloads/) is no run."""
    _write(tmp_path, _run(np.random.default_rng(1)))
    report.build(tmp_path)
    assert "## More runs in this folder" not in (tmp_path / "README.md").read_text()
    models = tmp_path / "models"
    models.mkdir()
    (models / "raw.jsonl").write_text("")
    (models / "README.md").write_text("# The eager tax of real models\n\nbody\n")
    (tmp_path / "previous" / "20261201-1200").mkdir(parents=True)
    report.build(tmp_path)
    page = (tmp_path / "README.md").read_text()
    section = page.split("## More runs in this folder\n\n", 1)[1].split("\n\n", 1)[0]
    assert section == "- [The eager tax of real models](models/README.md)"
