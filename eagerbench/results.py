"""The result model: typed, versioned records, and the only code that knows their JSON layout.

A run is one ``raw.jsonl``: a header line, then one line per cell measured in one process, then
a footer line once the run has finished (a resumed run may append more records and a second
footer; the last footer counts). Modelled on pyperf's ``_bench.py`` (immutable runs, a JSON
format versioned with a comment per version) and torch.utils.benchmark's ``TaskSpec`` /
``Measurement``: a frozen ``CellSpec`` says what was measured, a ``CellResult`` what came of it,
and ``Facts`` what a report needs that depends on the code of the day (the mode's label and
eager twin, the work one call does), stored when the cell is measured so that an old run
reports the same way forever.

Schema versions:

1. (eagerbench 0.1, until November 2026) no header or footer; each line
   ``{"cell": spec, "result": result}``; the environment in ``env.json`` beside it; reports
   recomputed work and eager twins from the code of the day. Upgraded on load: the header and
   footer come from ``env.json``, the facts from today's code (marked ``derived_by``).
2. A ``{"header": ...}`` first line (schema, environment, host fingerprint), ``"facts"`` in
   every record, a ``{"footer": ...}`` line when the run finished. Fields added since, each
   optional (older files load with it empty): ``process.host`` and ``process.slurm`` (a
   cluster's job), the footer's ``hosts``; ``why`` (memory with page faults, ops and in-place
   ops, what they write into new tensors, dispatch and fresh-page prices, the products,
   streams and fused chains timed after the cell) and ``compiler`` (graphs, graph breaks, compile split)
   in results; ``phases_s`` (the unit's wall seconds per phase); ``matmul_ladder`` in limits.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

SCHEMA_VERSION = 2
RAW = "raw.jsonl"
STATUSES = ("ok", "failed", "unsupported")


class ResultsError(Exception):
    """A result file that cannot be read or written: the message names the file (and line)."""


# --- what was measured -------------------------------------------------------------------------

@dataclass(frozen=True)
class CellSpec:
    """One measured unit's identity: a workload with fixed parameters in one mode, and every
    setting the measurement depends on."""

    workload: str
    params: dict
    mode: str
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    seed: int = 1
    iters: int | list = 10    # minimum timed samples; a list: one count per interleaved value
    warmup: int = 2
    min_time_s: float = 0.0   # and at least this much timed time per value
    gc: str = "on"
    data: Optional[str] = None
    repeat: int = 0
    options: dict = field(default_factory=dict)   # mode options, e.g. {"compile_mode": ...}
    job: str = "measure"                          # or "verify", "prepare"
    save: Optional[str] = None                    # verify/prepare: where to save arrays
    prepared: Optional[dict] = None               # the prepared start state this cell loads
    interleaved: Optional[dict] = None            # the sweep this cell's process ran round-robin
    why: bool = True                              # the why phase after the timed rounds
    extra_env: dict = field(default_factory=dict, compare=False)   # not stored: tests only

    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.workload} {params} [{self.mode}]"

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("extra_env")
        if out["interleaved"] is None:
            out.pop("interleaved")
        return out

    @classmethod
    def from_json(cls, data: dict) -> "CellSpec":
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
    observed: dict = field(default_factory=dict)   # values read after it (loss, pairs)
    step: int = 0           # steps the program had taken when ``observed`` was read

    def to_json(self) -> dict:
        return {"ns": self.ns, "calls": self.calls, "step": self.step,
                "gc_collections": self.gc_collections, "gc_ns": self.gc_ns, **self.observed}

    @classmethod
    def from_json(cls, data: dict) -> "Sample":
        if not isinstance(data, dict):
            raise ValueError(f"a sample is not a mapping: {data!r}"[:200])
        ns = _number(data.get("ns"), "a sample's ns")
        calls = _number(data.get("calls", 1), "a sample's calls")
        if ns < 0 or calls < 1:
            raise ValueError(f"a sample of {ns} ns over {calls} calls")
        known = {"ns", "calls", "step", "gc_collections", "gc_ns"}
        return cls(ns=ns, calls=int(calls), step=int(data.get("step") or 0),
                   gc_collections=int(data.get("gc_collections", 0)),
                   gc_ns=int(data.get("gc_ns", 0)),
                   observed={k: v for k, v in data.items() if k not in known})

    @property
    def ms_per_call(self) -> float:
        return self.ns / self.calls / 1e6


@dataclass
class Why:
    """What the why phase found of a cell, after its timed rounds (``--why``): its ops per
    call, their sizes, and what each kind of work costs in its process. A field not taken is
    None (or empty); ``explain`` turns them into the time decomposition."""

    ops: Optional[float] = None                 # framework ops dispatched per call
    ops_in_place: Optional[float] = None        # of those, ops that wrote into an input
    op_sizes: dict = field(default_factory=dict)       # str(elements) -> ops of that size
    fresh_outputs: dict = field(default_factory=dict)  # str(elements) -> ops into new tensors
    size_ns: Optional[dict] = None              # eager: ns per op at each priced size
    graph_op_ns: Optional[dict] = None          # a graph run op by op: ns per op at each size
    sized_from: Optional[int] = None            # the fewest elements a size is priced from
    dispatch_ns: Optional[float] = None         # one op (eager) or one launch (compiled)
    dispatch_ns_in_place: Optional[float] = None
    product: Optional[dict] = None              # {"side", "ns", "call_ns"}
    fused_adds: Optional[dict] = None           # {"elements", "adds", "ns"}
    launch_sized: Optional[dict] = None         # {"elements", "tensors", "ns"}
    stream_gbps: Optional[float] = None         # the framework's b += a at the cell's size
    fault_ns: dict = field(default_factory=dict)       # {"small", "huge"}: one fresh page
    memory: dict = field(default_factory=dict)  # rss, peaks, page faults per call, kernel share
    notes: list = field(default_factory=list)   # what could not be taken, and why

    @property
    def taken(self) -> bool:
        """Whether the why phase left anything (a run with ``--no-why`` leaves nothing)."""
        return self != Why()

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, {}, [])}

    @classmethod
    def from_json(cls, data: Optional[dict]) -> "Why":
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"a why record is not a mapping: {data!r}"[:200])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"a why record with unknown fields: {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if v is not None})


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
    phases_s: dict = field(default_factory=dict)  # the unit's wall seconds per phase (shared)
    wall_s: Optional[float] = None
    unit: int = 1                                 # cells measured together in the process
    gc_state: dict = field(default_factory=dict)
    threads_applied: dict = field(default_factory=dict)
    compile_cache: dict = field(default_factory=dict)
    device_name: str = ""
    donation: Optional[dict] = None
    info: dict = field(default_factory=dict)
    check: dict = field(default_factory=dict)
    warm_check: dict = field(default_factory=dict)   # ``check`` after the warm-up steps
    why: Why = field(default_factory=Why)         # the why phase's findings (``--why``)
    compiler: dict = field(default_factory=dict)  # graphs, graph breaks, compile split
    options: dict = field(default_factory=dict)
    data_source: Optional[str] = None
    versions: dict = field(default_factory=dict)
    process: dict = field(default_factory=dict)   # pid, start, cpus, allocator, position
    extra: dict = field(default_factory=dict)     # fields of a job other than measure

    def __post_init__(self) -> None:
        if isinstance(self.why, dict):   # a why record given as its JSON is typed here
            object.__setattr__(self, "why", Why.from_json(self.why))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def process_id(self) -> str:
        return f"{self.process.get('pid', '?')}@{self.process.get('started', '?')}"

    def to_json(self) -> dict:
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
    def from_json(cls, data: dict) -> "CellResult":
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
    views: tuple[dict, ...] = ()    # the workload's declared figures and tables (presentation)
    derived_by: str = "measurement"  # or "upgrade from schema 1" (today's code, on load)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "shown": list(self.shown), "views": list(self.views)}

    @classmethod
    def from_json(cls, data: dict) -> "Facts":
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

    def to_json(self) -> dict:
        out = {"cell": self.spec.to_json(), "result": self.result.to_json()}
        if self.facts is not None:
            out["facts"] = self.facts.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        facts = data.get("facts")
        return cls(CellSpec.from_json(data["cell"]), CellResult.from_json(data["result"]),
                   Facts.from_json(facts) if facts is not None else None)


# --- the run around the records ---------------------------------------------------------------

def host_fingerprint(env: dict) -> dict:
    """What identifies the hardware a run measured: CPU model, cores, memory, GPU and driver."""
    return {"cpu": env.get("cpu"), "cores": env.get("cpu_count"),
            "memory_gib": env.get("memory_gib"), "platform": env.get("platform"),
            "gpus": [{"name": g.get("name"), "driver": g.get("driver_version")}
                     for g in env.get("gpus") or []]}


@dataclass(frozen=True)
class RunHeader:
    """The first line of a run: schema, host fingerprint, and the environment at its start
    (versions, settings, the machine's measured limits)."""

    schema: int
    env: dict
    host: dict
    tool_version: str = ""

    def to_json(self) -> dict:
        return {"header": {"schema": self.schema, "eagerbench": self.tool_version,
                           "host": self.host, "env": self.env}}

    @classmethod
    def new(cls, env: dict) -> "RunHeader":
        from importlib import metadata

        try:
            version = metadata.version("eagerbench")
        except metadata.PackageNotFoundError:
            version = ""
        return cls(SCHEMA_VERSION, env, host_fingerprint(env), version)


@dataclass(frozen=True)
class Run:
    """A run as loaded: its header, its records in order, and its footer when it finished."""

    header: RunHeader
    records: tuple[Record, ...]
    footer: Optional[dict] = None
    path: Optional[Path] = None

    @property
    def finished(self) -> bool:
        return self.footer is not None

    def env(self) -> dict:
        """The environment with what the run learned by its end (limits probed again, wall
        time, contention after)."""
        return {**self.header.env, **(self.footer or {})}

    def latest(self) -> list[Record]:
        """Each measurement's last record: a cell rerun by ``--resume --rerun-failed``
        supersedes its failed record (which stays in the file)."""
        last: dict[str, int] = {}
        for i, rec in enumerate(self.records):
            last[_measurement_key(rec)] = i
        return [rec for i, rec in enumerate(self.records) if last[_measurement_key(rec)] == i]

    def host_of(self, rec: Record) -> dict:
        """The host a record was measured on: its own (a cluster's job) or the run's."""
        return rec.result.process.get("host") or self.header.host

    def hosts(self) -> list["Host"]:
        """The host types of the run's latest records, in order of first appearance, each
        with its records and the limits measured on it."""
        env = self.env()
        limits = {host_key(h.get("host") or {}): h.get("limits") for h in env.get("hosts") or []}
        groups: dict[str, Host] = {}
        records = self.latest()
        placed = [r for r in records if r.result.process.get("host")] or records
        for rec in placed:
            host = self.host_of(rec)
            key = host_key(host)
            if key not in groups:
                groups[key] = Host(key, host, limits.get(key) or (
                    env.get("limits") if not limits else None), [])
            groups[key].records.append(rec)
        first = next(iter(groups.values()), None)
        for rec in records:   # a cluster's job that never started says no host: its failure
            if first is not None and rec not in placed:   # is kept with the first host
                first.records.append(rec)
        return list(groups.values())


def host_key(host: dict) -> str:
    """Which machines count as one host type: the CPU model, the GPU models and their driver.
    Ratios are only ever taken between cells measured on one host type."""
    import hashlib

    gpus = sorted((g.get("name") or "", g.get("driver") or "") for g in host.get("gpus") or [])
    text = json.dumps({"cpu": host.get("cpu"), "gpus": gpus}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def host_label(host: dict) -> str:
    """A host type in words: 'CPU model' or 'CPU model + 4x GPU model (driver D)'."""
    gpus: dict[str, int] = {}
    for g in host.get("gpus") or []:
        name = f"{g.get('name')} (driver {g.get('driver')})"
        gpus[name] = gpus.get(name, 0) + 1
    parts = [str(host.get("cpu") or "unknown CPU")]
    parts += [f"{n}x {name}" if n > 1 else name for name, n in gpus.items()]
    return " + ".join(parts)


@dataclass
class Host:
    """One host type of a run: its fingerprint, limits and records."""

    key: str
    host: dict
    limits: Optional[dict]
    records: list[Record]


def _measurement_key(rec: Record) -> str:
    return rec.spec.identity()


# --- reading -----------------------------------------------------------------------------------

def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, whether it ended with a newline) of each non-empty line."""
    with open(path, encoding="utf-8", errors="strict") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line, line.endswith("\n")


def load(where: Path | str, derive_facts=None) -> Run:
    """A run folder's (or a ``raw.jsonl``'s) run, upgraded to this schema. A schema-1 run's
    facts are derived by ``derive_facts(spec, result)`` from today's code (``facts.load``
    passes it; this layer knows no workload or mode).

    Raises ``ResultsError`` naming the file and line for a file that is missing, not JSON,
    truncated, not eagerbench's, or written by a newer schema."""
    path = Path(where)
    if path.is_dir():
        path = path / RAW
    try:
        lines = list(_lines(path))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file (not an eagerbench run)") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not text (not an eagerbench raw.jsonl)") from None
    except OSError as exc:
        raise ResultsError(f"{path}: {exc.strerror}") from None
    if not lines:
        raise ResultsError(f"{path}: empty (no header and no record)")
    parsed = [_parse(path, number, text, complete) for number, text, complete in lines]
    first_number, first = parsed[0]
    if "header" in first:
        return _load_v2(path, parsed)
    if "cell" in first and "result" in first:
        return upgrade_v1(path, parsed, derive_facts)
    raise ResultsError(f"{path}:{first_number}: not an eagerbench raw.jsonl (its first line is "
                       f"neither a run header nor a record)")


