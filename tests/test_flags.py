"""Each flag planted in synthetic records and raised, with a negative control that is not:
imprecise, processes disagree, bimodal, allocation-bound, results disagree, host noisy; and the
retired rules (IQR over 10%, drift over few samples) raise nothing."""

from __future__ import annotations

import dataclasses

import numpy as np

from eagerbench.report import flags, summary
from eagerbench.report.rows import CellRow
from eagerbench.report.stats import Ratio
from tests.conftest import record


def _records(rng, eager: list, compiled: list, samples=None) -> list:
    """Matmul size=64 in torch and torch-compile, measured back to back in one process per
    entry of ``eager``/``compiled`` (each a process's median ms); ``samples(rng, median)``
    draws a process's per-call times (1% log-normal by default)."""
    draw = samples or (lambda rng, median: median * np.exp(rng.normal(0, 0.01, 40)))
    out = []
    for p, (e, c) in enumerate(zip(eager, compiled)):
        for mode, median in (("torch", e), ("torch-compile", c)):
            ms = draw(rng, median)
            timed = [{"ns": int(v * 1e6), "calls": 1, "step": i + 2, "gc_collections": 0,
                      "gc_ns": 0} for i, v in enumerate(ms)]
            cell = {"workload": "matmul", "params": {"size": 64}, "mode": mode, "threads": 2,
                    "iters": len(ms), "warmup": 1, "repeat": p}
            out.append(record(cell, {"status": "ok", "warmup": timed[:1], "timed": timed,
                                     "process": {"pid": 1000 + p, "started": 0.0}}))
    return out


def _compiled_row(records, allocation_share: float = np.nan) -> CellRow:
    """The compiled cell's row, with the share of fresh pages the why phase found (NaN: no
    why phase)."""
    row = next(r for r in summary.cell_rows(records) if r.mode == "torch-compile")
    row = dataclasses.replace(row, allocation_share=allocation_share)
    return dataclasses.replace(row, flags=flags.row_flags(row))


def _flags(records, allocation_share: float = np.nan) -> list[str]:
    return list(_compiled_row(records, allocation_share).flags)


def test_imprecise_when_the_processes_scatter_and_not_when_they_agree():
    rng = np.random.default_rng(0)
    eager = [10.0] * 5
    scattered = [5.0 * np.exp(x) for x in (0.3, -0.3, 0.25, -0.2, 0.0)]
    row = _compiled_row(_records(rng, eager, scattered))
    assert row.vs_eager.half_width > 0.10 and "imprecise" in row.flags
    steady = [5.0 * np.exp(x) for x in (0.01, -0.01, 0.005, -0.005, 0.0)]
    row = _compiled_row(_records(rng, eager, steady))
    assert row.vs_eager.half_width < 0.10 and "imprecise" not in row.flags


def test_processes_disagree_when_one_process_measures_another_ratio():
    """Five processes, 1% noise within each: four agree on 0.5x and one measures 0.6x. The
    shared process shift (eager and compiled moved together) is not disagreement."""
    rng = np.random.default_rng(1)
    shifts = [1.0, 1.3, 0.8, 1.1, 0.9]                      # moves both modes of a process
    eager = [10.0 * s for s in shifts]
    odd = [5.0 * s * (1.2 if p == 2 else 1.0) for p, s in enumerate(shifts)]
    assert "processes disagree" in _flags(_records(rng, eager, odd))
    agree = [5.0 * s for s in shifts]
    assert "processes disagree" not in _flags(_records(rng, eager, agree))


