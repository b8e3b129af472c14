"""What the why phase records of a cell (``Why``), and what its probes price at: the sizes,
sample counts and thresholds that the probes (``measure/why``) and the report that reads their
prices (``report/explain``) share. Nothing here measures."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, TypedDict

# A sample is a block as long as a cell's, of as many calls at most (a one-element op: ~1 us)
PROBE_SAMPLES = 15    # samples at least; the median is kept (7 swung by 2x on this VM)

# Small page faults a call from which a cell's fresh pages are priced by its own kernel time
# (4 MiB; at 1 to 4 us a page, a millisecond or more a call, most of the process's kernel
# time).
PRICED_FAULTS = 1000

# An op's size costs more than its traffic once the framework splits it over its intra-op
# thread pool (TensorFlow's eager add: 107 us per op at 92,682 elements, 248 us at 100,000, here).
# Sizes are priced from this many elements up (below, the extra is within the probe's noise:
# priced from 512, torch's 1,000-element adds came to 1.3x the cell with their dispatch), or
# from a backend's ``sized_from`` where it hands smaller ops to a thread; at most this many
# (a larger probe would leave the cache: a larger op is priced at this size).
SIZE_MIN_ELEMENTS = 1 << 12
SIZE_MAX_ELEMENTS = 1 << 17
SIZE_PROBES = 6        # the sizes with the most ops; the others take the nearest one's price

STREAM_ELEMENTS = 1 << 25   # as the machine's probe: 128 MiB per float32 vector, past most caches


class ProductPrice(TypedDict):
    """The mode's product of a cell's FLOPs per op, timed after the cell: ``side`` x ``side``
    in ``ns``, and a 1 x 1 product's ``call_ns`` (the price of calling one)."""

    side: int
    ns: float
    call_ns: float


class FusedAdds(TypedDict):
    """The mode's compiled chains of ``adds`` (short, long) adds on ``elements`` in cache,
    their medians ``ns`` (short, long)."""

    elements: int
    adds: list[int]
    ns: list[float]


class SizedLaunch(TypedDict):
    """A compiled launch on ``tensors`` tensors of ``elements`` each, its median ``ns``."""

    elements: int
    tensors: int
    ns: float


class FaultPrices(TypedDict, total=False):
    """ns per fresh page, faulted, zeroed and released: a small one, a huge one (None where
    the kernel gave none)."""

    small: Optional[float]
    huge: Optional[float]


class MemoryUse(TypedDict, total=False):
    """Memory around one more call of the step, and its page faults per call over the timed
    blocks (None where the kernel does not say)."""

    rss_before_bytes: Optional[float]
    rss_peak_bytes: Optional[float]
    device_peak_bytes: Optional[float]
    page_faults: Optional[float]
    huge_page_faults: Optional[float]
    kernel_share: Optional[float]     # the kernel's share of the process's CPU time


@dataclass
class Why:
    """What the why phase found of a cell, after its timed rounds (``--why``): its ops per
    call, their sizes, and what each kind of work costs in its process. A field not taken is
    None (or empty); ``explain`` turns them into the time decomposition."""

    ops: Optional[float] = None                 # framework ops dispatched per call
    ops_in_place: Optional[float] = None        # of those, ops that wrote into an input
    # str(elements) -> ops of that size; -> ops that write into new tensors
    op_sizes: dict[str, float] = field(default_factory=dict)
    fresh_outputs: dict[str, float] = field(default_factory=dict)
    size_ns: Optional[dict[str, float]] = None      # eager: ns per op at each priced size
    graph_op_ns: Optional[dict[str, float]] = None  # a graph run op by op: ns per op a size
    sized_from: Optional[int] = None            # the fewest elements a size is priced from
    dispatch_ns: Optional[float] = None         # one op (eager) or one launch (compiled)
    dispatch_ns_in_place: Optional[float] = None
    product: Optional[ProductPrice] = None
    fused_adds: Optional[FusedAdds] = None
    launch_sized: Optional[SizedLaunch] = None
    stream_gbps: Optional[float] = None         # the framework's b += a at the cell's size
    fault_ns: FaultPrices = field(default_factory=lambda: FaultPrices())
    memory: MemoryUse = field(default_factory=lambda: MemoryUse())
    notes: list[str] = field(default_factory=list)   # what could not be taken, and why

    @property
    def taken(self) -> bool:
        """Whether the why phase left anything (a run with ``--no-why`` leaves nothing)."""
        return self != Why()

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, {}, [])}

    @classmethod
    def from_json(cls, data: Optional[dict[str, Any]]) -> "Why":
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"a why record is not a mapping: {data!r}"[:200])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"a why record with unknown fields: {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if v is not None})
