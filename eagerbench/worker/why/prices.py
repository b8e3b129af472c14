"""What each kind of work costs in the modes of one unit: a dispatch, a launch, the mode's own
product, a fused chain, a streamed add and an op of each counted size (``UnitPrices``), from the
probes of ``why.probes``, sampled in the why phase after the unit's timed rounds."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from eagerbench.frameworks.backends.base import Backend
from eagerbench.records.limits import cache_fit_bytes
from eagerbench.records.why import (
    PROBE_SAMPLES,
    SIZE_MAX_ELEMENTS,
    STREAM_ELEMENTS,
    FusedAdds,
    ProductPrice,
    SizedLaunch,
    Why,
)
from eagerbench.worker.counters import Counters, compiler_delta, compiler_plus
from eagerbench.worker.failures import one_line
from eagerbench.worker.loop import Entry, LiveCell
from eagerbench.worker.machine import (
    CHAIN_ADDS,
    CHAIN_ELEMS,
    inner_cache_bytes,
    last_level_cache_bytes,
)
from eagerbench.worker.why import probes as probing
from eagerbench.workload import Work

T = TypeVar("T")
F = TypeVar("F")

_PRICE_KINDS = (("new", float("nan")), ("in_place", None))   # a kind, and its price on failure
_CACHES: Optional[dict[str, Optional[int]]] = None   # the caches' sizes, from sysfs


def _tensor_count(tree: Any) -> int:
    """The tensors in a step's state: every leaf of its dicts, lists and tuples that is not a
    Python scalar or string."""
    if isinstance(tree, dict):
        return sum(_tensor_count(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(_tensor_count(v) for v in tree)
    return 0 if tree is None or isinstance(tree, (bool, int, float, str)) else 1


def product_side(work: Work) -> Optional[int]:
    """The side of the square product whose FLOPs are a cell's per op (its ``Work``), for a
    workload whose FLOPs are matrix products; None for any other."""
    if work.arithmetic != "matmul" or not work.flops or not work.ops:
        return None
    return max(1, round(float((work.flops / work.ops / 2) ** (1 / 3))))


def streams(work: Work) -> bool:
    """Whether a cell's data (its ``Work``) moves slower than the machine's cache bandwidth:
    larger than half the cache that bandwidth is measured in (``cache_fit_bytes``), or the
    caches' sizes unknown."""
    global _CACHES
    if _CACHES is None:   # read from sysfs once per process
        _CACHES = {"inner_cache_bytes": inner_cache_bytes(),
                   "llc_bytes": last_level_cache_bytes()}
    fit = cache_fit_bytes(_CACHES["inner_cache_bytes"], _CACHES["llc_bytes"])
    return bool(work.bytes and work.footprint and (not fit or work.footprint > fit))


