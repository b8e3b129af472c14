"""The releases page's figures from a synthetic cells table: releases in version order (0.4
before 0.10), the tax as the inverse of the graph twin's ratio, the move between releases
with its interval, and modes a release lacks."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.records import runfile
from eagerbench.report import releases
from eagerbench.report.rows import CellRow
from eagerbench.report.stats import Ratio

ENV = {"environments": {f"jax=={v}": {"packages": {"jax": v, "jaxlib": v}}
                        for v in ("0.4.30", "0.10.2", "0.5.0")}}


def _twin_row(version: str, tax: float, half: float = 0.05, params: str = "size=10") -> CellRow:
    """The graph twin's row: vs_eager = graph / eager = 1 / tax, +-half on the log scale."""
    ratio = Ratio(1 / tax, 1 / tax / (1 + half), (1 + half) / tax, disagreement_p=0.5)
    return CellRow("elementwise", params, f"jax-jit @jax=={version}", vs_eager=ratio,
                   allocation_share=0.0)


def _cells(taxes: dict, half: float = 0.05) -> list[CellRow]:
    return [_twin_row(v, t, half) for v, t in taxes.items()] + [
        CellRow("elementwise", "size=10", f"jax @jax=={v}") for v in taxes]


def test_releases_are_rows_in_version_order_and_the_tax_is_eager_over_graph():
    cells = _cells({"0.10.2": 3.0, "0.4.30": 6.0, "0.5.0": 5.0})
    (table,) = releases.tables(releases.taxes(cells, ENV)).values()
    assert list(table["release"]) == ["jax 0.4.30", "jax 0.5.0", "jax 0.10.2"]
    column = "elementwise size=10 (jax / jax-jit)"
    assert table[column].iloc[0].startswith("6.00x [")
    assert table[column].iloc[2].startswith("3.00x [")


def test_the_largest_clear_move_is_said_with_its_interval():
    cells = _cells({"0.4.30": 6.0, "0.5.0": 5.8, "0.10.2": 2.9}, half=0.03)
    (line,) = releases.sentences(releases.taxes(cells, ENV))
    assert "moved most from 0.5.0 to 0.10.2" in line and "5.80x -> 2.90x" in line
    change = float(line.split("a change of ")[1].split("x")[0])
    assert np.isclose(change, 0.5, rtol=0.01)
    lo, hi = (float(v) for v in line.split("[")[1].split("]")[0].split(", "))
    assert lo < 0.5 < hi < 1            # the interval excludes no change
    assert "within noise" not in line


def test_moves_within_noise_are_said_to_be():
    cells = _cells({"0.4.30": 3.0, "0.10.2": 3.1}, half=0.3)
    (line,) = releases.sentences(releases.taxes(cells, ENV))
    assert "within noise" in line


def test_the_change_interval_adds_both_releases_variances():
    cells = _cells({"0.4.30": 4.0, "0.10.2": 2.0}, half=0.1)
    (move,) = releases.moves(releases.taxes(cells, ENV))
    one = np.log(1.1) / releases.Z95          # each tax's log-scale standard error
    assert np.isclose(np.log(move["hi"] / move["change"]), releases.Z95 * np.sqrt(2) * one)


def test_a_mode_a_release_lacks_is_listed_and_a_single_release_compares_nothing():
    cells = _cells({"0.4.30": 6.0}) + [CellRow(
        "elementwise", "size=10", "torch-compile @torch==1.13.1", status="unsupported",
        reason="unavailable in torch 1.13.1 (torch-compile needs 2.0 or newer)")]
    assert releases.unavailable(cells) == [
        "torch-compile @torch==1.13.1: unavailable in torch 1.13.1 (torch-compile needs 2.0 or "
        "newer)"]
    assert "nothing to compare" in releases.sentences(releases.taxes(cells, ENV))[0]


def test_labels_split_into_mode_and_environment():
    assert releases.split_label("jax-jit @jax==0.4.30") == ("jax-jit", "jax==0.4.30")
    assert releases.split_label("torch +thp") == ("torch", "")


