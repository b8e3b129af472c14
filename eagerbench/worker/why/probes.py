"""The why-probes: what one dispatch, one launch, one product, one fused chain, one streamed add
and one op of each counted size cost in this process. Each ``Probe`` is sampled in the why phase,
after every timed round of its unit (never between them), in blocks timed by ``timer.time_calls``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from eagerbench.frameworks.backends.base import Backend
from eagerbench.records.why import (
    PROBE_SAMPLES,
    SIZE_MAX_ELEMENTS,
    SIZE_MIN_ELEMENTS,
    SIZE_PROBES,
    STREAM_ELEMENTS,
)
from eagerbench.worker.clock import BLOCK_TARGET_NS, MAX_BLOCK_CALLS, block_size, time_calls
from eagerbench.worker.machine import CHAIN_ADDS, CHAIN_ELEMS


class Probe:
    """Samples of one dispatch probe's price: ns per call, waited on in blocks, taken in the
    why phase after the unit's timed rounds (outside them: a probe streams up to 128 MiB)."""

    def __init__(self, backend: Backend, call: Callable[[], Any],
                 as_a_cell: bool = False) -> None:
        self.backend, self.call = backend, call
        self.samples: list[float] = []
        for _ in range(2):   # compile, and warm
            backend.block(call())
        elapsed = max(time_calls(call, 1, backend.block), 1)
        self.calls = block_size(elapsed) if as_a_cell else \
            int(min(MAX_BLOCK_CALLS, max(5, BLOCK_TARGET_NS / elapsed)))
        self.warmed = not as_a_cell or self.calls > 1

    def sample(self) -> None:
        """One block of calls, after a waited call that leaves the queue empty and wakes the
        framework's threads, as a cell's block starts. A probe made ``as_a_cell`` is timed
        as a cell's sample is (``block_size``): a call of 1 ms or more alone and unwarmed,
        its data where the unit's other work left it (a warmed block of adds on 40 MB
        vectors ran at 62 GB/s beside a cell's single adds of that size at 38, the
        last-level cache holding the probe's vectors)."""
        if self.warmed:
            self.backend.block(self.call())
        self.samples.append(time_calls(self.call, self.calls, self.backend.block) / self.calls)

    def price(self) -> float:
        """The median sample, after topping the samples up to ``PROBE_SAMPLES``."""
        while len(self.samples) < PROBE_SAMPLES:
            self.sample()
        ordered = sorted(self.samples)
        return float(ordered[len(ordered) // 2])


def probe(backend: Backend, kind: str = "new", elements: int = 1,
          tensors: int = 1) -> Optional[Probe]:
    """A ``Probe`` of the backend's dispatch probe of that kind (an op in an eager mode, a
    launch of ``tensors`` tensors in a compiled mode, compiled here), or None where the
    backend has none."""
    call = backend.dispatch_probe(kind, elements, tensors)
    return None if call is None else Probe(backend, call)


def dispatch_ns(backend: Backend, kind: str = "new", elements: int = 1) -> Optional[float]:
    """Median nanoseconds of one call of the backend's dispatch probe of that kind, taken now:
    the price of one op in an eager mode, of one graph launch in a compiled mode. None where
    the backend has no probe of that kind."""
    taken = probe(backend, kind, elements)
    return None if taken is None else taken.price()


def product_probes(backend: Backend, side: int) -> tuple[Probe, Probe]:
    """Probes of the product the mode runs, of two ``side`` x ``side`` matrices, and of a 1 x 1
    product: the second is the price of calling a product, which the first's kernel time
    leaves out. Each product takes the one before's (its values stay ``1 / side``). A mode
    that generates its own code (``fuses_ops``: XLA, Inductor) runs its compiler's product,
    compiled here (XLA's product of two 1024 x 1024 floats took 8.5 ms here, TensorFlow's
    own 6.8 ms); any other runs the framework's."""
    def product(pair: tuple[Any, Any]) -> Any:
        return backend.matmul(*pair)

    run = backend.compile_function(product, "product_probe") if backend.fuses_ops else product

    def chained(n: int) -> Callable[[], Any]:
        # Two tensors: a first call on one tensor twice would compile for that aliasing
        a = backend.asarray(np.full((n, n), 1.0 / n))
        last = [backend.asarray(np.full((n, n), 1.0 / n))]

        def call() -> Any:
            last[0] = run((a, last[0]))
            return last[0]
        return call

    return Probe(backend, chained(side)), Probe(backend, chained(1))


def fused_add_probes(backend: Backend) -> Optional[tuple[Probe, Probe]]:
    """Probes of the mode's own compiled chains of ``CHAIN_ADDS`` adds (as the machine's
    probe: 20 and 80) on in-cache vectors of ``CHAIN_ELEMS``: their difference is the price of
    fused element-wise arithmetic, without the call or the vectors' traffic. None in a mode
    that does not fuse."""
    short, long = (backend.fused_add_probe(adds, CHAIN_ELEMS) for adds in CHAIN_ADDS)
    if short is None or long is None:
        return None
    return Probe(backend, short), Probe(backend, long)


def stream_probe(backend: Backend, elements: int = STREAM_ELEMENTS) -> Probe:
    """A ``Probe`` of the framework's ``b += a`` on vectors of ``elements``, in place: what the
    machine's memory streams at in this process (3 x the vectors' bytes per call), each
    sample timed as a cell's is."""
    return Probe(backend, backend.stream_add(elements), as_a_cell=True)


def probe_sizes(sizes: dict[str, float], smallest: int = SIZE_MIN_ELEMENTS) -> list[int]:
    """The op sizes to price (elements), from ``count_ops``'s ``{elements: ops}``, from
    ``smallest`` up."""
    clipped: Counter[int] = Counter()
    for elements, ops in sizes.items():
        if int(elements) >= smallest:
            clipped[min(int(elements), SIZE_MAX_ELEMENTS)] += int(ops)
    return sorted(n for n, _ in clipped.most_common(SIZE_PROBES))


# An op in a graph: two chains' difference per op (the call cancels). The call is ~0.5 ms in
# tf.function here and its median moves by tens of us, so the chains are 300 ops apart: 60 apart,
# an op at one element was priced at 0.08 to 0.51 us in three runs of one process, 300 apart
# at 0.20 to 0.40.
GRAPH_CHAIN_OPS = (20, 320)


T = TypeVar("T")


def _needed(found: Optional[T]) -> T:
    """A probe the backend must have for a size to be priced (the why phase notes its lack)."""
    if found is None:
        raise ValueError("this backend has no probe of an op of that size")
    return found


class SizeProbes:
    """What a counted op costs at each of its sizes to price, sampled in the why phase. In an
    eager mode: one add on tensors of each size (in place where the framework updates in place,
    as its cheapest op is priced), its dispatch, traffic and the framework's handing it to its
    threads. In a graph that runs its ops one by one: compiled
    chains of 320 and of 20 in-place adds, at one element and at each size, their medians'
    difference per add; the launch and the call's other fixed costs cancel, the executor's
    handing each op to a kernel and to the intra-op threads does not (tf.function here:
    0.37 us per add at one element, 24 us at 100,000)."""

    def __init__(self, backend: Backend, sizes: dict[str, float]) -> None:
        self.in_graph = backend.runs_graph_ops
        self.probes: dict[int, list[Probe]] = {}
        if self.in_graph:
            for n in [1] + probe_sizes(sizes, backend.sized_from()):
                self.probes[n] = [Probe(backend, _needed(backend.graph_op_probe(ops, n)))
                                  for ops in GRAPH_CHAIN_OPS]
        else:
            kind = "in_place" if backend.updates_in_place else "new"
            for n in probe_sizes(sizes, backend.sized_from()):
                self.probes[n] = [_needed(probe(backend, kind, n))]

    @property
    def samples(self) -> int:
        """The fewest samples any of the probes has taken."""
        return min((len(p.samples) for chain in self.probes.values() for p in chain), default=0)

    def sample(self) -> None:
        """One sample of every probe, in turn (a graph's two chains side by side)."""
        for chain in self.probes.values():
            for each in chain:
                each.sample()

    def prices(self) -> dict[str, float]:
        """ns per op at each size (``{"1": ..., str(elements): ...}`` in a graph), the
        samples topped up to ``PROBE_SAMPLES``."""
        while self.probes and self.samples < PROBE_SAMPLES:
            self.sample()
        if not self.in_graph:
            return {str(n): chain[0].price() for n, chain in self.probes.items()}
        short, long = GRAPH_CHAIN_OPS
        return {str(n): max(0.0, (chains[1].price() - chains[0].price()) / (long - short))
                for n, chains in self.probes.items()}
