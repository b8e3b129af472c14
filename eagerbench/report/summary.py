"""A run's records as typed rows (``rows.CellRow``), built in one place: ``summarize`` gives
every cell's row with its ratios, the why decomposition and the flags. ``exports`` writes the
rows as ``cells.csv`` and reads them back.

A cell's time per call is the geometric mean of its processes' medians, and its ratios'
intervals come from ``stats`` (processes as the unit, pooled per mode, paired within a shared
process; variances moderated among the cells of one workload).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Hashable, Optional

import numpy as np

from eagerbench.records.limits import MachineLimits
from eagerbench.records.model import Record
from eagerbench.report import cellstats, explain, flags, stats
from eagerbench.report.rows import NAN, RATIOS, CellRow
from eagerbench.report.stats import Ratio

REFERENCE_MODE = "torch"    # every "vs torch" ratio's denominator


def _identity(recs: list[Record]) -> dict:
    cell, facts = recs[0].spec, recs[0].facts
    assert facts is not None
    return dict(workload=cell.workload, params=cellstats.params_label(cell.params),
                mode=facts.label, param_values=dict(cell.params), device=cell.device,
                dtype=cell.dtype, threads=cell.threads, repeats=len(recs),
                framework=facts.framework, eager_twin=facts.eager_twin or "",
                compiled=facts.compiled,
                # values measured in the same process, round-robin (Workload.interleave)
                interleaved="; ".join(f"{k}={','.join(map(str, v))}"
                                      for k, v in (cell.interleaved or {}).items()))


def _measured(recs: list[Record], limits: Optional[MachineLimits]) -> tuple[dict, stats.Level]:
    """The fields of a measured cell, and its level (for ratios)."""
    results = [r.result for r in recs]
    lv = cellstats.cell_level(recs)
    assert lv is not None
    latency = stats.level([cellstats.latency_ms(r) for r in results],
                          [r.process_id() for r in results])
    cold = [r.result for r in recs if cellstats.compiled_cold(r)]
    donation = [r.donation for r in results if r.donation]
    first = recs[0]
    first_call, compile_cost, note = cellstats.first_call_costs(recs)
    facts = [r.facts for r in recs if r.facts is not None]
    lo, hi = stats.level_interval(lv)
    return dict(
        status="ok", reason="", processes=len(results),
        **stats.summarize(np.concatenate([cellstats.per_call_ms(r) for r in results])),
        median_ms=lv.estimate, median_lo_ms=lo, median_hi_ms=hi,
        latency_ms=latency.estimate if latency else NAN,
        process_spread=lv.spread(),
        block_calls=int(np.median([r.block_calls for r in results])),
        calls_timed=int(sum(s.calls for r in results for s in r.timed)),
        first_call_ms=first_call, compile_ms=compile_cost, compile_note=note,
        compile_events=max(r.compiles_before_timing for r in results),
        compile_events_s=cellstats.median([r.compile_events_s or 0.0 for r in cold]),
        setup_s=cellstats.median([r.setup_s for r in results]),
        gc_iters=sum(1 for r in results for s in r.timed if s.gc_collections),
        floor_us=cellstats.median([r.floor_ns for r in results]) / 1e3,
        traces_during_timing=max(r.traces_during_timing for r in results),
        compiles_during_timing=max(r.compiles_during_timing for r in results),
        donation_copied=max((d["donated"] - d["reused"] for d in donation), default=0),
        donation_copied_bytes=max((d.get("copied_bytes", 0) for d in donation), default=0),
        host_reads_per_call=cellstats.median([r.host_reads_per_call for r in results]),
        threads_applied=dict(first.result.threads_applied),
        device_name=first.result.device_name,
        allocator=dict((first.result.process.get("allocator") or {}).get("env", {})),
        stopped=next((r.stopped for r in results if r.stopped), None) or "",
        bimodal=cellstats.bimodality(results),
        shown=tuple(facts[0].shown),
        shown_values=cellstats.shown_ranges(facts[0].shown, results),
        **dataclasses.asdict(cellstats.work_rates(
            facts, first.spec.dtype, lv.estimate, limits,
            max([r.result.why.stream_gbps or 0.0 for r in recs])))), lv


def cell_rows(records: list[Record], limits: Optional[MachineLimits] = None) -> list[CellRow]:
    """One row per cell, in run order: its statistics, rates, agreement and ratios (no flags:
    ``summarize`` adds them with the why decomposition)."""
    rows, levels = [], {}
    groups = cellstats.by_cell(records)
    for key, recs in groups.items():
        base = _identity(recs)
        ok = [r for r in recs if r.result.ok]
        if not ok:
            rows.append(CellRow(**base, status=recs[0].result.status,
                                reason=recs[0].result.reason))
            continue
        measured, levels[key] = _measured(ok, limits)
        twin = groups.get((key[0], key[1], base["eager_twin"]))
        rows.append(CellRow(**base, **measured,
                            agreement_rel_diff=cellstats.agreement(ok, twin) if twin else NAN,
                            agreement_rtol=cellstats.AGREEMENT_RTOL.get(base["dtype"], 1e-3),
                            random_step=str(ok[0].result.info.get("random", ""))))
    return with_ratios(rows, levels)


def with_ratios(rows: list[CellRow], levels: dict) -> list[CellRow]:
    """Each row with ``slowdown`` (against PyTorch eager) and ``vs_eager`` (against its eager
    twin), each with its interval; variances are moderated among one workload's cells."""
    wanted: dict[Hashable, tuple[Hashable, Hashable]] = {}
    references: dict[Hashable, Ratio] = {}
    for name in RATIOS:      # this order: the priors' sums see the ratios in it
        for i, row in enumerate(rows):
            reference = REFERENCE_MODE if name == "slowdown" else row.eager_twin
            if row.key not in levels or not reference:
                continue
            if reference == row.mode:
                references[(name, i)] = Ratio(1.0)               # the reference itself
            elif (row.workload, row.params, reference) in levels:
                wanted[(name, i)] = (row.key, (row.workload, row.params, reference))
    found = stats.ratios(levels, {key: key[0] for key in levels}, wanted)
    found.update(references)
    return [dataclasses.replace(row, slowdown=found.get(("slowdown", i)),
                                vs_eager=found.get(("vs_eager", i)))
            for i, row in enumerate(rows)]