def test_bimodal_over_30_samples_and_not_below_or_for_one_mode():
    rng = np.random.default_rng(2)

    def two_speeds(n):
        return lambda rng, median: np.concatenate([
            median * np.exp(rng.normal(0, 0.02, n - n // 3)),
            5 * median * np.exp(rng.normal(0, 0.02, n // 3))])

    eager, compiled = [10.0] * 3, [5.0] * 3
    row = _compiled_row(_records(rng, eager, compiled, two_speeds(40)))
    assert "bimodal" in row.flags and "near" in row.bimodal
    assert "bimodal" not in _flags(_records(rng, eager, compiled, two_speeds(24)))
    assert "bimodal" not in _flags(_records(rng, eager, compiled))


def test_allocation_bound_from_the_why_tables_share():
    rng = np.random.default_rng(3)
    records = _records(rng, [10.0] * 3, [5.0] * 3)
    assert "allocation-bound" in _flags(records, 0.49)
    assert "allocation-bound" not in _flags(records, 0.10)
    assert "allocation-bound" not in _flags(records)            # no why phase: unknown


def test_summarize_takes_the_allocation_share_from_the_why_decomposition(monkeypatch):
    """``summarize`` joins the why decomposition's share to its row by the cell's key."""
    from types import SimpleNamespace

    rng = np.random.default_rng(3)
    records = _records(rng, [10.0] * 3, [5.0] * 3)
    why = [SimpleNamespace(workload="matmul", params="size=64", mode="torch-compile",
                           allocation_share=0.49)]
    monkeypatch.setattr(summary.explain, "why_rows", lambda records, rows, limits: why)
    rows = {r.mode: r for r in summary.summarize(records).rows}
    assert rows["torch-compile"].allocation_share == 0.49
    assert "allocation-bound" in rows["torch-compile"].flags
    assert np.isnan(rows["torch"].allocation_share)


def test_host_noisy_is_one_line_for_the_run_from_the_machine_probe():
    noisy = {"contention": {"before": {"iqr_share": 0.32}, "after": {"iqr_share": 0.04}}}
    line = flags.host_noisy(noisy)
    assert line.startswith("host noisy") and "32%" in line and "before" in line
    assert "after" not in line
    assert flags.host_noisy({"contention": {"before": {"iqr_share": 0.04}}}) == ""
    assert flags.host_noisy({}) == ""


def test_the_retired_rules_raise_nothing():
    """Per-call times with an IQR of 20% of the median and a 30% drift from the first half
    to the second, in processes that agree: the old rules flagged this row; no flag now."""
    rng = np.random.default_rng(4)

    def wide_and_drifting(rng, median):
        return median * np.concatenate([rng.uniform(0.85, 1.05, 20), rng.uniform(1.1, 1.35, 20)])

    row = _compiled_row(_records(rng, [10.0] * 5, [5.0] * 5, wide_and_drifting))
    assert row.flags == ()


def test_results_disagree_when_the_compiled_mode_ends_elsewhere_than_its_eager_twin():
    rng = np.random.default_rng(5)

    def with_checks(compiled_value: float) -> list:
        out = []
        for rec in _records(rng, [10.0] * 3, [5.0] * 3):
            value = compiled_value if rec.spec.mode == "torch-compile" else 1.0
            out.append(dataclasses.replace(rec, result=dataclasses.replace(
                rec.result, warm_check={"loss": value})))
        return out

    assert "results disagree" in _flags(with_checks(1.23))
    assert "results disagree" not in _flags(with_checks(1.0 + 1e-7))   # float32 reordering
    assert "results disagree" not in _flags(_records(rng, [10.0] * 3, [5.0] * 3))  # no check


def test_every_flag_has_a_meaning_on_the_page():
    assert set(flags.MEANINGS) == {"imprecise", "processes disagree", "bimodal",
                                   "allocation-bound", "results disagree"}
    row = CellRow("matmul", "size=64", "torch-compile", {"size": 64}, "cpu", "float32", 2, 5,
                  "torch", "torch", True, "", "ok",
                  vs_eager=Ratio(0.5, 0.4, 0.625, disagreement_p=0.001),
                  bimodal="time per call bimodal", allocation_share=0.3,
                  agreement_rel_diff=0.23, agreement_rtol=1e-3)
    assert list(flags.row_flags(row)) == list(flags.MEANINGS)


def _ar1(rng, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary AR(1) series: each sample leans on the one before (a host's slow spell)."""
    out = np.empty(n)
    out[0] = rng.normal(0, sd)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + rng.normal(0, sd * np.sqrt(1 - phi ** 2))
    return out


def _disagree_share(rng, cells: int, phi: float, effect: float = 0.0) -> float:
    """The share of simulated cells whose five processes are called disagreeing: 40
    autocorrelated samples a process, a 10% shift shared by a process's two modes, and
    ``effect`` on one process's ratio alone."""
    from eagerbench.report import stats

    procs = [str(p) for p in range(5)]
    hits = 0
    for _ in range(cells):
        shifts = rng.normal(0, 0.1, 5)
        eager = [np.exp(np.log(10) + s + _ar1(rng, 40, phi, 0.05)) for s in shifts]
        compiled = [np.exp(np.log(5) + s + (effect if p == 2 else 0) + _ar1(rng, 40, phi, 0.05))
                    for p, s in enumerate(shifts)]
        diffs, within = stats.paired_differences(stats.level(compiled, procs),
                                                 stats.level(eager, procs))
        hits += stats.cochran_q(diffs, within) < stats.DISAGREE_P
    return hits / cells


def test_processes_that_agree_are_not_called_disagreeing_when_their_samples_are_correlated():
    """Successive samples of a process are correlated (lag 1: 0.5 here); the within-process
    variance that Q divides by must allow for it (batch means, and the AR(1) inflation of a
    mean's variance). Treating the samples as independent, 23% of these cells were flagged."""
    rng = np.random.default_rng(7)
    assert _disagree_share(rng, 200, phi=0.5) <= 0.03
    assert _disagree_share(rng, 200, phi=0.0) <= 0.03
    assert _disagree_share(rng, 50, phi=0.5, effect=0.2) >= 0.9    # and a real one still is
