"""How a run spent its time and how sure its answer is, in figures (the run page's header line
and its "This run" section): wall times, the timed share of the workers' time, each phase's
seconds, the flags' counts and the eager tax's median half-width."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from eagerbench.records.limits import contention_of
from eagerbench.records.model import Record
from eagerbench.report import flags
from eagerbench.report.rows import CellRow


@dataclass(frozen=True)
class RunAccount:
    """A run's accounting: where its time went and how many of its rows carry a flag."""

    run_wall_s: Optional[float]
    verify_wall_s: Optional[float]
    cell_wall_s: float                 # the workers' wall time, every cell's
    timed_s: float                     # of which inside timed samples
    prepare_s: float                   # computing start states later runs load from a cache
    phases_s: dict[str, float]         # the workers' seconds per phase (build, warm-up, ...)
    rows: int                          # measured rows
    flagged_rows: int
    flag_counts: dict[str, int]
    host_noisy: str                    # one line when the host itself scattered, else ''
    processes_per_cell: int
    median_half_width: float           # of the eager tax's 95% intervals
    processes: int                     # worker processes
    machine_iqr: dict[str, float] = field(default_factory=dict)   # the host's own spread

    @property
    def suite_wall_s(self) -> Optional[float]:
        """The run's wall time with its verify."""
        return (self.run_wall_s or 0) + (self.verify_wall_s or 0) if self.run_wall_s else None

    @property
    def timed_share(self) -> float:
        return self.timed_s / self.cell_wall_s if self.cell_wall_s else math.nan


def _times(records: list[Record]) -> tuple[float, float, float, dict[str, float]]:
    """The workers' wall seconds, the timed seconds, the start states' seconds, and each
    phase's seconds, over a run's records."""
    walls: dict[tuple, float] = {}
    phases: dict[tuple, dict[str, float]] = {}
    prepared: dict[str, float] = {}
    timed = 0.0
    for rec in records:
        res = rec.result
        state = rec.spec.prepared or {}
        if not state.get("cached") and state.get("seconds") is not None:
            prepared[state["path"]] = state["seconds"]
        swept = json.dumps(rec.spec.interleaved or rec.spec.params)
        walls[(res.process_id(), res.process.get("position"), swept, rec.spec.mode,
               rec.spec.repeat)] = res.wall_s or 0.0   # interleaved values share their wall
        timed += sum(s.ns for s in res.timed) + sum(res.latency_ns)
        # the cells of a unit share one phase clock
        phases[(res.process_id(), swept, rec.spec.repeat)] = res.phases_s or {}
    phase_s: dict[str, float] = {}
    for unit in phases.values():
        for phase, seconds in unit.items():
            phase_s[phase] = phase_s.get(phase, 0.0) + seconds
    return sum(walls.values()), timed / 1e9, sum(prepared.values()), phase_s


def account(records: list[Record], rows: list[CellRow], env: dict,
            verify_wall_s: Optional[float]) -> RunAccount:
    """How the run spent its time, and how many rows carry a flag."""
    cell_wall, timed, prepare, phases = _times(records)
    ok = [r for r in rows if r.ok]
    widths = [r.vs_eager.half_width for r in ok if r.eager_twin and r.vs_eager is not None
              and np.isfinite(r.vs_eager.half_width)]
    return RunAccount(
        run_wall_s=env.get("run_wall_s"), verify_wall_s=verify_wall_s, cell_wall_s=cell_wall,
        timed_s=timed, prepare_s=prepare, phases_s=phases, rows=len(ok),
        flagged_rows=len(flags.flagged(rows)),
        flag_counts={name: sum(name in r.flags for r in ok) for name in flags.MEANINGS},
        host_noisy=flags.host_noisy(env),
        processes_per_cell=int(np.median([r.processes for r in ok])) if ok else 0,
        median_half_width=float(np.median(widths)) if widths else math.nan,
        processes=len({r.result.process_id() for r in records}),
        machine_iqr={when: probe.iqr_share for when, probe in contention_of(env).items()
                     if probe.iqr_share is not None})
