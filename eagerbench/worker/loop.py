"""The timing loop: one unit of cells (the modes of one parameter set, eager beside compiled)
from built data to one ``CellResult`` per variant.

``measure_unit`` runs the phases in order: build, warm up (every compile happens here, and is
counted and timed), calibrate the block size, time round-robin until each run has its samples
and its time, take the check and the wait's floor, then hand the unit to its observer. Every
step call goes through ``timer.run_block``. An ``Observer`` (pyperf's and torch.utils.benchmark's
opt-in hooks are the models) sees the unit between phases and around each timed block, never
inside the clock; the default one does nothing, and the why-probes (``why.WhyObserver``) run
only after the last timed round.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ContextManager, Iterator, Optional, Protocol

from eagerbench.frameworks.backends.base import Backend
from eagerbench.records.model import CellResult, Sample
from eagerbench.records.why import Why
from eagerbench.worker.clock import GCWatch, Step, block_size, run_block, wait_floor_ns
from eagerbench.worker.counters import Counters, compiler_delta, compiler_plus
from eagerbench.workload import Task, Workload

CALIBRATION_NS = 20_000_000      # single calls timed to choose the block size, at most
LONG_CALL_NS = 50_000_000        # a steady call this long needs no calibration
LATENCY_CALLS = 10               # waited calls timed after each block, back to back
MAX_SAMPLES_FACTOR = 50          # a cell never takes more than this many times its iters


class Channel(Protocol):
    """Where a unit says how far it is (the worker's pipe to the runner)."""

    def progress(self, phase: str, done: int, total: int) -> None: ...


@dataclass
class Settings:
    """How one unit is timed (each run's minimum samples are its entry's ``iters``)."""

    warmup: int
    min_time_s: float = 0.0          # timed time per run, at least
    gc: str = "on"


@dataclass
class Entry:
    """One cell of a unit: its mode's backend, its workload and parameters."""

    backend: Backend
    workload: Workload
    params: dict[str, Any]
    ctx: dict[str, Any]
    iters: list[int]
    mode: str = ""


@dataclass
class LiveCell:
    """One variant of one cell (one mode, one parameter set) as it is measured in this
    process: its task, its state, and its samples so far."""

    backend: Backend             # the backend of the cell's mode
    entry: int                   # which cell of the unit it belongs to
    params: dict[str, Any]
    task: Task
    st: Any
    mem: Any
    iters: int
    setup_s: float
    warmup: list[Sample] = field(default_factory=list)
    timed: list[Sample] = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)
    calls: int = 1
    steps: int = 0               # calls of the step so far, timed or not
    last_call_compiled: bool = False
    stopped: Optional[str] = None
    traces: dict[str, int] = field(default_factory=lambda: {"warmup": 0, "timed": 0})
    compiles: dict[str, int] = field(default_factory=lambda: {"warmup": 0, "timed": 0})
    compile_s: float = 0.0       # what the warm-up's compiles took, where the framework says
    host_reads: int = 0          # device values read by Python control flow, over ``steps``
    floor_ns: float = float("nan")
    warm_check: dict[str, float] = field(default_factory=dict)   # ``check`` after warm-up
    final_check: dict[str, float] = field(default_factory=dict)  # ``check`` after timing

    def timed_ns(self) -> int:
        return sum(s.ns for s in self.timed) + sum(self.latency_ns)


class Observer:
    """Hooks around one unit's measurement. Every hook runs outside the clock; this one does
    nothing, so a unit measured with it is the work and nothing else."""

    def on_unit_start(self, runs: list[LiveCell]) -> None:
        """After the build, before the compilers' counters are read."""

    def before_warm_up(self, runs: list[LiveCell], watch: GCWatch) -> None:
        """Before the first warm-up call."""

    def after_warm_up(self, runs: list[LiveCell], watch: GCWatch) -> list[Counters]:
        """After the warm-up; returns, per entry, what the observer compiled (left out of the
        cell's compiler counters)."""
        return []

    def watching(self, run: LiveCell) -> ContextManager[None]:
        """Around each timed block of ``run`` (the block's own clock is inside)."""
        return nullcontext()

    def after_timing(self, runs: list[LiveCell]) -> None:
        """After every timed round of the unit: its own phase."""

    def why_of(self, index: int) -> Why:
        """What the observer found of the unit's run ``index``."""
        return Why()


