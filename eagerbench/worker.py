"""Measures a batch of cells of one framework in one process: ``python -m eagerbench.worker``.

The runner starts one worker per framework and repeat (and setting) and sends it the cells as
JSON on stdin: never two frameworks in one process, threads set before the framework
initialises, no fork after CUDA. The cells run unit by unit (the modes of one parameter set
together), each from freshly built data with the framework's compiled graphs and caches reset
after it, after one warm-up of each mode's compiler for the whole process. The worker speaks
JSON lines on the stdout it was started with (``start`` per unit, ``progress``, ``result`` per
cell); anything the frameworks print goes to stderr.

A unit goes through the phases of ``measure_unit``: build, warm up (every compile happens here,
and is counted and timed), calibrate the block size, time round-robin, diagnose (memory, op
counts and the price of a dispatch, outside the clock), then assemble a record per cell.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

PROTOCOL_VERSION = 3               # 3: every job comes as {"job", "cells"}
CALIBRATION_NS = 20_000_000      # single calls timed to choose the block size, at most
LONG_CALL_NS = 50_000_000        # a steady call this long needs no calibration
LATENCY_CALLS = 10               # waited calls timed after each block, back to back
MAX_SAMPLES_FACTOR = 50          # a cell never takes more than this many times its iters


class Channel:
    """JSON lines to the runner on a private copy of stdout."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)   # frameworks that print to fd 1 now print to stderr
        sys.stdout = sys.stderr

    def send(self, kind: str, **payload: Any) -> None:
        self._out.write(json.dumps({"type": kind, **payload}) + "\n")


class QuietChannel:
    """A channel that drops messages: for measuring in the caller's own process (tests)."""

    def send(self, kind: str, **payload: Any) -> None:
        pass


@dataclass
class Settings:
    """How one unit is timed (each run's minimum samples are its entry's ``iters``)."""

    warmup: int
    min_time_s: float = 0.0          # timed time per run, at least
    gc: str = "on"


@dataclass
class Run:
    """One variant of one cell (one mode, one parameter set) as it is measured."""

    B: Any                       # the backend of the cell's mode
    entry: int                   # which cell of the unit it belongs to
    params: dict
    task: Any
    st: Any
    mem: Any
    iters: int
    setup_s: float
    warmup: list = field(default_factory=list)
    timed: list = field(default_factory=list)
    latency_ns: list = field(default_factory=list)
    calls: int = 1
    steps: int = 0               # calls of the step so far, timed or not
    last_call_compiled: bool = False
    stopped: Optional[str] = None
    traces: dict = field(default_factory=lambda: {"warmup": 0, "timed": 0})
    compiles: dict = field(default_factory=lambda: {"warmup": 0, "timed": 0, "warmup_s": 0.0})
    host_reads: int = 0          # device values read by Python control flow, over ``steps``
    floor_ns: float = float("nan")
    warm_check: dict = field(default_factory=dict)   # ``check`` after the warm-up calls
    final_check: dict = field(default_factory=dict)  # ``check`` after the timed calls
    why: dict = field(default_factory=dict)          # memory, ops, dispatch cost (diagnose)
    faults: Any = None           # ``FaultTally`` over the timed blocks, from the first one

    def timed_ns(self) -> int:
        return sum(s.ns for s in self.timed) + sum(self.latency_ns)


@dataclass
class Entry:
    """One cell of a unit: its mode's backend, its workload and parameters."""

    B: Any
    workload: Any
    params: dict
    ctx: dict
    iters: list[int]
    mode: str = ""


# --- the phases of one unit ----------------------------------------------------------------------

