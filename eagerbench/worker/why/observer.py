"""``WhyObserver``: the why-probes as an observer of a unit's measurement (``--why``).

Before the warm-up it builds the unit's probes and counts each step's ops in one extra step;
around each timed block it reads the process's fault and CPU counters (outside the block's
clock, as ``timing.timed_round`` calls it); after the last timed round, in a phase of its own,
it samples every probe and prices each run's work. A unit measured without it runs the work and
nothing else.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from eagerbench.records.why import PROBE_SAMPLES, FaultPrices, Why
from eagerbench.worker.clock import GCWatch
from eagerbench.worker.counters import Counters, compiler_plus
from eagerbench.worker.loop import Entry, LiveCell, Observer
from eagerbench.worker.process import throwaway_compile_cache, usable_cpus
from eagerbench.worker.why.memory import FaultTally, fault_ns, watch_memory
from eagerbench.worker.why.ops import count_round
from eagerbench.worker.why.prices import UnitPrices, diagnosed

_FAULT_NS: Optional[FaultPrices] = None      # what a fresh page costs, once per process


class WhyObserver(Observer):
    """Finds why each run of a unit takes its time; see the module's docstring."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self._prices: Optional[UnitPrices] = None
        self.whys: list[Why] = []
        self.index: dict[int, int] = {}           # id of a run -> its place in the unit
        self.faults: dict[int, FaultTally] = {}   # a run's place -> its tally

    def on_unit_start(self, runs: list[LiveCell]) -> None:
        self.whys = [Why() for _ in runs]
        self.index = {id(run): i for i, run in enumerate(runs)}
        with throwaway_compile_cache():   # no probe's graph in the cache a cell's compile reads
            self._prices = UnitPrices(self.entries, runs)

    @property
    def prices(self) -> UnitPrices:
        """The unit's probes (made as the unit starts)."""
        if self._prices is None:
            raise RuntimeError("the why phase's probes are made when the unit starts")
        return self._prices

    def before_warm_up(self, runs: list[LiveCell], watch: GCWatch) -> None:
        count_round(runs, self.whys, watch, graphs=True)

    def after_warm_up(self, runs: list[LiveCell], watch: GCWatch) -> list[Counters]:
        """The eager steps' counted round, then the probes whose size the counted ops or the
        warmed step tell; returns, per entry, what building those compiled."""
        count_round(runs, self.whys, watch, graphs=False)
        sizes = self.prices.add_sizes(runs, self.entries, self.whys)
        launches = self.prices.add_sized_launches(runs, self.entries)
        return [compiler_plus(a, b) for a, b in zip(sizes, launches)]

    @contextmanager
    def watching(self, run: LiveCell) -> Iterator[None]:
        """A run's first block with its memory watched (its peak, its resident set); every
        block's faults and CPU time tallied."""
        index = self.index[id(run)]
        tally = self.faults.get(index)
        if tally is None:
            tally = self.faults[index] = FaultTally()
            with watch_memory(run.backend, run.calls) as memory, tally.watch(run.calls):
                yield
            self.whys[index].memory = memory
            return
        with tally.watch(run.calls):
            yield

    def after_timing(self, runs: list[LiveCell]) -> None:
        """The why phase: ``PROBE_SAMPLES`` rounds of every probe, then each run priced."""
        for _ in range(PROBE_SAMPLES):
            self.prices.sample()
        for index, run in enumerate(runs):
            self._price(index, run)

    def _price(self, index: int, run: LiveCell) -> None:
        """What one dispatch, one op of each counted size and one fresh page cost, for run
        ``index`` (the memory was watched around its first timed sample, the page faults over
        every timed block)."""
        global _FAULT_NS
        why, prices, mode = self.whys[index], self.prices, self.entries[run.entry].mode
        tally = self.faults.get(index)
        if tally is not None:
            why.memory.update(tally.per_call())
            why.memory["kernel_share"] = tally.kernel_share()
        if prices.sizes.get(index) is not None:
            sized, failed = prices.size_prices(index)
            if run.backend.runs_graph_ops:
                why.graph_op_ns = sized
            else:
                why.size_ns = sized
            why.sized_from = run.backend.sized_from()
            why.notes.extend(failed)
        if _FAULT_NS is None:   # at the threads the kernels fault with (the worker's CPUs)
            _FAULT_NS, note = diagnosed("page fault probe", lambda: fault_ns(usable_cpus()),
                                        FaultPrices())
            why.notes.extend([note] if note else [])
        price = prices.prices(mode)
        why.dispatch_ns, why.dispatch_ns_in_place = price["new"], price["in_place"]
        why.product = prices.product(mode)
        why.fused_adds = prices.fused_adds(mode)
        why.launch_sized = prices.sized_launch(mode)
        why.stream_gbps = prices.stream_gbps(mode)
        why.fault_ns = _FAULT_NS if _FAULT_NS is not None else FaultPrices()
        why.notes.extend(prices.notes[mode])

    def why_of(self, index: int) -> Why:
        return self.whys[index] if index < len(self.whys) else Why()
