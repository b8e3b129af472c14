"""Where cells are measured: the executors.

An executor takes the runner's batches (each a list of cells that share one worker process) and
yields ``(cell, result)`` as each cell lands, wherever it ran; the runner types the results and
writes them to the run's store, so that every executor's records are alike. ``local`` (the
default) starts the workers on this machine, ``slurm`` submits them to a Slurm cluster through
submitit, one exclusive-node job per worker process.

A new executor is one module with a class like ``LocalExecutor`` plus one line in ``EXECUTORS``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Generator, Optional, Protocol

from eagerbench.execute.venvs import EnvironmentSet
from eagerbench.frameworks.modes import get_mode
from eagerbench.records.model import CellResult, CellSpec
from eagerbench.records.protocol import Progress

EXECUTORS = {"local": "eagerbench.execute.local:LocalExecutor",
             "slurm": "eagerbench.execute.slurm:SlurmExecutor"}

Results = tuple[CellResult, ...]   # a cell's results: one per value of an interleaved sweep


def batch_key(cell: CellSpec) -> tuple:
    """Cells with the same key may share a worker process: one framework, one repeat, the same
    process-wide settings (threads, allocator, environment, the why phase)."""
    return (get_mode(cell.mode).framework, cell.repeat, cell.device, cell.dtype, cell.threads,
            cell.gc, json.dumps(cell.extra_env, sort_keys=True), cell.job,
            json.dumps(cell.options.get("allocator"), sort_keys=True), cell.why,
            cell.options.get("env"))


class Monitor(Protocol):
    """What an executor tells the person watching (the runner's progress bar)."""

    def starting(self, cell: CellSpec) -> None: ...       # a worker began this cell
    def phase(self, message: Progress) -> None: ...       # a worker's phase ("warm-up 2/3")
    def jobs(self, counts: dict[str, int]) -> None: ...   # {"queued": n, "running": n, "done": n}
    def say(self, line: str) -> None: ...                 # one line above the bar


class Executor(Protocol):
    """Where a run's cells are measured (``LocalExecutor``, ``SlurmExecutor``)."""

    name: str

    def settings(self) -> dict:
        """What a run's header records about where it ran (``--resume`` rebuilds from it)."""
        ...

    def at(self, folder: Path, environments: EnvironmentSet) -> "Executor":
        """This executor for one run: what it keeps (job files) under the run's ``folder``,
        and the ``--env`` environments prepared for its cells."""
        ...

    def run_one(self, cell: CellSpec, timeout: float) -> CellResult:
        """One job (a start state, a verify cell) in a fresh worker; its result."""
        ...

    def run_batches(self, batches: list[list[CellSpec]], timeout: float,
                    progress: Monitor) -> Generator[tuple[CellSpec, Results], None, None]:
        """Every cell of every batch with its worker's results, as each lands. Closing the
        iterator early (an interrupt, a failed write) stops every worker it started."""
        ...

    def hosts(self) -> list[dict]:
        """The host types its jobs measured on, each with its limits ([] for this machine)."""
        ...


def hosts_footer(executor: Executor) -> dict:
    """For a run's footer: the host types an executor's jobs measured on, each with the limits
    measured there (and those limits as the run's own when there was one host type)."""
    hosts = executor.hosts()
    if not hosts:
        return {}
    footer = {"hosts": hosts}
    if len(hosts) == 1:
        footer["limits"] = hosts[0]["limits"]
    return footer


def create(name: str, **options: object) -> Executor:
    """The executor called ``name`` with its options (a ``ValueError`` names a bad one)."""
    import importlib

    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


def from_settings(settings: Optional[dict]) -> Executor:
    """The executor a run's header describes (runs before executors existed ran locally)."""
    settings = dict(settings or {"name": "local"})
    return create(settings.pop("name"), **settings)