class PhaseClock:
    """Wall seconds a unit spends in each phase (the suite's own efficiency, in the report)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started


def build_runs(entries: list[Entry]) -> list[Run]:
    """Build one task per variant of every cell (the unit's runs share the process)."""
    runs = []
    for index, entry in enumerate(entries):
        variants = entry.workload.variants(entry.params)
        iters = entry.iters * len(variants) if len(entry.iters) == 1 else entry.iters
        for params, n in zip(variants, iters):
            started = time.perf_counter()
            task = entry.workload.build(entry.B, params, entry.ctx)
            entry.B.block((task.st, task.mem))
            runs.append(Run(entry.B, index, params, task, task.st, task.mem, n,
                            time.perf_counter() - started))
    return runs


@contextmanager
def _charged(run: Run, phase: str, calls: int):
    """Charge the traces, compiles and host reads of the calls made inside to ``run`` (the runs
    of a unit share one process and its counters)."""
    B = run.B
    traces, compiles, reads = B.trace_count(), B.compile_events(), B.host_reads
    yield
    after = B.compile_events()
    run.traces[phase] += B.trace_count() - traces
    run.compiles[phase] += after["count"] - compiles["count"]
    run.last_call_compiled = after["count"] > compiles["count"] or B.trace_count() > traces
    if phase == "warmup" and after.get("seconds") is not None:
        run.compiles["warmup_s"] += after["seconds"] - (compiles.get("seconds") or 0.0)
    run.host_reads += B.host_reads - reads
    run.steps += calls


def _counted_call(run: Run, calls: int, watch, phase: str):
    """``calls`` calls of ``run``'s step and one wait, charged to ``run``."""
    from eagerbench.timer import run_block

    with _charged(run, phase, calls):
        run.st, run.mem, sample = run_block(run.task.step, run.B.block, run.st, run.mem, calls,
                                            watch)
    return sample


def _observe(run: Run, sample, into: list) -> None:
    """Read what the program shows after a sample (the clock has stopped) and keep the sample."""
    into.append(replace(sample, observed=run.task.observe(run.st, run.mem), step=run.steps))


def warm_up(runs: list[Run], rounds: int, watch, channel) -> None:
    """``rounds`` single calls of each run, round-robin: traces and compiles happen here."""
    for i in range(rounds):
        for run in runs:
            _observe(run, _counted_call(run, 1, watch, "warmup"), run.warmup)
        channel.send("progress", phase="warmup", i=i + 1, n=rounds)


def check_after_warm_up(runs: list[Run]) -> None:
    """Every mode of a unit has now taken the same warm-up steps from the same start: their
    ``check`` values must agree (the report compares each mode with its eager twin)."""
    for run in runs:
        if run.steps and run.task.comparable:
            run.warm_check = run.task.check(run.st, run.mem)


def calibrate(runs: list[Run], watch) -> None:
    """Choose each run's block size from a few more waited calls (kept as warm-up). A run whose
    last warm-up call compiled nothing and took over ``LONG_CALL_NS`` needs no more: it is timed
    one call at a time (an l-BFGS iteration at batch 60k takes seconds)."""
    from eagerbench.timer import block_size

    for run in runs:
        if run.warmup and not run.last_call_compiled and run.warmup[-1].ns >= LONG_CALL_NS:
            run.calls = 1
            continue
        spent, times = 0, []
        while spent < CALIBRATION_NS and len(times) < 50:
            sample = _counted_call(run, 1, watch, "warmup")
            _observe(run, sample, run.warmup)
            times.append(sample.ns)
            spent += sample.ns
        times.sort()
        run.calls = block_size(times[len(times) // 2])


def _timed_round(run: Run, watch) -> None:
    """One sample of ``run``: a block (after one untimed call that wakes idle worker threads),
    then, for blocked steps, ``LATENCY_CALLS`` single calls waited on one by one. The first
    sample's memory is watched (outside the clock): a long step then needs no extra call;
    every block's page faults are counted (``FaultTally``)."""
    from eagerbench.diagnose import FaultTally, watch_memory

    if run.calls > 1:
        _counted_call(run, 1, watch, "timed")
    if run.faults is None:
        run.faults = FaultTally()
        with watch_memory(run.B, run.calls) as run.why["memory"], run.faults.watch(run.calls):
            sample = _counted_call(run, run.calls, watch, "timed")
    else:
        with run.faults.watch(run.calls):
            sample = _counted_call(run, run.calls, watch, "timed")
    if run.calls > 1:
        with _charged(run, "timed", LATENCY_CALLS):
            for _ in range(LATENCY_CALLS):
                t0 = time.perf_counter_ns()
                run.st, run.mem = run.task.step(run.st, run.mem)
                run.B.block((run.st, run.mem))
                run.latency_ns.append(time.perf_counter_ns() - t0)
    _observe(run, sample, run.timed)
    run.stopped = run.task.stopped(run.st)


def _progress(run: Run, target_ns: int) -> float:
    """How far a run's timing has gone, 0 to 1: the lesser share of its samples and its time."""
    if run.stopped or len(run.timed) >= MAX_SAMPLES_FACTOR * run.iters:
        return 1.0
    return min(1.0, len(run.timed) / run.iters, run.timed_ns() / target_ns if target_ns else 1.0)


def time_runs(runs: list[Run], settings: Settings, watch, channel, prices: UnitPrices) -> dict:
    """Round-robin over the runs until each has its samples and its minimum time: slow spells
    of the machine and of the process then hit every mode and value of the unit alike, and
    the dispatch probes, sampled between rounds."""
    target = int(settings.min_time_s * 1e9)
    if settings.gc == "off":
        gc.disable()
    elif settings.gc == "freeze":
        gc.collect()
        gc.freeze()
    gc_state = {"enabled": gc.isenabled(), "frozen_objects": gc.get_freeze_count()}
    last = time.perf_counter()

    def wanted(run: Run) -> bool:
        if run.stopped or len(run.timed) >= MAX_SAMPLES_FACTOR * run.iters:
            return False
        return len(run.timed) < run.iters or run.timed_ns() < target

    try:
        while True:
            active = [run for run in runs if wanted(run)]
            if not active:
                break
            for run in active:
                _timed_round(run, watch)
            prices.sample(min(_progress(run, target) for run in runs))
            if time.perf_counter() - last > 0.25:
                done = min(len(run.timed) for run in runs)
                channel.send("progress", phase="timed", i=done, n=max(r.iters for r in runs))
                last = time.perf_counter()
    finally:
        gc.enable()
        gc.unfreeze()
    return gc_state


def assemble(run: Run) -> dict:
    """The record of one run: every sample as measured, and what happened around them."""
    return {
        "setup_s": run.setup_s,
        "warmup": [s.to_json() for s in run.warmup],
        "timed": [s.to_json() for s in run.timed],
        "latency_ns": run.latency_ns,
        "block_calls": run.calls,
        "floor_ns": run.floor_ns,
        "stopped": run.stopped,
        "traces_before_timing": run.traces["warmup"],
        "traces_during_timing": run.traces["timed"],
        "compiles_before_timing": run.compiles["warmup"],
        "compiles_during_timing": run.compiles["timed"],
        "compile_events_s": run.compiles["warmup_s"],
        "host_reads_per_call": run.host_reads / max(run.steps, 1),
        "info": run.task.info,
        "check": run.final_check,
        "warm_check": run.warm_check,
        "why": run.why,
    }


# A dispatch is priced while its unit is timed, a probe's sample after each of the unit's rounds
# as the timing goes on: this VM's speed drifts by up to 2x in minutes and by 25% in seconds (a
# probe run just after a cell priced its ops dearer than the cell's whole ops took), and a
# compiled launch priced once, at the process's start, came out dearer than a whole call of the
# cells timed later (jax-jit: 24 against 18 us). A compiled mode's probe is compiled again for
# each unit, before the unit's compiler counters are read, so that its graph is not the cells'.
_FAULT_NS: Optional[dict] = None      # what a fresh page costs, once per process
_PRICE_KINDS = (("new", float("nan")), ("in_place", None))   # a kind, and its price on failure
_CACHES: Optional[dict] = None        # the caches' sizes (``cache_fit_bytes``'s), from sysfs


def _tensor_count(tree: Any) -> int:
    """The tensors in a step's state: every leaf of its dicts, lists and tuples that is not a
    Python scalar or string."""
    if isinstance(tree, dict):
        return sum(_tensor_count(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(_tensor_count(v) for v in tree)
    return 0 if tree is None or isinstance(tree, (bool, int, float, str)) else 1


def product_side(work) -> Optional[int]:
    """The side of the square product whose FLOPs are a cell's per op (its ``Work``), for a
    workload whose FLOPs are matrix products; None for any other."""
    if work.arithmetic != "matmul" or not work.flops or not work.ops:
        return None
    return max(1, round((work.flops / work.ops / 2) ** (1 / 3)))


def streams(work) -> bool:
    """Whether a cell's data (its ``Work``) moves slower than the machine's cache bandwidth:
    larger than half the cache that bandwidth is measured in (``cache_fit_bytes``), or the
    caches' sizes unknown."""
    global _CACHES
    if _CACHES is None:   # read from sysfs once per process
        from eagerbench.limits import inner_cache_bytes, last_level_cache_bytes

        _CACHES = {"inner_cache_bytes": inner_cache_bytes(),
                   "llc_bytes": last_level_cache_bytes()}
    from eagerbench.limits import cache_fit_bytes

    fit = cache_fit_bytes(_CACHES)
    return bool(work.bytes and work.footprint and (not fit or work.footprint > fit))


def stream_elements(work, itemsize: int) -> int:
    """The length of the stream probe's two vectors for a cell that streams: the cell's own
    footprint split in two (its data's level of the memory hierarchy, whatever the caches'
    sizes), at most ``STREAM_ELEMENTS`` or the last-level cache, whichever is larger (past
    the caches either way)."""
    from eagerbench.diagnose import STREAM_ELEMENTS

    cap = max(STREAM_ELEMENTS, int((_CACHES or {}).get("llc_bytes") or 0) // itemsize)
    return max(1, min(vector_elements(work, itemsize), cap))


def vector_elements(work, itemsize: int) -> int:
    """The length of each of the two vectors a ``b += a`` on the cell's footprint holds."""
    return int(work.footprint / 2 / itemsize)


class UnitPrices:
    """What one dispatch costs in each mode of a unit (ns per op made new and per op in place;
    per launch in a compiled mode), what the mode's own product of the cell's FLOPs per
    op costs, the bandwidth its ``b += a`` streams at, what a fused add costs in a mode that
    fuses, and what each counted op's size costs, sampled between the unit's timed rounds.
    The stream's vectors are made at its first sample, after each run's first sample (whose
    memory is watched)."""

    def __init__(self, entries: list[Entry], runs: list[Run]) -> None:
        self.probes: dict[str, dict] = {}
        self.notes: dict[str, list[str]] = {}
        self.failed: set = set()
        self.sides: dict[str, Optional[int]] = {}
        self.streaming: dict[str, Any] = {}   # mode -> its backend, while its stream is unmade
        self.stream_lengths: dict[str, int] = {}   # mode -> its stream's vectors' elements
        self.fused: dict[str, tuple] = {}   # mode -> its work and tensors, to size a launch for
        self.sized_launches: dict[str, dict] = {}  # mode -> its sized launch's tensors
        self.sizes: dict[int, Any] = {}   # run index -> its counted ops' ``SizeProbes``
        self.size_notes: dict[int, list[str]] = {}
        for entry in entries:
            if entry.mode not in self.probes:
                # A compiled call is priced with as many tensors in and out as the step's
                tensors = max(_tensor_count((run.st, run.mem)) for run in runs
                              if entries[run.entry].mode == entry.mode) \
                    if entry.B.compiled else 1
                self._add_mode(entry, tensors)

    def _add_mode(self, entry: Entry, tensors: int) -> None:
        import numpy as np

        from eagerbench import diagnose as diag

        mode, B = entry.mode, entry.B
        self.probes[mode], self.notes[mode] = {}, []
        for kind, _ in _PRICE_KINDS:
            if kind == "in_place" and B.compiled:
                continue
            self.probes[mode][kind] = self._diagnosed(
                mode, kind, lambda: diag.probe(B, kind, tensors=tensors))
        work, note = _diagnosed("work", lambda: entry.workload.work(entry.params,
                                                                   B.dtype_name, {}), None)
        self.notes[mode] += [note] if note else []
        self.sides[mode] = product_side(work) if work else None
        streamed = bool(work) and streams(work)
        if streamed:
            self.streaming[mode] = B
            self.stream_lengths[mode] = stream_elements(work, np.dtype(B.dtype_name).itemsize)
        if self.sides[mode]:
            products = self._diagnosed(
                mode, "product", lambda: diag.product_probes(B, self.sides[mode]))
            self.probes[mode]["product"], self.probes[mode]["product_call"] = \
                products or (None, None)
        # A fused element-wise chain's rate: on this VM the machine's chain, probed once per
        # run, ran 1.5x faster than a cell's fused loop of 100 adds timed minutes later.
        if work and work.arithmetic == "elementwise" and B.fuses_ops and not streamed:
            chains = self._diagnosed(mode, "fused_adds", lambda: diag.fused_add_probes(B))
            self.probes[mode]["fused_short"], self.probes[mode]["fused_long"] = \
                chains or (None, None)
            self.fused[mode] = (work, tensors)

    def add_sized_launches(self, runs: list[Run], entries: list[Entry]) -> list[dict]:
        """After the warm-up (a step's cost is known once it has run), each fused element-wise
        mode's launch on tensors of its cell's size (``_add_sized_launch``), to be sampled with
        the timed rounds; returns, per entry, what building them compiled."""
        from eagerbench import diagnose as diag

        built: list[dict] = [{} for _ in entries]
        for mode, (work, tensors) in self.fused.items():
            index = next(i for i, entry in enumerate(entries) if entry.mode == mode)
            B, step = entries[index].B, next(run.task.step for run in runs
                                             if entries[run.entry].mode == mode)
            before = B.graph_diagnostics()
            self._add_sized_launch(mode, B, work, tensors, B.launch_elements(step))
            built[index] = diag.compiler_delta(before, B.graph_diagnostics())
        return built

    def _add_sized_launch(self, mode: str, B, work, tensors: int, fewest: int) -> None:
        """A compiled launch on tensors of the cell's own vectors' size, or of ``fewest``
        elements where the framework launches the step as it would a launch of that many (JAX
        on a CPU hands a program of 1,000 FLOPs or more to a worker thread); from
        ``B.sized_from()``, at most ``SIZE_MAX_ELEMENTS``. What it costs beyond a one-element
        launch is what running the cell's loop costs beyond launching it (XLA hands a loop of
        1e5 elements to its threads: tf-xla's one add into a variable took 327 us at 1e5
        elements and 137 us at one); sampled each round beside the launch."""
        import numpy as np

        from eagerbench import diagnose as diag

        if not work.footprint:   # a workload that declares no footprint: no size to price
            return
        elements = min(max(vector_elements(work, np.dtype(B.dtype_name).itemsize), fewest),
                       diag.SIZE_MAX_ELEMENTS)
        if elements < B.sized_from():
            return
        self.sized_launches[mode] = {"elements": elements, "tensors": tensors}
        self.probes[mode]["launch_sized"] = self._diagnosed(
            mode, "launch_sized", lambda: diag.probe(B, "new", elements, tensors))

    def _diagnosed(self, mode: str, kind: str, measure: Callable):
        value, note = _diagnosed(f"{kind} {'dispatch ' if kind in ('new', 'in_place') else ''}"
                                 "probe", measure, None)
        if note:
            self.notes[mode].append(note)
            self.failed.add((mode, kind))
            self.probes[mode][kind] = None
        return value

    def sample(self, progress: float) -> None:
        """After a round of the unit's runs: a sample of each dispatch probe (a block as long
        as a cell's, so that both medians see the same spells: 15 samples of 2 ms priced a
        launch 1.7x a cell's whole call in the same process), and of each costlier probe (a
        product, a stream) behind the unit's ``progress`` (0 to 1) through its timing, so
        that ``PROBE_SAMPLES`` of them spread over the timed window."""
        from eagerbench.diagnose import PROBE_SAMPLES

        self._make_streams()
        for mode, kinds in self.probes.items():
            for kind, probe in list(kinds.items()):
                every_round = kind in ("new", "in_place", "launch_sized")
                if probe is not None and (every_round
                                          or len(probe.samples) < PROBE_SAMPLES * progress):
                    self._diagnosed(mode, kind, probe.sample)
        for index, sizes in self.sizes.items():
            if sizes is not None and sizes.samples < PROBE_SAMPLES * progress:
                _, note = _diagnosed("op size probes", sizes.sample, None)
                self.size_notes.setdefault(index, []).extend([note] if note else [])

    def add_sizes(self, runs: list[Run], entries: list[Entry]) -> list[dict]:
        """Probes of the sizes of each run's counted ops (``count_round``), to be sampled
        between the timed rounds; returns, per entry, what building them compiled (a graph's
        chains of adds), for the cell's compiler counters to leave out."""
        from eagerbench import diagnose as diag

        built: list[dict] = [{} for _ in entries]
        for index, run in enumerate(runs):
            sizes = run.why.get("op_sizes")
            if not run.why.get("ops") or not (sizes or run.B.runs_graph_ops):
                continue
            before = run.B.graph_diagnostics()
            what = "graph op probes" if run.B.runs_graph_ops else "op size probes"
            self.sizes[index], note = _diagnosed(what, lambda: diag.SizeProbes(run.B, sizes),
                                                 None)
            run.why.setdefault("notes", []).extend([note] if note else [])
            built[run.entry] = diag.compiler_plus(
                built[run.entry], diag.compiler_delta(before, run.B.graph_diagnostics()))
        return built

    def size_prices(self, index: int) -> tuple[Optional[dict], list[str]]:
        """ns per op at each counted size of the run's ops (see ``SizeProbes.prices``), None
        where a probe failed, and notes on what failed."""
        value, note = _diagnosed("op size probes", self.sizes[index].prices, None)
        notes = self.size_notes.pop(index, []) + ([note] if note else [])
        return (None if notes else value), notes

    def _make_streams(self) -> None:
        from eagerbench import diagnose as diag

        for mode, B in self.streaming.items():
            self.probes[mode]["stream"] = self._diagnosed(
                mode, "stream", lambda: diag.stream_probe(B, self.stream_lengths[mode]))
        self.streaming = {}

    def stream_gbps(self, mode: str) -> Optional[float]:
        """GB/s of the mode's framework's ``b += a`` on vectors of the cell's data's size (3 x
        a vector's bytes per call); None where the cell's data fits in the cache."""
        import numpy as np

        self._make_streams()
        price = self._price(mode, "stream")
        if not price:
            return None
        return 3 * np.dtype(self.probes[mode]["stream"].backend.dtype_name).itemsize \
            * self.stream_lengths[mode] / price

    def _price(self, mode: str, kind: str) -> Optional[float]:
        probe = self.probes[mode].get(kind)
        return None if probe is None else self._diagnosed(mode, kind, probe.price)

    def prices(self, mode: str) -> dict:
        """``{"new": ns, "in_place": ns or None}`` for a mode, its samples topped up now."""
        out = {}
        for kind, fallback in _PRICE_KINDS:
            price = self._price(mode, kind)
            out[kind] = fallback if (mode, kind) in self.failed else price
        return out

    def sized_launch(self, mode: str) -> Optional[dict]:
        """``{"elements", "tensors", "ns"}``: a compiled launch on tensors of the cell's
        vectors' size, ns per call; None where the mode has none."""
        price = self._price(mode, "launch_sized")
        return {**self.sized_launches[mode], "ns": price} if price else None

    def fused_adds(self, mode: str) -> Optional[dict]:
        """``{"elements", "adds": [short, long], "ns": [short, long]}``: the mode's compiled
        chains of adds, ns per call; None where the mode does not fuse or the cell's
        arithmetic is not element-wise in cache."""
        from eagerbench.limits import CHAIN_ADDS, CHAIN_ELEMS

        prices = [self._price(mode, kind) for kind in ("fused_short", "fused_long")]
        if None in prices:
            return None
        return {"elements": CHAIN_ELEMS, "adds": list(CHAIN_ADDS), "ns": prices}

    def product(self, mode: str) -> Optional[dict]:
        """``{"side", "ns", "call_ns"}``: the mode's framework's product of the cell's FLOPs
        per op and a 1 x 1 product, ns per call; None where the cell has no such FLOPs."""
        prices = [self._price(mode, kind) for kind in ("product", "product_call")]
        if None in prices:
            return None
        return {"side": self.sides[mode], "ns": prices[0], "call_ns": prices[1]}


def _diagnosed(what: str, measure: Callable, fallback):
    """A diagnostic's value, or (value, note) when it could not be taken: a diagnostic never
    costs a measured cell its record."""
    try:
        return measure(), None
    except Exception as exc:  # noqa: BLE001 - reported in the record, never raised
        return fallback, f"{what}: {one_line(exc)}"


def _counts_ops(run: Run) -> bool:
    # A compiled mode that fuses runs the same program as its eager twin, which counts its
    # ops; one whose graph runs them one by one counts (and prices) them itself.
    return not run.B.compiled or run.B.runs_graph_ops


def _count_ops(run: Run) -> list[str]:
    """One call of the run's program under the framework's dispatch counter: the ops it
    issues per call, those in place, their sizes and what they write into new tensors.
    Returns notes on what could not be taken."""
    def ops():
        count, (run.st, run.mem) = run.B.count_ops(run.B.eager_step(run.task.step),
                                                   run.st, run.mem)
        run.B.block((run.st, run.mem))
        if count and "error" in count:   # the step ran; its count did not
            raise RuntimeError(count["error"])
        run.why["ops_in_place"] = count["in_place"] if count else None
        run.why["op_sizes"] = {str(n): k for n, k in (count or {}).get("sizes", {}).items()}
        run.why["fresh_outputs"] = {str(n): k for n, k in (count or {}).get("fresh", {}).items()}
        return count["ops"] if count else None

    run.why["ops"], note = _diagnosed("ops", ops, None)
    return [note] if note else []


def count_round(runs: list[Run], watch, graphs: bool) -> None:
    """One more step of every run, so that every mode takes the same steps before its check
    (its twin may be measured in another unit), and the ops' sizes are known before the
    timing, to be priced between its rounds (in every process: one cell's two processes,
    tf-graph at 1e5 elements, took 4.5 and 10.8 ms a call). A run that counts its ops makes it
    under the framework's dispatch counter: an eager mode's step after the warm-up
    (its first call stays a plain one), a graph's program (``graphs``), run eagerly, before
    its graph is first traced (a program that keeps a tensor made while tracing cannot run
    eagerly after: kfac in tf-graph, "out of scope"). A step that only calls compiled steps
    (l-BFGS's) has no program of its own: counted before the warm-up, it would compile
    there. The others (a mode that fuses) make it as a warm-up call, after the warm-up."""
    for run in runs:
        graph_program = run.B.compiled and run.B.eager_step(run.task.step) is not run.task.step
        if not _counts_ops(run):
            if not graphs:
                _observe(run, _counted_call(run, 1, watch, "warmup"), run.warmup)
            continue
        if graph_program != graphs:
            continue
        compiled, reads = run.last_call_compiled, run.B.host_reads
        run.why.setdefault("notes", []).extend(_count_ops(run))
        run.steps += 1
        if not graphs:   # a graph's program, run eagerly, reads values its graph does not
            run.host_reads += run.B.host_reads - reads
        run.last_call_compiled = compiled   # the counted call is not the step's warm call


def diagnose(runs: list[Run], entries: list[Entry], prices: UnitPrices) -> None:
    """After timing, outside the clock: what one dispatch, one op of each counted size and
    one fresh page cost in this process (the probes' samples topped up; the memory was
    watched around the first timed sample, the page faults over every timed block)."""
    from eagerbench import diagnose as diag

    global _FAULT_NS
    for index, run in enumerate(runs):
        run.final_check = run.task.check(run.st, run.mem)
        if run.faults is not None:
            run.why["memory"].update(run.faults.per_call(),
                                     kernel_share=run.faults.kernel_share())
        notes = run.why.get("notes", [])
        key = entries[run.entry].mode
        if prices.sizes.get(index) is not None:
            sized, failed = prices.size_prices(index)
            run.why["graph_op_ns" if run.B.runs_graph_ops else "size_ns"] = sized
            run.why["sized_from"] = run.B.sized_from()
            notes += failed
        if _FAULT_NS is None:   # at the threads the kernels fault with (the worker's CPUs)
            _FAULT_NS, note = _diagnosed("page fault probe", lambda: diag.fault_ns(
                len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1), {})
            notes += [note] if note else []
        price = prices.prices(key)
        run.why["dispatch_ns"] = price["new"]
        run.why["dispatch_ns_in_place"] = price["in_place"]
        run.why["product"] = prices.product(key)
        run.why["fused_adds"] = prices.fused_adds(key)
        run.why["launch_sized"] = prices.sized_launch(key)
        run.why["stream_gbps"] = prices.stream_gbps(key)
        run.why["fault_ns"] = _FAULT_NS
        run.why["notes"] = notes + prices.notes[key]


def _cache_delta(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def measure_unit(entries: list[Entry], settings: Settings, channel=QuietChannel()) -> list[dict]:
    """Measure cells together, their runs round-robin: the modes of one framework on one
    parameter set (eager next to compiled), each possibly an interleaved sweep. Returns one
    record per cell, with one entry per value under ``variants`` for a sweep."""
    from eagerbench.diagnose import compiler_delta, compiler_plus
    from eagerbench.timer import GCWatch, wait_floor_ns

    phases = PhaseClock()
    with phases("build"):   # compiles nothing: a step compiles at its first call
        runs = build_runs(entries)
    with phases("probes"):
        prices = UnitPrices(entries, runs)
    caches = [e.B.compile_cache() for e in entries]
    compilers = [e.B.graph_diagnostics() for e in entries]
    with GCWatch() as watch:
        with phases("warm-up"):
            count_round(runs, watch, graphs=True)
            warm_up(runs, settings.warmup, watch, channel)
            count_round(runs, watch, graphs=False)
            check_after_warm_up(runs)
        with phases("probes"):   # their compiles left out of the cells' counters
            compilers = [compiler_plus(compiler_plus(before, sizes), launches)
                         for before, sizes, launches
                         in zip(compilers, prices.add_sizes(runs, entries),
                                prices.add_sized_launches(runs, entries))]
        with phases("calibrate"):
            calibrate(runs, watch)
        with phases("timed"):
            gc_state = time_runs(runs, settings, watch, channel, prices)
    with phases("floor"):
        for run in runs:
            run.floor_ns = wait_floor_ns(run.B.block, (run.st, run.mem))
    # Taken before ``diagnose`` tops the probes' samples up
    compiled = [compiler_delta(before, e.B.graph_diagnostics())
                for before, e in zip(compilers, entries)]
    cache_hits = [_cache_delta(before, e.B.compile_cache()) for before, e in zip(caches, entries)]
    with phases("diagnose"):
        diagnose(runs, entries, prices)
    records = []
    for index, entry in enumerate(entries):
        mine = [run for run in runs if run.entry == index]
        shared = {"status": "ok", "gc_state": gc_state, "threads_applied": entry.B.threads(),
                  "compile_cache": cache_hits[index],
                  "device_name": entry.B.device_name(), "donation": entry.B.donation(),
                  "unit": len(entries),
                  "compiler": compiled[index], "phases_s": phases.seconds}
        if entry.workload.sweeps(entry.params):
            records.append({**shared, "variants": [assemble(run) for run in mine]})
        else:
            records.append({**shared, **assemble(mine[0])})
    return records


# --- the process ------------------------------------------------------------------------------

def _data_source(spec: dict):
    from workloads import mnist

    if spec.get("data"):
        return (lambda batch: mnist.load(spec["data"], batch)), f"MNIST file {spec['data']}"
    return ((lambda batch: mnist.standin_cached(batch, spec["seed"], cache_root())),
            "stand-in (deterministic synthetic MNIST-like images; pass --data for real MNIST)")


def cache_root() -> str:
    return os.environ.get("EAGERBENCH_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "eagerbench")


def _context(spec: dict, workload) -> tuple[dict, Optional[str]]:
    data, source = _data_source(spec)
    ctx = {"seed": spec["seed"], "data": data}
    if spec.get("prepared"):
        import numpy as np

        if spec["prepared"].get("error"):
            raise RuntimeError(spec["prepared"]["error"])

        with np.load(spec["prepared"]["path"]) as saved:
            ctx["prepared"] = dict(saved)
    return ctx, (source if workload.uses_data else None)


def _backend(spec: dict):
    from eagerbench.modes import get_mode

    mode = get_mode(spec["mode"])
    options = {k: v for k, v in (spec.get("options") or {}).items() if k in mode.options}
    return mode.make(spec["device"], spec["dtype"], spec["threads"], **options), options


def warm_up_compiler(spec: dict) -> float:
    """Compile and run a trivial function once in the cell's mode, then forget it: every cell
    of the process then finds the compiler's modules loaded and its own graphs uncompiled, so
    its compile cost is its own, whichever cell ran first. Returns the seconds it took."""
    import numpy as np

    started = time.perf_counter()
    B, _ = _backend(spec)
    f = B.compile_function(lambda x: B.tanh(x) * 2.0 + 1.0, "compiler_warm_up")
    x = B.asarray(np.linspace(0.0, 1.0, 7))
    for _ in range(3):
        B.block(f(x))
    seconds = time.perf_counter() - started
    B.reset()
    return seconds


def units(specs: list[dict]) -> list[list[int]]:
    """The cells measured together: consecutive cells of one workload and parameter set in
    different modes, unless their data together would take more than an eighth of memory
    (1 GiB vectors in three modes: each is then measured alone)."""
    from workloads import get_workload

    out: list[list[int]] = []
    for i, spec in enumerate(specs):
        if out:
            head = specs[out[-1][0]]
            same = (head["workload"], head["params"], head.get("repeat")) == \
                (spec["workload"], spec["params"], spec.get("repeat"))
            if same and spec["mode"] not in {specs[j]["mode"] for j in out[-1]}:
                footprint = get_workload(spec["workload"]).work(
                    spec["params"], spec["dtype"], {}).footprint or 0
                if footprint * (len(out[-1]) + 1) <= _memory_bytes() / 8:
                    out[-1].append(i)
                    continue
        out.append([i])
    return out


def _memory_bytes() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 8.0 * 2**30


def measure_cells(specs: list[dict], channel) -> list[dict]:
    """One unit: every cell's backend and data, measured together; one record per cell."""
    from workloads import get_workload

    started = time.perf_counter()
    entries, extras = [], []
    try:
        for spec in specs:
            workload = get_workload(spec["workload"])
            B, options = _backend(spec)
            ctx, source = _context(spec, workload)
            iters = spec["iters"] if isinstance(spec["iters"], list) else [spec["iters"]]
            entries.append(Entry(B, workload, spec["params"], ctx, iters, spec["mode"]))
            extras.append({"options": options, "data_source": source,
                           "versions": _versions(B.framework)})
        settings = Settings(max(s["warmup"] for s in specs),
                            max(s.get("min_time_s", 0.0) for s in specs), specs[0]["gc"])
        records = measure_unit(entries, settings, channel)
    finally:
        for entry in entries:
            entry.B.reset()
    seconds = (time.perf_counter() - started) / len(specs)
    return [{**r, **extra, "cell_s": seconds} for r, extra in zip(records, extras)]


def _failure(exc: BaseException) -> dict:
    from eagerbench.workload import Unsupported

    if isinstance(exc, Unsupported):
        return {"status": "unsupported", "reason": str(exc)}
    traceback.print_exc()
    return {"status": "failed", "reason": one_line(exc)}


def measure_or_isolate(specs: list[dict], channel) -> list[dict]:
    """A unit's records; when it fails, each of its cells alone, so that one mode that cannot
    run (a step CUDA graphs cannot capture) costs only its own cell."""
    try:
        return measure_cells(specs, channel)
    except Exception as exc:  # noqa: BLE001 - a cell's failure is data, reported upward
        if len(specs) == 1:
            return [_failure(exc)]
    out = []
    for spec in specs:
        try:
            out += measure_cells([spec], channel)
        except Exception as exc:  # noqa: BLE001
            out.append(_failure(exc))
    return out


def _pin_cpus(threads: int) -> int:
    """Restrict the process to ``threads`` CPUs when fewer than all were asked for: the only
    thread control XLA's CPU pool honours, and it holds every framework to the same cores."""
    if not hasattr(os, "sched_getaffinity"):
        return os.cpu_count() or 1
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    return len(os.sched_getaffinity(0))


def process_info(cpus: int, warmup_s: dict) -> dict:
    from eagerbench import envinfo

    return {"pid": os.getpid(), "started": time.time(), "cpus": cpus,
            "compiler_warmup_s": warmup_s, "allocator": envinfo.allocator_settings()}


def run_batch(batch: dict, channel) -> int:
    """Measure every cell of the batch, unit by unit, one ``result`` message per cell."""
    cells = batch["cells"]
    cpus = _pin_cpus(cells[0]["threads"])
    warmups = {}
    for spec in cells:   # one compiler warm-up per mode, before any cell
        if spec["mode"] not in warmups:
            try:
                warmups[spec["mode"]] = warm_up_compiler(spec)
            except Exception:  # noqa: BLE001 - the cell itself will report what is wrong
                traceback.print_exc()
                warmups[spec["mode"]] = None
    process = process_info(cpus, warmups)
    failed = 0
    for unit in units(cells):
        channel.send("start", indices=unit)
        _inject_fault(unit)
        results = measure_or_isolate([cells[i] for i in unit], channel)
        gc.collect()
        for index, result in zip(unit, results):
            failed += result["status"] == "failed"
            channel.send("result", index=index,
                         **{**result, "process": {**process, "position": index}})
    return 1 if failed else 0


def _inject_fault(unit: list[int]) -> None:
    """Fault injection for the tests: ``EAGERBENCH_KILL_AT=i`` kills this worker with SIGKILL
    (as the kernel's out-of-memory killer does) when it starts the cell at batch position i."""
    at = os.environ.get("EAGERBENCH_KILL_AT")
    if at is not None and int(at) in unit:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def prepare(spec: dict, channel) -> dict:
    """Compute a workload's prepared start state once, for every cell that shares it."""
    import numpy as np

    from workloads import get_workload

    _pin_cpus(spec["threads"])
    workload = get_workload(spec["workload"])
    B, _ = _backend(spec)
    ctx, _ = _context(spec, workload)
    started = time.perf_counter()
    arrays = workload.prepare(B, spec["params"], ctx)
    np.savez(spec["save"], **arrays)
    return {"status": "ok", "seconds": time.perf_counter() - started}


def verify(spec: dict, channel) -> dict:
    """Run l-BFGS untimed in float64 and check the gradient against finite differences."""
    import numpy as np

    from eagerbench.modes import get_mode
    from workloads import autoencoder, get_workload, lbfgs_reference

    _pin_cpus(spec["threads"])
    data, source = _data_source(spec)
    params, iters = spec["params"], spec["iters"]
    x0 = autoencoder.init_weights(spec["seed"])
    if spec["mode"] == "torch.optim.LBFGS":
        losses, x = lbfgs_reference.run(data(params["batch"]), x0, params["history"], iters)
        np.save(spec["save"], x)
        return {"status": "ok", "losses": losses, "data_source": source, "pid": os.getpid()}
    mode = get_mode(spec["mode"])
    B = mode.make(spec["device"], "float64", spec["threads"])
    task = get_workload("lbfgs").build(B, params, {"seed": spec["seed"], "data": data})
    st, mem, losses = task.st, task.mem, []
    for i in range(iters):
        st, mem = task.step(st, mem)
        losses.append(task.observe(st, mem)["loss"])
        channel.send("progress", phase="verify", i=i + 1, n=iters)
    np.save(spec["save"], B.to_numpy(st["x"]))
    small = data(spec.get("gradcheck_batch", 20))
    return {"status": "ok", "losses": losses, "data_source": source, "pid": os.getpid(),
            "gradcheck": autoencoder.gradient_check(B, small, x0)}


def _versions(framework: str) -> dict:
    import importlib

    module = importlib.import_module(framework)
    return {framework: getattr(module, "__version__", "?")}


def one_line(exc: BaseException) -> str:
    """An exception as one line a user can act on."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, MemoryError) or "out of memory" in message.lower():
        return f"out of memory: {message}" if message else "out of memory"
    return f"{type(exc).__name__}: {message}"[:500]


JOBS: dict[str, Callable[[dict, Any], dict]] = {"verify": verify, "prepare": prepare}


def die_with_runner() -> None:
    """Ask the kernel to kill this worker when the runner dies, even by SIGKILL (which the
    runner cannot catch to kill its workers itself); Linux only."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    runner = os.environ.get("EAGERBENCH_RUNNER_PID")
    if runner and os.getppid() != int(runner):   # the runner died before the prctl
        os._exit(1)


def main() -> int:
    die_with_runner()
    channel = Channel()
    spec = json.loads(sys.stdin.read())
    channel.send("hello", pid=os.getpid(), protocol=PROTOCOL_VERSION)
    if spec.get("job", "measure") == "measure":
        return run_batch(spec, channel)
    return run_jobs(spec["cells"], channel)


def run_jobs(specs: list[dict], channel) -> int:
    """Run other jobs (verify, prepare) one after another in this process: a ``result``
    message each, a failure reported as data."""
    failed = 0
    for index, spec in enumerate(specs):
        channel.send("start", indices=[index])
        try:
            result = JOBS[spec["job"]](spec, channel)
        except Exception as exc:  # noqa: BLE001 - a job's failure is data, reported upward
            result = _failure(exc)
        failed += result["status"] == "failed"
        channel.send("result", index=index, **result)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
