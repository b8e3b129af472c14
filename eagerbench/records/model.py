"""The result model: what one measurement was asked (``CellSpec``), what came of it
(``CellResult`` with its ``Sample``s), the facts a report needs from the code of the day
(``Facts``), and the three together (``Record``). Frozen dataclasses, each with its JSON form;
``runfile`` holds the file around them and its schema versions.

Modelled on pyperf's ``_bench.py`` (immutable runs, a JSON format versioned with a comment per
version) and torch.utils.benchmark's ``TaskSpec`` / ``Measurement``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional, TypedDict

from eagerbench.records.why import Why

STATUSES = ("ok", "failed", "unsupported")
JSON = dict[str, Any]     # a record's JSON object, as read or written


class CellOptions(TypedDict, total=False):
    """Settings of a cell beyond its mode: the mode's own (``compile_mode``) and the
    process-wide ones that give its label a tag (``allocator``, an ``--env`` environment)."""

    compile_mode: str
    allocator: Optional[str]
    env: str                          # an environment's label (``jax==0.4.30``)
    env_requirements: list[str]       # what it was built from


class StartState(TypedDict, total=False):
    """The prepared start state a cell loads (``execute.start_states``)."""

    path: str
    by: str                           # the mode that computed it
    cached: bool                      # found in the cache, not computed in this run
    seconds: float                    # what computing it took
    error: str                        # why it could not be computed


class CompilerCounts(TypedDict, total=False):
    """What a cell's compiles did (``Backend.graph_diagnostics``' change over the cell)."""

    graphs: int
    bytes_accessed: float             # the compiler's count of what its graphs move
    graph_breaks: dict[str, int]      # reason -> breaks
    compile_split_s: dict[str, float]  # phase -> seconds


class Donation(TypedDict, total=False):
    """Buffers handed to a compiled step to update in place, and how many it really reused."""

    donated: int
    reused: int
    copied_bytes: int


class ProcessInfo(TypedDict, total=False):
    """The worker process a result came from, and what it saw of its machine."""

    pid: int
    started: float
    cpus: int
    position: int                     # the cell's place in the worker's job
    startup_s: Optional[float]        # process start to its first unit
    compiler_warmup_s: dict[str, Optional[float]]
    allocator: dict[str, Any]
    host: dict[str, Any]              # a cluster's node (``records.host.fingerprint``)
    slurm: dict[str, Any]             # its Slurm job


@dataclass(frozen=True)
class CellSpec:
    """One measured unit's identity: a workload with fixed parameters in one mode, and every
    setting the measurement depends on."""

    workload: str
    params: dict[str, Any]
    mode: str
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    seed: int = 1
    iters: int | list[int] = 10   # minimum timed samples; a list: one count per value swept
    warmup: int = 2
    min_time_s: float = 0.0   # and at least this much timed time per value
    gc: str = "on"
    data: Optional[str] = None
    repeat: int = 0
    options: CellOptions = field(default_factory=lambda: CellOptions())
    job: str = "measure"                          # or "verify", "prepare"
    save: Optional[str] = None                    # verify/prepare: where to save arrays
    prepared: Optional[StartState] = None         # the prepared start state this cell loads
    interleaved: Optional[dict[str, list[Any]]] = None   # the sweep its process ran
    why: bool = True                              # the why phase after the timed rounds
    extra_env: dict[str, str] = field(default_factory=dict, compare=False)   # tests only

    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.workload} {params} [{self.mode}]"

    def to_json(self) -> JSON:
        out = dataclasses.asdict(self)
        out.pop("extra_env")
        if out["interleaved"] is None:
            out.pop("interleaved")
        return out

    @classmethod
    def from_json(cls, data: JSON) -> "CellSpec":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra_env"}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown cell field(s) {', '.join(sorted(unknown))}")
        for name in ("workload", "mode"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"cell {name} is not a name")
        if not isinstance(data.get("params"), dict):
            raise ValueError("cell params are not a mapping")
        return cls(**data)

    def identity(self) -> str:
        """What makes two specs the same measurement (a resumed run skips a cell whose identity
        is recorded): everything but where arrays are saved and the prepared state's path."""
        spec = self.to_json()
        for name in ("save", "prepared"):
            spec.pop(name, None)
        return json.dumps(spec, sort_keys=True)


