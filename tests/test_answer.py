"""The answer: the eager tax read one way (eager / graph) everywhere, the headline matrix, the
terminal table that fits 100 columns, and a page generated from the records alone."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from eagerbench.records.runfile import RAW
from eagerbench.report import answer, exports, summary
from eagerbench.report import build as report
from eagerbench.report.rows import CellRow
from tests.recorded_runs import two_process_run, write_run


def _cells(seed: int = 1) -> list[CellRow]:
    return summary.summarize(two_process_run(np.random.default_rng(seed))).rows


def _at(rows: list[CellRow], params: str, mode: str) -> CellRow:
    return next(r for r in rows if (r.params, r.mode) == (params, mode))


def _changed(rows: list[CellRow], test, **fields) -> list[CellRow]:
    """The rows with ``fields`` set where ``test(row)`` holds."""
    return [replace(r, **fields) if test(r) else r for r in rows]


def test_the_tax_is_eager_over_graph_with_the_interval_inverted():
    cells = _cells()
    graph = _at(cells, "size=10 ops=100", "tf-graph").vs_eager
    tax = next(r for r in answer.taxes(cells)
               if r.params == "size=10 ops=100" and r.numerator == "tf-eager"
               and r.denominator == "tf-graph")
    assert tax.value == pytest.approx(1 / graph.value)
    assert tax.lo == pytest.approx(1 / graph.hi)
    assert tax.hi == pytest.approx(1 / graph.lo)
    assert tax.value == pytest.approx(30.0 / 3.5, rel=0.05)   # the planted times
    assert tax.is_tax and tax.lo < tax.value < tax.hi


def test_each_eager_modes_compiled_modes_in_display_order():
    assert answer.compiled_modes() == {"torch": ["torch-compile", "torch-cudagraph"],
                                       "tf-eager": ["tf-graph", "tf-xla"], "jax": ["jax-jit"]}


def test_a_taxs_flags_come_from_its_interval_and_from_either_step():
    cells = _cells()
    graph = next(r for r in cells if r.mode == "tf-graph" and r.workload == "lbfgs").vs_eager
    wide = replace(graph, lo=graph.value / 1.3, hi=graph.value * 1.3)       # imprecise
    cells = _changed(cells, lambda r: r.mode == "tf-graph" and r.workload == "lbfgs",
                     vs_eager=wide)
    cells = _changed(cells, lambda r: r.mode == "tf-eager" and r.workload == "lbfgs",
                     allocation_share=0.6)                   # the eager step faults
    tax = next(r for r in answer.taxes(cells)
               if r.workload == "lbfgs" and r.numerator == "tf-eager" and r.is_tax)
    assert set(tax.flags) == {"imprecise", "allocation-bound"} and tax.marks() == "ia"
    clean = next(r for r in answer.taxes(_cells())
                 if r.workload == "lbfgs" and r.numerator == "tf-eager" and r.is_tax)
    assert clean.flags == ()


def test_allocation_bound_taxes_are_not_in_a_frameworks_headline_figure():
    cells = _cells()
    rows = answer.headline_params(cells)
    before = answer.framework_lines(answer.taxes(cells), rows)
    assert any("over 2 cells" in line for line in before)
    cells = _changed(cells, lambda r: r.mode == "tf-eager" and r.workload == "lbfgs",
                     allocation_share=0.6)
    after = answer.framework_lines(answer.taxes(cells), rows)
    assert any("**tf-eager**" in line and "over 1 cells" in line for line in after)


def test_headline_rows_are_the_default_sweep_and_leave_out_the_full_grids_values():
    cells = _cells()
    extra = [replace(r, params="size=50 ops=100", param_values={**r.param_values, "size": 50})
             for r in cells if r.workload == "elementwise"]            # not a default value
    rows = answer.headline_params(cells + extra)
    assert ("elementwise", "size=10 ops=100") in rows
    assert ("elementwise", "size=50 ops=100") not in rows
    assert all(" " not in m for m in answer.matrix(cells).columns[2:] if "+" in m)


def test_the_terminal_answer_fits_100_columns_in_both_views():
    cells = _cells()
    small = answer.terminal(cells)
    assert max(len(line) for line in small.splitlines()) <= 100
    eager_row = next(line for line in small.splitlines() if line.strip().startswith("tf-eager"))
    tax = next(r for r in answer.taxes(cells)
               if r.params == "size=10 ops=100" and r.numerator == "tf-eager" and r.is_tax)
    assert "(tf-eager / tf-graph)" in small   # the tax sits on the compiled row, named
    assert any(answer.compact(tax) in line for line in small.splitlines())
    assert "tf-eager" in eager_row
    # a large run shows the headline matrix, one line per parameter set
    many = [replace(r, params=r.params + f" n={i}") for i in range(12) for r in cells]
    big = answer.terminal(many)
    assert "show RUN --all" in big and max(len(line) for line in big.splitlines()) <= 100
    assert max(len(line) for line in answer.terminal(many, all_rows=True).splitlines()) <= 100


def test_the_terminal_prints_a_wide_interval_whole():
    """A tax of 25x [3.7, 171] once printed as "25x [3.7-171] over torch-comp~" (--quick)."""
    from eagerbench.report.stats import Ratio

    cells = _changed(_cells(), lambda r: r.mode == "tf-graph" and r.params == "size=10 ops=100",
                     vs_eager=Ratio(1 / 25, 1 / 171, 1 / 3.7))
    tax = next(r for r in answer.taxes(cells)
               if r.params == "size=10 ops=100" and r.denominator == "tf-graph")
    out = answer.terminal(cells)
    assert answer.compact(tax) == "25x [3.7-171]" and answer.compact(tax) in out
    assert "~" not in out and "(tf-eager / tf-graph)" in out


def test_the_page_is_generated_from_the_records(tmp_path):
    """Editing a number in raw.jsonl changes the page: nothing on it is typed by hand."""
    write_run(tmp_path, two_process_run(np.random.default_rng(1)))
    report.build(tmp_path)
    before = (tmp_path / "README.md").read_text()
    lines = (tmp_path / RAW).read_text().splitlines()
    edited = []
    for line in lines:
        data = json.loads(line)
        if data.get("cell", {}).get("mode") == "tf-graph":      # tf-graph twice as slow
            for sample in data["result"]["timed"]:
                sample["ns"] *= 2
        edited.append(json.dumps(data))
    (tmp_path / RAW).write_text("\n".join(edited) + "\n")
    report.build(tmp_path)
    after = (tmp_path / "README.md").read_text()
    assert after != before
    graph = _at(exports.read_cells(tmp_path / "cells.csv"), "size=10 ops=100",
                "tf-graph").vs_eager
    tax = answer.ModeRatio("", "", "", "", 1 / graph.value, 1 / graph.hi, 1 / graph.lo)
    assert tax.text() in after and tax.text() not in before
    assert len(after.encode()) <= 15_000


def test_show_prints_the_stored_answer_and_report_prints_no_row_per_cell(tmp_path):
    from eagerbench.cli import cli

    write_run(tmp_path, two_process_run(np.random.default_rng(1)))
    built = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert built.exit_code == 0, built.output
    shown = CliRunner().invoke(cli, ["show", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "eager tax" in shown.output and "README.md" in shown.output
    assert shown.output == built.output        # report prints the same answer
    assert "|" not in shown.output             # not the markdown table of every row
    missing = CliRunner().invoke(cli, ["show", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not an eagerbench run folder" in missing.output
    assert "Traceback" not in missing.output


def test_every_page_links_only_files_that_exist(tmp_path):
    import re

    write_run(tmp_path, two_process_run(np.random.default_rng(1)))
    report.build(tmp_path)
    pages = [tmp_path / "README.md", tmp_path / "run.md",
             *sorted((tmp_path / "workloads").glob("*.md"))]
    assert {p.stem for p in pages[2:]} == {"lbfgs", "elementwise"}
    for page in pages:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            assert (page.parent / target).resolve().exists(), (page.name, target)


def test_a_wide_interval_is_shown_as_its_ends_not_as_a_plus_minus():
    narrow = answer.ModeRatio("w", "p", "tf-eager", "torch", 2.0, 1.8, 2.2)
    wide = answer.ModeRatio("w", "p", "tf-eager", "torch", 0.54, 0.084, 3.47)
    assert answer.compact(narrow) == "2.00x +-11%"
    assert answer.compact(wide) == "0.54x [0.084-3.5]"
    large = answer.ModeRatio("w", "p", "jax", "jax-jit", 430.0, 100.0, 1900.0)
    assert answer.compact(large) == "430x [100-1900]"          # never 4.3e+02x


def test_the_flag_marks_stay_apart_from_a_wide_interval_in_the_terminal():
    """jax-jit at 0.11x [0.04-0.31] over torch once ran into its marks ('[0.04-0.31]ib')."""
    cells = _cells()
    wide = [answer.ModeRatio(r.workload, r.params, r.numerator, r.denominator, 0.11, 0.04,
                             0.31, ("imprecise", "bimodal")) if r.denominator == "torch" else r
            for r in answer.taxes(cells)]
    rows = [line for line in answer.mode_rows(cells, wide) if line.endswith("ib")]
    assert rows and all(line.endswith(" ib") for line in rows), rows


def test_a_workload_run_only_at_sizes_of_the_users_choice_still_has_headline_rows():
    cells = _cells()
    chosen = [replace(r, params="size=50 ops=100", param_values={**r.param_values, "size": 50})
              for r in cells if r.workload == "elementwise"]
    rows = answer.headline_params([r for r in cells if r.workload == "lbfgs"] + chosen)
    assert ("elementwise", "size=50 ops=100") in rows


def test_the_taxes_of_one_eager_mode_are_ordered_by_their_compiled_mode():
    """tf-eager's two taxes (over tf-graph, over tf-xla) once tied on their numerator and came
    out in set order, which differed between processes."""
    from eagerbench.frameworks.modes import all_modes
    from eagerbench.report.answer import _column_order

    order = list(all_modes())
    pairs = [("tf-eager", "tf-xla"), ("jax", "jax-jit"), ("tf-eager", "tf-graph"),
             ("tf-xla", "torch"), ("torch", "torch-compile")]
    assert sorted(pairs, key=lambda p: _column_order(p, order)) == [
        ("torch", "torch-compile"), ("tf-eager", "tf-graph"), ("tf-eager", "tf-xla"),
        ("jax", "jax-jit"), ("tf-xla", "torch")]
