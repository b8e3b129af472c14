"""Where cells are measured: the executors.

An executor takes the runner's batches (each a list of cells that share one worker process) and
yields ``(cell, result)`` as each cell lands, wherever it ran; the runner types the results and
writes them to the run's store, so that every executor's records are alike. ``local`` (the
default) starts the workers on this machine, ``slurm`` submits them to a Slurm cluster through
submitit, one exclusive-node job per worker process.

A new executor is one module with a class like ``LocalExecutor`` plus one line in ``EXECUTORS``.
"""

from __future__ import annotations

from typing import Iterator, Protocol

from eagerbench.records.model import CellSpec

EXECUTORS = {"local": "eagerbench.execute.local:LocalExecutor",
             "slurm": "eagerbench.execute.slurm:SlurmExecutor"}


class Progress(Protocol):
    """What an executor tells the person watching (the runner's progress bar)."""

    def starting(self, cell: CellSpec) -> None: ...       # a worker began this cell
    def phase(self, message: dict) -> None: ...           # a worker's phase ("warm-up 2/3")
    def jobs(self, counts: dict[str, int]) -> None: ...   # {"queued": n, "running": n, "done": n}
    def say(self, line: str) -> None: ...                 # one line above the bar


class Executor(Protocol):
    name: str

    def settings(self) -> dict:
        """What a run's header records about where it ran (``--resume`` rebuilds from it)."""

    def at(self, folder) -> "Executor":
        """This executor, keeping what it needs (job files) under the run's ``folder``."""

    def run_one(self, cell: CellSpec, timeout: float) -> dict:
        """One job (a prepared state, a verify cell) in a fresh worker; its result."""

    def measure(self, batches: list[list[CellSpec]], timeout: float,
                progress: Progress) -> Iterator[tuple[CellSpec, dict]]:
        """Every cell of every batch with its worker's result, as each lands. Closing the
        iterator early (an interrupt, a failed write) stops every worker it started."""


def hosts_footer(executor) -> dict:
    """For a run's footer: the host types an executor's jobs measured on, each with the limits
    measured there (and those limits as the run's own when there was one host type)."""
    hosts = executor.hosts() if hasattr(executor, "hosts") else []
    if not hosts:
        return {}
    footer = {"hosts": hosts}
    if len(hosts) == 1:
        footer["limits"] = hosts[0]["limits"]
    return footer


def create(name: str, **options) -> Executor:
    """The executor called ``name`` with its options (a ``ValueError`` names a bad one)."""
    import importlib

    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


def from_settings(settings: dict | None) -> Executor:
    """The executor a run's header describes (runs before executors existed ran locally)."""
    settings = dict(settings or {"name": "local"})
    return create(settings.pop("name"), **settings)