def _parse(path: Path, number: int, text: str, complete: bool) -> tuple[int, dict]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        if not complete:
            raise ResultsError(f"{path}:{number}: truncated record (the run was killed while "
                               f"writing it); `eagerbench run --resume` finishes the run") from None
        raise ResultsError(f"{path}:{number}: not JSON (a corrupt file)") from None
    if not isinstance(value, dict):
        raise ResultsError(f"{path}:{number}: not an eagerbench record")
    return number, value


def _header(path: Path, number: int, data: dict) -> RunHeader:
    header = data["header"]
    schema = header.get("schema") if isinstance(header, dict) else None
    if not isinstance(schema, int):
        raise ResultsError(f"{path}:{number}: a header without a schema version")
    if schema > SCHEMA_VERSION:
        raise ResultsError(f"{path}:{number}: written with result schema {schema}; this "
                           f"eagerbench reads schemas up to {SCHEMA_VERSION} (upgrade eagerbench)")
    return RunHeader(schema, header.get("env") or {}, header.get("host") or {},
                     header.get("eagerbench") or "")


def _record(path: Path, number: int, data: dict, upgrade=None) -> Record:
    if "cell" not in data or "result" not in data:
        raise ResultsError(f"{path}:{number}: not an eagerbench record (no cell or result)")
    try:
        rec = Record.from_json(data)
        if rec.facts is None and upgrade is not None and rec.spec.job == "measure":
            rec = dataclasses.replace(rec, facts=upgrade(rec))
    except (ValueError, TypeError, KeyError) as exc:
        raise ResultsError(f"{path}:{number}: {exc}") from None
    return rec