def stream_elements(work: Work, itemsize: int) -> int:
    """The length of the stream probe's two vectors for a cell that streams: the cell's own
    footprint split in two (its data's level of the memory hierarchy, whatever the caches'
    sizes), at most ``STREAM_ELEMENTS`` or the last-level cache, whichever is larger (past
    the caches either way)."""
    cap = max(STREAM_ELEMENTS, int((_CACHES or {}).get("llc_bytes") or 0) // itemsize)
    return max(1, min(vector_elements(work, itemsize), cap))


def vector_elements(work: Work, itemsize: int) -> int:
    """The length of each of the two vectors a ``b += a`` on the cell's footprint holds."""
    return int((work.footprint or 0) / 2 / itemsize)


class UnitPrices:
    """What one dispatch costs in each mode of a unit (ns per op made new and per op in place;
    per launch in a compiled mode), what the mode's own product of the cell's FLOPs per
    op costs, the bandwidth its ``b += a`` streams at, what a fused add costs in a mode that
    fuses, and what each counted op's size costs. The probes are made before the unit's
    warm-up (a compiled probe is compiled again for each unit, before the unit's compiler
    counters are read, so that its graph is not the cells'), and sampled only in the why
    phase, after every timed round; the stream's vectors are made at its first sample."""

    def __init__(self, entries: list[Entry], runs: list[LiveCell]) -> None:
        self.probes: dict[str, dict[str, Optional[probing.Probe]]] = {}
        self.notes: dict[str, list[str]] = {}
        self.failed: set[tuple[str, str]] = set()
        self.sides: dict[str, Optional[int]] = {}
        self.streaming: dict[str, Backend] = {}   # mode -> its backend, its stream unmade
        self.stream_lengths: dict[str, int] = {}   # mode -> its stream's vectors' elements
        self.fused: dict[str, tuple[Work, int]] = {}   # mode -> its work and tensors
        self.sized_launches: dict[str, tuple[int, int]] = {}   # mode -> elements, tensors
        self.sizes: dict[int, Optional[probing.SizeProbes]] = {}   # run -> its ops' probes
        self.size_notes: dict[int, list[str]] = {}
        for entry in entries:
            if entry.mode not in self.probes:
                # A compiled call is priced with as many tensors in and out as the step's
                tensors = max(_tensor_count((run.st, run.mem)) for run in runs
                              if entries[run.entry].mode == entry.mode) \
                    if entry.backend.compiled else 1
                self._add_mode(entry, tensors)

    def _add_mode(self, entry: Entry, tensors: int) -> None:
        mode, backend = entry.mode, entry.backend
        self.probes[mode], self.notes[mode] = {}, []
        for kind, _ in _PRICE_KINDS:
            if kind == "in_place" and backend.compiled:
                continue
            self.probes[mode][kind] = self._measured(
                mode, kind, partial(probing.probe, backend, kind, tensors=tensors))
        work, note = diagnosed("work", lambda: entry.workload.work(entry.params,
                                                                   backend.dtype_name, {}), None)
        self.notes[mode] += [note] if note else []
        self.sides[mode] = product_side(work) if work else None
        streamed = work is not None and streams(work)
        if work is not None and streamed:
            self.streaming[mode] = backend
            self.stream_lengths[mode] = stream_elements(work, np.dtype(backend.dtype_name).itemsize)
        side = self.sides[mode]
        if side:
            products = self._measured(
                mode, "product", lambda: probing.product_probes(backend, side))
            self.probes[mode]["product"], self.probes[mode]["product_call"] = \
                products or (None, None)
        # A fused element-wise chain's rate: on this VM the machine's chain, probed once per
        # run, ran 1.5x faster than a cell's fused loop of 100 adds timed minutes later.
        if work and work.arithmetic == "elementwise" and backend.fuses_ops and not streamed:
            chains = self._measured(mode, "fused_adds", lambda: probing.fused_add_probes(backend))
            self.probes[mode]["fused_short"], self.probes[mode]["fused_long"] = \
                chains or (None, None)
            self.fused[mode] = (work, tensors)

    def add_sized_launches(self, runs: list[LiveCell], entries: list[Entry]) -> list[Counters]:
        """After the warm-up (a step's cost is known once it has run), each fused element-wise
        mode's launch on tensors of its cell's size (``_add_sized_launch``), to be sampled with
        the timed rounds; returns, per entry, what building them compiled."""

        built = [Counters() for _ in entries]
        for mode, (work, tensors) in self.fused.items():
            index = next(i for i, entry in enumerate(entries) if entry.mode == mode)
            backend, step = entries[index].backend, next(run.task.step for run in runs
                                             if entries[run.entry].mode == mode)
            before = backend.graph_diagnostics()
            self._add_sized_launch(mode, backend, work, tensors, backend.launch_elements(step))
            built[index] = compiler_delta(before, backend.graph_diagnostics())
        return built

    def _add_sized_launch(self, mode: str, backend: Backend, work: Work, tensors: int,
                          fewest: int) -> None:
        """A compiled launch on tensors of the cell's own vectors' size, or of ``fewest``
        elements where the framework launches the step as it would a launch of that many (JAX
        on a CPU hands a program of 1,000 FLOPs or more to a worker thread); from
        ``backend.sized_from()``, at most ``SIZE_MAX_ELEMENTS``. What it costs beyond a one-element
        launch is what running the cell's loop costs beyond launching it (XLA hands a loop of
        1e5 elements to its threads: tf-xla's one add into a variable took 327 us at 1e5
        elements and 137 us at one); sampled each round beside the launch."""

        if not work.footprint:   # a workload that declares no footprint: no size to price
            return
        elements = min(max(vector_elements(work, np.dtype(backend.dtype_name).itemsize), fewest),
                       SIZE_MAX_ELEMENTS)
        if elements < backend.sized_from():
            return
        self.sized_launches[mode] = (elements, tensors)
        self.probes[mode]["launch_sized"] = self._measured(
            mode, "launch_sized", lambda: probing.probe(backend, "new", elements, tensors))

    def _measured(self, mode: str, kind: str, measure: Callable[[], T]) -> Optional[T]:
        value, note = diagnosed(f"{kind} {'dispatch ' if kind in ('new', 'in_place') else ''}"
                                 "probe", measure, None)
        if note:
            self.notes[mode].append(note)
            self.failed.add((mode, kind))
            self.probes[mode][kind] = None
        return value

    def sample(self) -> None:
        """One more sample of every probe that has fewer than ``PROBE_SAMPLES``, in turn: the
        why phase takes its rounds so, each mode's probes beside the others'."""
        self._make_streams()
        for mode, kinds in self.probes.items():
            for kind, probe in list(kinds.items()):
                if probe is not None and len(probe.samples) < PROBE_SAMPLES:
                    self._measured(mode, kind, probe.sample)
        for index, sizes in self.sizes.items():
            if sizes is not None and sizes.samples < PROBE_SAMPLES:
                _, note = diagnosed("op size probes", sizes.sample, None)
                self.size_notes.setdefault(index, []).extend([note] if note else [])

    def add_sizes(self, runs: list[LiveCell], entries: list[Entry],
                  whys: list[Why]) -> list[Counters]:
        """Probes of the sizes of each run's counted ops (``count_round``), to be sampled in
        the why phase; returns, per entry, what building them compiled (a graph's
        chains of adds), for the cell's compiler counters to leave out."""

        built = [Counters() for _ in entries]
        for index, run in enumerate(runs):
            sizes = whys[index].op_sizes
            if not whys[index].ops or not (sizes or run.backend.runs_graph_ops):
                continue
            before = run.backend.graph_diagnostics()
            what = "graph op probes" if run.backend.runs_graph_ops else "op size probes"
            self.sizes[index], note = diagnosed(
                what, partial(probing.SizeProbes, run.backend, sizes), None)
            whys[index].notes.extend([note] if note else [])
            built[run.entry] = compiler_plus(
                built[run.entry], compiler_delta(before, run.backend.graph_diagnostics()))
        return built

    def size_prices(self, index: int) -> tuple[Optional[dict[str, float]], list[str]]:
        """ns per op at each counted size of the run's ops (see ``SizeProbes.prices``), None
        where a probe failed, and notes on what failed."""
        sizes = self.sizes[index]
        value, note = (None, None) if sizes is None else \
            diagnosed("op size probes", sizes.prices, None)
        notes = self.size_notes.pop(index, []) + ([note] if note else [])
        return (None if notes else value), notes

    def _make_streams(self) -> None:

        for mode, backend in self.streaming.items():
            self.probes[mode]["stream"] = self._measured(
                mode, "stream", partial(probing.stream_probe, backend, self.stream_lengths[mode]))
        self.streaming = {}

    def stream_gbps(self, mode: str) -> Optional[float]:
        """GB/s of the mode's framework's ``b += a`` on vectors of the cell's data's size (3 x
        a vector's bytes per call); None where the cell's data fits in the cache."""
        self._make_streams()
        price = self._price(mode, "stream")
        if not price:
            return None
        stream = self.probes[mode]["stream"]
        assert stream is not None
        return float(3 * np.dtype(stream.backend.dtype_name).itemsize
                     * self.stream_lengths[mode] / price)

    def _price(self, mode: str, kind: str) -> Optional[float]:
        probe = self.probes[mode].get(kind)
        return None if probe is None else self._measured(mode, kind, probe.price)

    def prices(self, mode: str) -> dict[str, Optional[float]]:
        """``{"new": ns, "in_place": ns or None}`` for a mode, its samples topped up now."""
        out: dict[str, Optional[float]] = {}
        for kind, fallback in _PRICE_KINDS:
            price = self._price(mode, kind)
            out[kind] = fallback if (mode, kind) in self.failed else price
        return out

    def sized_launch(self, mode: str) -> Optional[SizedLaunch]:
        """A compiled launch on tensors of the cell's vectors' size, ns per call; None where
        the mode has none."""
        price = self._price(mode, "launch_sized")
        if not price:
            return None
        elements, tensors = self.sized_launches[mode]
        return SizedLaunch(elements=elements, tensors=tensors, ns=price)

    def fused_adds(self, mode: str) -> Optional[FusedAdds]:
        """The mode's compiled chains of adds (short, long), ns per call; None where the mode
        does not fuse or the cell's arithmetic is not element-wise in cache."""
        short, long = (self._price(mode, kind) for kind in ("fused_short", "fused_long"))
        if short is None or long is None:
            return None
        return FusedAdds(elements=CHAIN_ELEMS, adds=list(CHAIN_ADDS), ns=[short, long])

    def product(self, mode: str) -> Optional[ProductPrice]:
        """The mode's framework's product of the cell's FLOPs per op and a 1 x 1 product, ns
        per call; None where the cell has no such FLOPs."""
        ns, call_ns = (self._price(mode, kind) for kind in ("product", "product_call"))
        side = self.sides[mode]
        if ns is None or call_ns is None or side is None:
            return None
        return ProductPrice(side=side, ns=ns, call_ns=call_ns)


def diagnosed(what: str, measure: Callable[[], T], fallback: F) -> tuple[T | F, Optional[str]]:
    """A diagnostic's value, or (value, note) when it could not be taken: a diagnostic never
    costs a measured cell its record."""
    try:
        return measure(), None
    except Exception as exc:  # noqa: BLE001 - reported in the record, never raised
        return fallback, f"{what}: {one_line(exc)}"