# --- what came of it ---------------------------------------------------------------------------

def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} is not a number: {value!r}"[:200])
    return value


@dataclass(frozen=True)
class Sample:
    """One timed sample: ``calls`` calls of the step and one wait, ``ns`` in all."""

    ns: int
    calls: int
    gc_collections: int     # collections that ran inside it
    gc_ns: int              # time those collections took
    observed: dict[str, Any] = field(default_factory=dict)   # read after it (loss, pairs)
    step: int = 0           # steps the program had taken when ``observed`` was read

    def to_json(self) -> JSON:
        return {"ns": self.ns, "calls": self.calls, "step": self.step,
                "gc_collections": self.gc_collections, "gc_ns": self.gc_ns, **self.observed}

    @classmethod
    def from_json(cls, data: JSON) -> "Sample":
        if not isinstance(data, dict):
            raise ValueError(f"a sample is not a mapping: {data!r}"[:200])
        ns = _number(data.get("ns"), "a sample's ns")
        calls = _number(data.get("calls", 1), "a sample's calls")
        if ns < 0 or calls < 1:
            raise ValueError(f"a sample of {ns} ns over {calls} calls")
        known = {"ns", "calls", "step", "gc_collections", "gc_ns"}
        return cls(ns=int(ns), calls=int(calls), step=int(data.get("step") or 0),
                   gc_collections=int(data.get("gc_collections", 0)),
                   gc_ns=int(data.get("gc_ns", 0)),
                   observed={k: v for k, v in data.items() if k not in known})

    @property
    def ms_per_call(self) -> float:
        return self.ns / self.calls / 1e6


@dataclass(frozen=True)
class CellResult:
    """What one process measured of one cell (or why it could not)."""

    status: str                                   # "ok", "failed" or "unsupported"
    reason: str = ""
    stderr_tail: str = ""
    warmup: tuple[Sample, ...] = ()
    timed: tuple[Sample, ...] = ()
    latency_ns: tuple[float, ...] = ()            # one call waited on, for blocked steps
    block_calls: int = 1
    floor_ns: Optional[float] = None              # the clock and the backend's wait, per sample
    stopped: Optional[str] = None
    traces_before_timing: int = 0
    traces_during_timing: int = 0
    compiles_before_timing: int = 0
    compiles_during_timing: int = 0
    compile_events_s: Optional[float] = None
    host_reads_per_call: Optional[float] = None
    setup_s: Optional[float] = None
    cell_s: Optional[float] = None
    phases_s: dict[str, float] = field(default_factory=dict)  # the unit's seconds per phase
    wall_s: Optional[float] = None
    unit: int = 1                                 # cells measured together in the process
    gc_state: dict[str, Any] = field(default_factory=dict)      # the collector while timing
    threads_applied: dict[str, Any] = field(default_factory=dict)   # as the framework says
    compile_cache: dict[str, int] = field(default_factory=dict)     # graph_hits, graph_misses
    device_name: str = ""
    donation: Optional[Donation] = None
    info: dict[str, Any] = field(default_factory=dict)      # what the workload's task says
    check: dict[str, float] = field(default_factory=dict)   # values compared across modes
    warm_check: dict[str, float] = field(default_factory=dict)   # ``check`` after warm-up
    why: Why = field(default_factory=Why)         # the why phase's findings (``--why``)
    compiler: CompilerCounts = field(default_factory=lambda: CompilerCounts())
    options: dict[str, Any] = field(default_factory=dict)   # the mode options it was given
    data_source: Optional[str] = None
    versions: dict[str, str] = field(default_factory=dict)
    process: ProcessInfo = field(default_factory=lambda: ProcessInfo())
    extra: JSON = field(default_factory=dict)     # fields of a job other than measure

    def __post_init__(self) -> None:
        if isinstance(self.why, dict):   # a why record given as its JSON is typed here
            object.__setattr__(self, "why", Why.from_json(self.why))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def process_id(self) -> str:
        return f"{self.process.get('pid', '?')}@{self.process.get('started', '?')}"

    def to_json(self) -> JSON:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("warmup", "timed"):
                value = [s.to_json() for s in value]
            elif f.name == "why":
                value = value.to_json()
            elif f.name == "latency_ns":
                value = list(value)
            elif f.name == "extra":
                continue
            out[f.name] = value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: JSON) -> "CellResult":
        if not isinstance(data, dict):
            raise ValueError("a result is not a mapping")
        if data.get("status") not in STATUSES:
            raise ValueError(f"result status {data.get('status')!r} is not one of "
                             f"{', '.join(STATUSES)}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in names}
        for phase in ("warmup", "timed"):
            samples = data.get(phase) or []
            if not isinstance(samples, list):
                raise ValueError(f"{phase} samples are not a list")
            kwargs[phase] = tuple(Sample.from_json(s) for s in samples)
        kwargs["latency_ns"] = tuple(_number(v, "a latency") for v in data.get("latency_ns") or [])
        for name in ("reason", "stderr_tail", "device_name"):
            kwargs[name] = kwargs.get(name) or ""
        for name in ("gc_state", "threads_applied", "compile_cache", "info", "check", "warm_check",
                     "options", "versions", "process", "compiler", "phases_s"):
            kwargs[name] = kwargs.get(name) or {}
        kwargs["why"] = Why.from_json(data.get("why"))
        if kwargs.get("block_calls") is None:
            kwargs["block_calls"] = 1
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in names})


