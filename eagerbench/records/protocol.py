"""The messages between the runner and a worker process: typed, versioned, one JSON object a
line. The runner writes one ``Job`` to the worker's stdin; the worker answers on its stdout
with a ``Hello``, then a ``Start`` per unit, ``Progress`` as it goes, and a ``Result`` per cell.
Only this module knows the wire's layout; a message of another version, or of an unknown
type, is a ``ProtocolError`` with one line that says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Union

from eagerbench.records.model import CellResult, CellSpec

PROTOCOL_VERSION = 4   # 4: typed messages; a result carries one CellResult per variant


class ProtocolError(Exception):
    """A message this side cannot read: another version, or not a message at all."""


@dataclass(frozen=True)
class Job:
    """What a worker is asked to do: measure cells, or run other jobs (verify, prepare)."""

    kind: str
    cells: tuple[CellSpec, ...]


@dataclass(frozen=True)
class Hello:
    """The worker is up: its pid and the version it speaks."""

    pid: int
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Start:
    """The worker begins the unit of these cells (positions in the job)."""

    indices: tuple[int, ...]


@dataclass(frozen=True)
class Progress:
    """How far the unit in progress is through a phase."""

    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class Result:
    """A cell's result: one per value of an interleaved sweep, one otherwise."""

    index: int
    results: tuple[CellResult, ...]


Message = Union[Job, Hello, Start, Progress, Result]


def encode(message: Message) -> str:
    """One line of JSON."""
    body: dict[str, Any]
    if isinstance(message, Job):
        body = {"kind": message.kind, "cells": [c.to_json() for c in message.cells]}
    elif isinstance(message, Hello):
        body = {"pid": message.pid}
    elif isinstance(message, Start):
        body = {"indices": list(message.indices)}
    elif isinstance(message, Progress):
        body = {"phase": message.phase, "done": message.done, "total": message.total}
    elif isinstance(message, Result):
        body = {"index": message.index, "results": [r.to_json() for r in message.results]}
    else:
        raise TypeError(f"not a message: {message!r}")
    return json.dumps({"type": type(message).__name__.lower(), "protocol": PROTOCOL_VERSION,
                       **body})


def decode(line: str) -> Message:
    """The message on ``line``; a ``ProtocolError`` for another version or a malformed one."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        raise ProtocolError(f"not a message: {line[:120]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"not a message: {line[:120]!r}")
    version = data.get("protocol")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"the other side speaks protocol {version}, this one "
                            f"{PROTOCOL_VERSION} (a stale install?)")
    kind = data.get("type")
    try:
        if kind == "job":
            return Job(data["kind"], tuple(CellSpec.from_json(c) for c in data["cells"]))
        if kind == "hello":
            return Hello(int(data["pid"]))
        if kind == "start":
            return Start(tuple(int(i) for i in data["indices"]))
        if kind == "progress":
            return Progress(str(data["phase"]), int(data["done"]), int(data["total"]))
        if kind == "result":
            return Result(int(data["index"]),
                          tuple(CellResult.from_json(r) for r in data["results"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"a malformed {kind} message: {exc}") from None
    raise ProtocolError(f"an unknown message type {kind!r}")