def test_a_stored_run_across_releases_answers_by_release_and_compares_its_environments(tmp_path):
    """The page, the terminal and ``compare RUN@A RUN@B`` of a run with two environments."""
    from eagerbench.report import build as report
    from eagerbench.report import compare
    from tests.recorded_runs import two_release_run

    run = two_release_run(tmp_path, np.random.default_rng(3))
    report.build(run)
    page = (run / "README.md").read_text()
    assert page.startswith("# The eager tax across releases")
    assert "| jax 0.4.30 | 8.0" in page and "| jax 0.10.2 | 4.0" in page   # eager / graph
    assert "moved most from 0.4.30 to 0.10.2" in page and (run / "releases_jax.png").exists()

    old, new = (compare.load_side(f"{run}@{label}") for label in ("jax==0.4.30", "jax==0.10.2"))
    assert set(old.levels) == set(new.levels) == {
        ("elementwise", "size=10 ops=100", "jax"), ("elementwise", "size=10 ops=100", "jax-jit")}
    (view,) = [c for c in compare.tax_view([old, new]) if c.mode == "jax-jit"]
    assert np.allclose(view.values, (8.0, 4.0), rtol=0.02)   # eager / jit, as run prints it
    assert np.isclose(view.ratio(1).value, 0.5, rtol=0.02)   # the tax halved
    assert view.ratio(1).significant
    differences = compare.environment_differences([old, new])
    assert set(differences["setting"]) == {"jax version", "jaxlib version"}
    with pytest.raises(runfile.ResultsError, match="no environment 'jax==9'"):
        compare.load_side(f"{run}@jax==9")


def _timed(version: str, mode: str, ms: float, half: float = 0.02) -> CellRow:
    """A mode's row with its time, interval and 100 ops a call."""
    return CellRow("elementwise", "size=10", f"{mode} @jax=={version}", median_ms=ms,
                   median_lo_ms=ms / (1 + half), median_hi_ms=ms * (1 + half),
                   us_per_op=ms * 1e3 / 100)


def test_each_modes_own_time_per_release_and_what_the_tax_hid():
    """jax 2x and jax-jit 1.5x as long per op in the newer release: the tax moved only 1.33x,
    and a sentence says both modes got slower; where only one mode moved, nothing is said."""
    cells = [_timed("0.4.30", "jax", 0.4), _timed("0.4.30", "jax-jit", 0.005),
             _timed("0.10.2", "jax", 0.8), _timed("0.10.2", "jax-jit", 0.0075)]
    found = releases.times(cells, ENV)
    (table,) = releases.time_tables(found).values()
    assert list(table["release"]) == ["jax 0.4.30", "jax 0.10.2"]
    assert list(table.columns[1:]) == ["elementwise size=10 jax (us per op)",
                                       "elementwise size=10 jax-jit (us per op)"]
    assert table.iloc[0, 1] == "4.00 [3.92, 4.08]" and table.iloc[1, 2].startswith("0.0750 [")
    (line,) = releases.hidden_sentences(found)
    assert line.startswith("From jax 0.4.30 to 0.10.2, elementwise size=10: jax takes 2.00x [")
    assert "jax-jit 1.50x [" in line and "both got slower" in line and "only 1.33x" in line
    steady = cells[:3] + [_timed("0.10.2", "jax-jit", 0.005)]
    assert releases.hidden_sentences(releases.times(steady, ENV)) == []


def test_an_absolute_time_has_a_t_interval_over_its_processes():
    from eagerbench.report import stats

    one = stats.Level((np.log(2.0),), ("a",))
    assert all(np.isnan(v) for v in stats.level_interval(one))
    logs = np.log([1.9, 2.0, 2.1, 2.05])
    lo, hi = stats.level_interval(stats.Level(tuple(logs), ("a", "b", "c", "d")))
    half = 3.182446 * np.std(logs, ddof=1) / 2            # t(0.975, 3), four processes
    assert np.isclose(np.log(hi / lo) / 2, half) and lo < np.exp(logs.mean()) < hi
