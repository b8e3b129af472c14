"""The declared figures' layout: what scale an axis gets and where legends go, read off the
matplotlib figure before it is saved (no framework, no process)."""

from __future__ import annotations

import pandas as pd
import pytest

from eagerbench.presentation import Bars, Series
from eagerbench.report.figures import declared as views


@pytest.fixture
def drawn(monkeypatch):
    """The figures ``views`` would save, kept open instead."""
    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path
    monkeypatch.setattr(views, "_save", keep)
    yield figures
    for fig in figures:
        views.plt.close(fig)


def _cells(medians: dict) -> pd.DataFrame:
    return pd.DataFrame([{"workload": "w", "status": "ok", "params": "n=1", "mode": mode,
                          "median_ms": ms, "q1_ms": 0.9 * ms, "q3_ms": 1.1 * ms}
                         for mode, ms in medians.items()])


def test_bars_over_a_narrow_range_are_linear_from_zero_and_a_wide_range_goes_log(drawn, tmp_path):
    views.bars(Bars(log_y=True), _cells({"a": 25.0, "b": 105.0}), "w", tmp_path / "n.png")
    views.bars(Bars(log_y=True), _cells({"a": 5.0, "b": 22000.0}), "w", tmp_path / "w.png")
    views.bars(Bars(log_y=False), _cells({"a": 5.0, "b": 22000.0}), "w", tmp_path / "x.png")
    narrow, wide, refused = (fig.axes[0] for fig in drawn)
    assert narrow.get_yscale() == "linear" and narrow.get_ylim()[0] == 0
    assert wide.get_yscale() == "log" and "log" in wide.get_ylabel()
    assert refused.get_yscale() == "linear"          # the workload did not allow a log axis


def test_bars_of_the_median_carry_the_samples_quartiles_and_a_legend_off_the_axes(drawn, tmp_path):
    views.bars(Bars(), _cells({"a": 10.0, "b": 20.0}), "w", tmp_path / "q.png")
    (ax,) = drawn[0].axes
    bars = [c for c in ax.containers if isinstance(c, views.matplotlib.container.BarContainer)]
    assert len(bars) == 2 and all(c.errorbar is not None for c in bars)
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1


def _iterations(panels: int) -> pd.DataFrame:
    return pd.DataFrame([{"workload": "w", "repeat": 0, "phase": "timed", "mode": mode,
                          "params": f"p={p}", "p_p": p, "iteration": step,
                          "ms": 1.0 + step + p, "calls": 1}
                         for p in range(panels) for mode in ("a", "b") for step in (3, 4, 5)])


def test_four_panels_are_laid_out_two_a_row_with_whole_step_numbers(drawn, tmp_path):
    views.series(Series(panels=("p",)), _iterations(4), "w", tmp_path / "s.png")
    visible = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert len(visible) == 4
    assert len({round(ax.get_position().x0, 2) for ax in visible}) == 2   # two columns
    ticks = [t for t in visible[0].get_xticks() if 3 <= t <= 5]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_three_panels_leave_the_fourth_place_empty(drawn, tmp_path):
    views.series(Series(panels=("p",)), _iterations(3), "w", tmp_path / "s.png")
    assert sum(ax.get_visible() for ax in drawn[0].axes) == 3