@dataclass(frozen=True)
class Summary:
    """A run's cells as typed rows, with flags, and the why decomposition behind them."""

    rows: list[CellRow]
    why: list[explain.WhyRow]

    def row(self, workload: str, params: str, mode: str) -> CellRow:
        return next(r for r in self.rows if r.key == (workload, params, mode))


def summarize(records: list[Record], limits: Optional[MachineLimits] = None) -> Summary:
    """Every cell's row (``cell_rows``), each with its share of fresh pages from the why
    decomposition and its flags."""
    rows = cell_rows(records, limits)
    why = explain.why_rows(records, rows, limits)
    share = {(w.workload, w.params, w.mode): w.allocation_share for w in why}
    rows = [dataclasses.replace(row, allocation_share=share.get(row.key, NAN)) for row in rows]
    return Summary([dataclasses.replace(row, flags=flags.row_flags(row)) for row in rows], why)


def beat_limits(records: list[Record], limits: MachineLimits) -> bool:
    """Whether a measured cell claims more than the machine's limits allow, or ran faster than
    the time its kernels need at the measured rates (the probe ran in a slow spell)."""
    rows = cell_rows(records, limits)
    if any(row.invalid for row in rows):
        return True
    for why in explain.why_rows(records, rows, limits):
        # A product or a stream timed alongside a cell is no limit: the cell may beat it by
        # its noise.
        alongside = (why.bound == "compute" and why.compute_rate_from == "product alongside"
                     or why.bound == "memory" and why.bandwidth_from == "stream alongside")
        if not alongside and why.kernels_ms > why.median_ms:
            return True
    return False