def _load_v2(path: Path, parsed: list[tuple[int, dict]]) -> Run:
    number, first = parsed[0]
    header = _header(path, number, first)
    records, footer = [], None
    for number, data in parsed[1:]:
        if "header" in data:
            raise ResultsError(f"{path}:{number}: a second run header (two runs in one file)")
        if "footer" in data:
            footer = data["footer"] if isinstance(data["footer"], dict) else {}
            continue
        records.append(_record(path, number, data))
    return Run(header, tuple(records), footer, path)


def upgrade_v1(path: Path, parsed: list[tuple[int, dict]], derive_facts=None) -> Run:
    """A schema-1 run: its environment from ``env.json`` beside it, its facts from today's
    workload and mode code (recorded as such)."""
    if derive_facts is None:
        raise ResultsError(f"{path}: a schema-1 run; read it with eagerbench.facts.load, which "
                           f"derives its facts from today's workloads and modes")
    env_path = path.parent / "env.json"
    try:
        env = json.loads(env_path.read_text()) if env_path.exists() else {}
    except (OSError, json.JSONDecodeError):
        raise ResultsError(f"{env_path}: not JSON (a corrupt file)") from None

    def derive(rec: Record) -> Facts:
        try:
            return dataclasses.replace(derive_facts(rec.spec, rec.result),
                                       derived_by="upgrade from schema 1")
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]} (a schema-1 record is read with today's "
                             f"workloads and modes)") from None

    records = tuple(_record(path, number, data, derive) for number, data in parsed)
    footer_keys = ("run_wall_s", "limits", "contention", "data_source")
    footer = {k: env[k] for k in footer_keys if k in env} if "run_wall_s" in env else None
    header = RunHeader(1, {k: v for k, v in env.items() if k != "run_wall_s"},
                       host_fingerprint(env))
    return Run(header, records, footer, path)


# --- writing -----------------------------------------------------------------------------------

class RunWriter:
    """Appends a run's lines to ``raw.jsonl``, each flushed to disk as it lands, so that a killed
    run keeps every finished record. A write that fails (a full disk) raises ``ResultsError``
    naming the file; what was written before stays."""

    def __init__(self, path: Path, header: Optional[RunHeader] = None):
        self.path = Path(path)
        try:
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise ResultsError(f"{self.path}: {exc.strerror}") from None
        if header is not None:
            self._line(header.to_json())

    def _line(self, obj: dict) -> None:
        import os

        try:
            self._file.write(json.dumps(obj) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise ResultsError(f"{self.path}: cannot write ({exc.strerror}); the records "
                               f"before this one are kept") from None

    def record(self, rec: Record) -> None:
        self._line(rec.to_json())

    def footer(self, footer: dict) -> None:
        self._line({"footer": footer})

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