@dataclass(frozen=True)
class Facts:
    """What reading a cell needs from the code of the day, fixed when it was measured."""

    label: str                      # the mode with its non-default settings ("torch +thp")
    framework: str
    eager_twin: Optional[str]       # the label this cell's eager tax is read against
    compiled: bool
    flops: Optional[float] = None   # work one timed call does
    bytes: Optional[float] = None
    ops: Optional[float] = None
    footprint: Optional[float] = None
    arithmetic: str = "matmul"       # what the FLOPs are ("elementwise": priced as fused adds)
    shown: tuple[str, ...] = ()     # observed values the workload's rows show ("pairs")
    views: tuple[dict[str, Any], ...] = ()   # its declared figures and tables (presentation)
    derived_by: str = "measurement"  # or "upgrade from schema 1" (today's code, on load)

    def to_json(self) -> JSON:
        return {**dataclasses.asdict(self), "shown": list(self.shown), "views": list(self.views)}

    @classmethod
    def from_json(cls, data: JSON) -> "Facts":
        if not isinstance(data, dict) or not isinstance(data.get("label"), str):
            raise ValueError("facts without a label")
        return cls(**{**data, "shown": tuple(data.get("shown") or ()),
                      "views": tuple(data.get("views") or ())})


@dataclass(frozen=True)
class Record:
    """One cell measured in one process."""

    spec: CellSpec
    result: CellResult
    facts: Optional[Facts] = None   # None for a job that is not a measurement

    @property
    def measured(self) -> Facts:
        """The facts of a measurement (a ``ValueError`` for a job that is not one)."""
        if self.facts is None:
            raise ValueError(f"{self.spec.label()}: a {self.spec.job} job, not a measurement")
        return self.facts

    def to_json(self) -> JSON:
        out = {"cell": self.spec.to_json(), "result": self.result.to_json()}
        if self.facts is not None:
            out["facts"] = self.facts.to_json()
        return out

    @classmethod
    def from_json(cls, data: JSON) -> "Record":
        facts = data.get("facts")
        return cls(CellSpec.from_json(data["cell"]), CellResult.from_json(data["result"]),
                   Facts.from_json(facts) if facts is not None else None)


