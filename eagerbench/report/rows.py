"""The typed row of a run's cells table: one ``CellRow`` per cell (its processes together),
with its times, rates, ratios with their intervals, agreement and flags. ``summary`` builds
them from records in one place; every page, plot, compare, the terminal answer and
``cells.csv`` read their fields (torch.utils.benchmark's ``Compare`` reads ``Measurement``
objects the same way)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from eagerbench.report.stats import Ratio

RATIOS = ("slowdown", "vs_eager")
NAN = math.nan


@dataclass(frozen=True)
class CellRow:
    """One cell of a run: a workload at one parameter set in one mode, over its processes.

    Fields that only a measured cell has are NaN (numbers) or '' (text) in a cell whose every
    process failed; ``status`` and ``reason`` say why."""

    # what the cell is
    workload: str
    params: str                           # its parameters in words: "history=5 batch=60000"
    mode: str                             # the mode's label: "torch", "torch +thp"
    param_values: dict[str, Any] = field(default_factory=dict)   # cells.csv: p_<name>
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    repeats: int = 1                      # records (processes) of the cell, failed included
    framework: str = ""
    eager_twin: str = ""                  # the label its eager tax is read against ('' none)
    compiled: bool = False
    interleaved: str = ""                 # the sweep its processes ran round-robin, in words
    status: str = "ok"                    # "ok", "failed" or "unsupported"
    reason: str = ""
    # its samples, pooled over processes (ms per call)
    processes: int = 0
    n: int = 0
    q1_ms: float = NAN
    q3_ms: float = NAN
    iqr_ms: float = NAN
    min_ms: float = NAN
    max_ms: float = NAN
    p95_ms: float = NAN
    mean_ms: float = NAN
    std_ms: float = NAN
    spikes: int = 0
    # its level over processes
    median_ms: float = NAN                # geometric mean of the processes' medians
    median_lo_ms: float = NAN             # its 95% interval over processes (unmoderated)
    median_hi_ms: float = NAN
    latency_ms: float = NAN               # one call waited on (blocked steps)
    process_spread: float = NAN           # largest over smallest process median, minus 1
    block_calls: int = 1
    calls_timed: int = 0
    # what it cost before timing
    first_call_ms: float = NAN
    compile_ms: float = NAN
    compile_note: str = ""
    compile_events: int = 0
    compile_events_s: float = NAN
    setup_s: float = NAN
    # guards
    gc_iters: int = 0
    floor_us: float = NAN
    traces_during_timing: int = 0
    compiles_during_timing: int = 0
    donation_copied: int = 0
    donation_copied_bytes: int = 0
    host_reads_per_call: float = NAN
    threads_applied: dict = field(default_factory=dict)
    device_name: str = ""
    allocator: dict = field(default_factory=dict)
    stopped: str = ""
    bimodal: str = ""
    shown: tuple[str, ...] = ()           # observed values the workload's rows show
    shown_values: dict[str, str] = field(default_factory=dict)   # each one's range
    # rates against the machine's limits
    gflops: float = NAN
    gbps: float = NAN
    us_per_op: float = NAN
    limit_share: float = NAN
    limit: str = ""
    invalid: str = ""
    # agreement with its eager twin after the warm-up
    agreement_rel_diff: float = NAN
    agreement_rtol: float = NAN
    # what makes its step random (a dropout layer): its modes compute different steps and
    # are not compared
    random_step: str = ""
    # ratios with their 95% intervals
    slowdown: Optional[Ratio] = None      # time over PyTorch eager's
    vs_eager: Optional[Ratio] = None      # time over its eager twin's (graph / eager)
    # what the why decomposition and the flags say
    allocation_share: float = NAN
    flags: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.workload, self.params, self.mode

    @property
    def is_variant(self) -> bool:
        """A mode measured with a setting changed (``torch +thp``, ``jax @jax==0.4.30``)."""
        return " " in self.mode

    def ratio(self, name: str) -> Optional[Ratio]:
        """The ratio called ``name`` ("slowdown", "vs_eager"; '' for none)."""
        return getattr(self, name) if name in RATIOS else None

    def value(self, name: str) -> Any:
        """A field by name, for what a workload declares by name (``presentation``): a
        parameter as ``p_<name>``, an observed value by its name."""
        if name.startswith("p_"):
            return self.param_values.get(name[2:], NAN)
        if name in self.shown_values:
            return self.shown_values[name]
        return getattr(self, name)

    @property
    def ops_per_call(self) -> float:
        """Framework ops one call dispatches (from its time per op); 0 where not known."""
        if np.isfinite(self.us_per_op) and self.us_per_op:
            return self.median_ms * 1e3 / self.us_per_op
        return 0.0
