"""What a workload's part of a report shows, declared by the workload (no report code knows a
workload by name). Each declaration is a generic figure or table type; ``views`` draws them.

Declarations are stored with every measured cell (``records.model.Facts``), so an old run draws the
figures it was measured with. Parameters are named as the workload names them (``"batch"``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union


@dataclass(frozen=True)
class Sweep:
    """A cell statistic against a parameter, one line per mode, from the cells table."""

    x: str                          # the parameter on the x axis
    y: str = "median_ms"            # a cells column: median_ms, gflops, us_per_op, compile_ms
    ylabel: str = "median ms per call"
    title: str = ""
    lines: Optional[str] = None     # a second parameter: one line style per value
    panels: Optional[str] = None    # a parameter: one panel per value
    log_x: bool = True
    log_y: bool = True
    quartiles: bool = False         # error bars to the samples' quartiles (for median_ms)
    crossover: bool = False         # mark where y first reaches twice its value at the smallest x
    file: str = ""


@dataclass(frozen=True)
class Series:
    """A per-sample value over a process's life, one line per mode, from the iterations table
    (the first repeat): time per call, or an observed value such as the loss."""

    y: str = "ms"                   # "ms" per call, or an observed value ("loss")
    x: str = "iteration"            # or "wall_s": seconds since the first call, compile included
    warmup: bool = False            # include the warm-up calls
    colour: Optional[str] = None    # a parameter: one colour per value, modes as line styles
    panels: tuple[str, ...] = ()    # parameters: one panel per combination of their values
    log_x: bool = False
    log_y: bool = False
    marks: bool = False             # circle samples a GC ran in, cross spikes
    ylabel: str = ""
    title: str = ""
    file: str = ""


@dataclass(frozen=True)
class Bars:
    """A cell statistic as bars, one per mode, grouped by a parameter's values (or by the whole
    parameter set)."""

    y: str = "median_ms"
    groups: str = "params"          # a parameter, or "params"
    ylabel: str = "median ms per call"
    title: str = ""
    log_y: bool = True
    file: str = ""


@dataclass(frozen=True)
class Pivot:
    """A table: one row per value of a parameter, one column per mode; one table per setting of
    the other parameters. ``value`` is a cells column, or ``final_loss`` / ``final_loss_and_time``
    (the loss after the last call, and the seconds all calls took, from the iterations)."""

    index: str
    value: str = "median_ms"
    fmt: str = ".3g"
    title: str = ""
    text: str = ""


@dataclass(frozen=True)
class Columns:
    """A table of chosen cells columns, one row per cell."""

    columns: tuple[str, ...]
    title: str = ""
    text: str = ""


KINDS: dict[str, type[Declaration]] = {
    cls.__name__: cls for cls in (Sweep, Series, Bars, Pivot, Columns)}


Declaration = Union[Sweep, Series, Bars, Pivot, Columns]


def to_json(declaration: Declaration) -> dict[str, Any]:
    return {"type": type(declaration).__name__, **dataclasses.asdict(declaration)}


def from_json(data: dict[str, Any]) -> Declaration:
    """A declaration from its JSON (unknown fields of a newer eagerbench are ignored)."""
    kind = KINDS.get(str(data.get("type")))
    if kind is None:
        raise ValueError(f"unknown figure or table type {data.get('type')!r}")
    names = {f.name for f in dataclasses.fields(kind)}
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in data.items() if k in names}
    return kind(**values)
