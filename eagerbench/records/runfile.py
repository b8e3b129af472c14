"""The run file: a run's records in ``raw.jsonl``, the only code that knows its layout.

A run is one ``raw.jsonl``: a header line, then one line per cell measured in one process, then
a footer line once the run has finished (a resumed run may append more records and a second
footer; the last footer counts). Modelled on pyperf's ``_bench.py`` (immutable runs, a JSON
format versioned with a comment per version). Each record (``model``) carries the ``Facts`` a
report needs from the code of the day (the mode's label and eager twin, the work one call
does), stored when the cell is measured so that an old run reports the same way forever.

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
   streams and fused chains timed after the cell) and ``compiler`` (graphs, graph breaks,
   compile split) in results; ``phases_s`` (the unit's wall seconds per phase);
   ``matmul_ladder`` in limits.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from eagerbench.records import host as hosts
from eagerbench.records.model import CellResult, CellSpec, Facts, Record

SCHEMA_VERSION = 2
RAW = "raw.jsonl"


# today's code's facts of a record that has none (a schema-1 run's): frameworks.facts.derive
DeriveFacts = Callable[[CellSpec, CellResult], Facts]


class ResultsError(Exception):
    """A result file that cannot be read or written: the message names the file (and line)."""


# --- the run around the records ---------------------------------------------------------------

@dataclass(frozen=True)
class RunHeader:
    """The first line of a run: schema, host fingerprint, and the environment at its start
    (versions, settings, the machine's measured limits)."""

    schema: int
    env: dict[str, Any]
    host: dict[str, Any]
    tool_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"header": {"schema": self.schema, "eagerbench": self.tool_version,
                           "host": self.host, "env": self.env}}

    @classmethod
    def new(cls, env: dict[str, Any]) -> "RunHeader":
        from importlib import metadata

        try:
            version = metadata.version("eagerbench")
        except metadata.PackageNotFoundError:
            version = ""
        return cls(SCHEMA_VERSION, env, hosts.fingerprint(env), version)


@dataclass(frozen=True)
class Run:
    """A run as loaded: its header, its records in order, and its footer when it finished."""

    header: RunHeader
    records: tuple[Record, ...]
    footer: Optional[dict[str, Any]] = None
    path: Optional[Path] = None

    @property
    def finished(self) -> bool:
        return self.footer is not None

    def env(self) -> dict[str, Any]:
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

    def host_of(self, rec: Record) -> dict[str, Any]:
        """The host a record was measured on: its own (a cluster's job) or the run's."""
        return rec.result.process.get("host") or self.header.host

    def hosts(self) -> list["Host"]:
        """The host types of the run's latest records, in order of first appearance, each
        with its records and the limits measured on it."""
        env = self.env()
        limits = {hosts.key(h.get("host") or {}): h.get("limits") for h in env.get("hosts") or []}
        groups: dict[str, Host] = {}
        records = self.latest()
        placed = [r for r in records if r.result.process.get("host")] or records
        for rec in placed:
            host = self.host_of(rec)
            key = hosts.key(host)
            if key not in groups:
                groups[key] = Host(key, host, limits.get(key) or (
                    env.get("limits") if not limits else None), [])
            groups[key].records.append(rec)
        first = next(iter(groups.values()), None)
        for rec in records:   # a cluster's job that never started says no host: its failure
            if first is not None and rec not in placed:   # is kept with the first host
                first.records.append(rec)
        return list(groups.values())


@dataclass
class Host:
    """One host type of a run: its fingerprint, limits and records."""

    key: str
    host: dict[str, Any]
    limits: Optional[dict[str, Any]]
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


def read(where: Path | str, derive_facts: Optional[DeriveFacts] = None) -> Run:
    """A run folder's (or a ``raw.jsonl``'s) run, upgraded to this schema. A schema-1 run's
    facts are derived by ``derive_facts(spec, result)`` from today's code
    (``frameworks.facts.open_run`` passes it; this layer knows no workload or mode).

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


def _parse(path: Path, number: int, text: str, complete: bool) -> tuple[int, dict[str, Any]]:
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


def _header(path: Path, number: int, data: dict[str, Any]) -> RunHeader:
    header = data["header"]
    schema = header.get("schema") if isinstance(header, dict) else None
    if not isinstance(schema, int):
        raise ResultsError(f"{path}:{number}: a header without a schema version")
    if schema > SCHEMA_VERSION:
        raise ResultsError(f"{path}:{number}: written with result schema {schema}; this "
                           f"eagerbench reads schemas up to {SCHEMA_VERSION} (upgrade eagerbench)")
    return RunHeader(schema, header.get("env") or {}, header.get("host") or {},
                     header.get("eagerbench") or "")


def _record(path: Path, number: int, data: dict[str, Any],
            upgrade: Optional[Callable[[Record], Facts]] = None) -> Record:
    if "cell" not in data or "result" not in data:
        raise ResultsError(f"{path}:{number}: not an eagerbench record (no cell or result)")
    try:
        rec = Record.from_json(data)
        if rec.facts is None and upgrade is not None and rec.spec.job == "measure":
            rec = dataclasses.replace(rec, facts=upgrade(rec))
    except (ValueError, TypeError, KeyError) as exc:
        raise ResultsError(f"{path}:{number}: {exc}") from None
    return rec


def _load_v2(path: Path, parsed: list[tuple[int, dict[str, Any]]]) -> Run:
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


def upgrade_v1(path: Path, parsed: list[tuple[int, dict[str, Any]]],
               derive_facts: Optional[DeriveFacts] = None) -> Run:
    """A schema-1 run: its environment from ``env.json`` beside it, its facts from today's
    workload and mode code (recorded as such)."""
    if derive_facts is None:
        raise ResultsError(f"{path}: a schema-1 run; read it with "
                           f"eagerbench.frameworks.facts.open_run, which derives its facts "
                           f"from today's workloads and modes")
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
                       hosts.fingerprint(env))
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

    def _line(self, obj: dict[str, Any]) -> None:
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

    def footer(self, footer: dict[str, Any]) -> None:
        self._line({"footer": footer})

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