class PhaseClock:
    """Wall seconds a unit spends in each phase (the suite's own efficiency, in the report)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started


def build_runs(entries: list[Entry]) -> list[LiveCell]:
    """Build one task per variant of every cell (the unit's runs share the process)."""
    runs = []
    for index, entry in enumerate(entries):
        variants = entry.workload.variants(entry.params)
        iters = entry.iters * len(variants) if len(entry.iters) == 1 else entry.iters
        for params, n in zip(variants, iters):
            started = time.perf_counter()
            task = entry.workload.build(entry.backend, params, entry.ctx)
            entry.backend.block((task.st, task.mem))
            runs.append(LiveCell(entry.backend, index, params, task, task.st, task.mem, n,
                            time.perf_counter() - started))
    return runs


@contextmanager
def charged(run: LiveCell, phase: str, calls: int) -> Iterator[None]:
    """Charge the traces, compiles and host reads of the calls made inside to ``run`` (the runs
    of a unit share one process and its counters)."""
    backend = run.backend
    traces, compiles, reads = backend.trace_count(), backend.compile_events(), backend.host_reads
    yield
    after = backend.compile_events()
    run.traces[phase] += backend.trace_count() - traces
    run.compiles[phase] += after["count"] - compiles["count"]
    run.last_call_compiled = after["count"] > compiles["count"] or backend.trace_count() > traces
    if phase == "warmup" and after.get("seconds") is not None:
        run.compile_s += after["seconds"] - (compiles.get("seconds") or 0.0)
    run.host_reads += backend.host_reads - reads
    run.steps += calls


def counted_call(run: LiveCell, calls: int, watch: GCWatch, phase: str,
                 step: Optional[Step] = None) -> Sample:
    """``calls`` calls of ``run``'s step and one wait, charged to ``run``."""
    with charged(run, phase, calls):
        run.st, run.mem, sample = run_block(step or run.task.step, run.backend.block, run.st,
                                            run.mem, calls, watch)
    return sample


def returns_state(step: Step) -> Step:
    """``step``, failing with one clear line when it does not return ``(st, mem)`` (a user's
    step that returns nothing would otherwise fail as ``cannot unpack NoneType``). Only the
    first call is checked: the timed calls run the step itself."""
    def checked(st: Any, mem: Any) -> tuple[Any, Any]:
        out = step(st, mem)
        if not (isinstance(out, tuple) and len(out) == 2):
            what = type(out).__name__ if not isinstance(out, tuple) else f"{len(out)} values"
            raise TypeError(f"the step returned {what}; it must return (st, mem)")
        return out

    return checked


def keep(run: LiveCell, sample: Sample, into: list[Sample]) -> None:
    """Read what the program shows after a sample (the clock has stopped) and keep the sample."""
    into.append(Sample(sample.ns, sample.calls, sample.gc_collections, sample.gc_ns,
                       observed=run.task.observe(run.st, run.mem), step=run.steps))


def warm_up(runs: list[LiveCell], rounds: int, watch: GCWatch, channel: Channel) -> None:
    """``rounds`` single calls of each run, round-robin: traces and compiles happen here."""
    for i in range(rounds):
        for run in runs:
            step = returns_state(run.task.step) if i == 0 else None
            keep(run, counted_call(run, 1, watch, "warmup", step), run.warmup)
        channel.progress("warmup", i + 1, rounds)


def check_after_warm_up(runs: list[LiveCell]) -> None:
    """Every mode of a unit has now taken the same warm-up steps from the same start: their
    ``check`` values must agree (the report compares each mode with its eager twin)."""
    for run in runs:
        if run.steps and run.task.comparable:
            run.warm_check = run.task.check(run.st, run.mem)


def calibrate(runs: list[LiveCell], watch: GCWatch) -> None:
    """Choose each run's block size from a few more waited calls (kept as warm-up). A run whose
    last warm-up call compiled nothing and took over ``LONG_CALL_NS`` needs no more: it is timed
    one call at a time (an l-BFGS iteration at batch 60k takes seconds)."""
    for run in runs:
        if run.warmup and not run.last_call_compiled and run.warmup[-1].ns >= LONG_CALL_NS:
            run.calls = 1
            continue
        spent, times = 0, list[int]()
        while spent < CALIBRATION_NS and len(times) < 50:
            sample = counted_call(run, 1, watch, "warmup")
            keep(run, sample, run.warmup)
            times.append(sample.ns)
            spent += sample.ns
        times.sort()
        run.calls = block_size(times[len(times) // 2])


def timed_round(run: LiveCell, watch: GCWatch, observer: Observer) -> None:
    """One sample of ``run``: a block (after one untimed call that wakes idle worker threads),
    then, for blocked steps, ``LATENCY_CALLS`` single calls waited on one by one. The observer
    watches the block from outside its clock."""
    if run.calls > 1:
        counted_call(run, 1, watch, "timed")
    with observer.watching(run):
        sample = counted_call(run, run.calls, watch, "timed")
    if run.calls > 1:
        with charged(run, "timed", LATENCY_CALLS):
            for _ in range(LATENCY_CALLS):
                run.st, run.mem, single = run_block(run.task.step, run.backend.block, run.st,
                                                    run.mem, 1, watch)
                run.latency_ns.append(single.ns)
    keep(run, sample, run.timed)
    run.stopped = run.task.stopped(run.st)


def _wanted(run: LiveCell, target_ns: int) -> bool:
    """Whether ``run`` needs another sample: fewer than its iters, or less than its time."""
    if run.stopped or len(run.timed) >= MAX_SAMPLES_FACTOR * run.iters:
        return False
    return len(run.timed) < run.iters or run.timed_ns() < target_ns


@contextmanager
def collector(mode: str) -> Iterator[dict[str, Any]]:
    """Python's garbage collector as ``--gc`` asks while timing; yields its state."""
    if mode == "off":
        gc.disable()
    elif mode == "freeze":
        gc.collect()
        gc.freeze()
    try:
        yield {"enabled": gc.isenabled(), "frozen_objects": gc.get_freeze_count()}
    finally:
        gc.enable()
        gc.unfreeze()


def time_runs(runs: list[LiveCell], settings: Settings, watch: GCWatch, channel: Channel,
              observer: Observer) -> dict[str, Any]:
    """Round-robin over the runs until each has its samples and its minimum time: slow spells
    of the machine and of the process then hit every mode and value of the unit alike.
    Returns the collector's state while timing."""
    target = int(settings.min_time_s * 1e9)
    last = time.perf_counter()
    with collector(settings.gc) as gc_state:
        while True:
            active = [run for run in runs if _wanted(run, target)]
            if not active:
                break
            for run in active:
                timed_round(run, watch, observer)
            if time.perf_counter() - last > 0.25:
                channel.progress("timed", min(len(run.timed) for run in runs),
                                 max(run.iters for run in runs))
                last = time.perf_counter()
    return gc_state


def measure_unit(entries: list[Entry], settings: Settings, channel: Optional[Channel] = None,
                 observer: Optional[Observer] = None) -> list[CellResult]:
    """Measure cells together, their runs round-robin: the modes of one framework on one
    parameter set (eager next to compiled), each possibly an interleaved sweep. Returns one
    result per run, in order: per entry, one per value of its sweep."""
    channel = channel or QuietChannel()
    observer = observer or Observer()
    phases = PhaseClock()
    with phases("build"):   # compiles nothing: a step compiles at its first call
        runs = build_runs(entries)
    with phases("probes"):
        observer.on_unit_start(runs)
    caches = [e.backend.compile_cache() for e in entries]
    compilers = [e.backend.graph_diagnostics() for e in entries]
    with GCWatch() as watch:
        with phases("warm-up"):
            observer.before_warm_up(runs, watch)
            warm_up(runs, settings.warmup, watch, channel)
            built = observer.after_warm_up(runs, watch)
            check_after_warm_up(runs)
        # What the observer compiled for its probes is left out of the cells' counters
        compilers = [compiler_plus(before, extra) for before, extra
                     in zip(compilers, built or [Counters() for _ in entries])]
        with phases("calibrate"):
            calibrate(runs, watch)
        with phases("timed"):
            gc_state = time_runs(runs, settings, watch, channel, observer)
    with phases("floor"):
        for run in runs:
            run.final_check = run.task.check(run.st, run.mem)
            run.floor_ns = wait_floor_ns(run.backend.block, (run.st, run.mem))
    compiled = [compiler_delta(before, e.backend.graph_diagnostics())
                for before, e in zip(compilers, entries)]
    cache_hits = [_cache_delta(before, e.backend.compile_cache())
                  for before, e in zip(caches, entries)]
    with phases("why"):
        observer.after_timing(runs)
    return [_result(run, entries[run.entry], observer.why_of(index), gc_state,
                    compiled[run.entry], cache_hits[run.entry], len(entries), phases.seconds)
            for index, run in enumerate(runs)]


def _cache_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def _result(run: LiveCell, entry: Entry, why: Why, gc_state: dict[str, Any],
            compiler: Counters, cache: dict[str, int], unit: int,
            phases_s: dict[str, float]) -> CellResult:
    """The result of one run: every sample as measured, and what happened around them."""
    backend = entry.backend
    return CellResult(
        status="ok", setup_s=run.setup_s, warmup=tuple(run.warmup), timed=tuple(run.timed),
        latency_ns=tuple(run.latency_ns), block_calls=run.calls, floor_ns=run.floor_ns,
        stopped=run.stopped, traces_before_timing=run.traces["warmup"],
        traces_during_timing=run.traces["timed"],
        compiles_before_timing=run.compiles["warmup"],
        compiles_during_timing=run.compiles["timed"],
        compile_events_s=run.compile_s,
        host_reads_per_call=run.host_reads / max(run.steps, 1), info=run.task.info,
        check=run.final_check, warm_check=run.warm_check, why=why, gc_state=gc_state,
        threads_applied=backend.threads(), compile_cache=cache,
        device_name=backend.device_name(), donation=backend.donation(), unit=unit,
        compiler=compiler, phases_s=phases_s)


class QuietChannel:
    """A channel that drops messages: for measuring in the caller's own process (tests)."""

    def progress(self, phase: str, done: int, total: int) -> None:
        pass
