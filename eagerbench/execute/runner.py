"""Runs a grid of cells on an executor and appends each record as it lands.

Modelled on pyperf's master/worker split: the runner never imports a framework. Cells go to
the executor in batches of one framework, one workload and one repeat (``batches``): a process
start and a framework import cost 1 to 4 s, more than many cells take to measure. Each result
becomes a typed record (``to_records``), written and flushed the moment it lands.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from typing import Iterable

from tqdm import tqdm

from eagerbench.execute.executors import Executor, Results, batch_key
from eagerbench.frameworks import facts
from eagerbench.plan import estimate
from eagerbench.records import protocol
from eagerbench.records.model import CellSpec, Record
from eagerbench.records.runfile import RunWriter

# What the runner is asked to measure is the result model's cell identity.
Cell = CellSpec


def variant_specs(cell: CellSpec) -> list[CellSpec]:
    """The specs of the records a measured cell becomes: one per parameter set, a sweep that
    was interleaved in one process split by value, each saying what it shared its process with."""
    from workloads import get_workload

    workload = get_workload(cell.workload)
    name = workload.interleave
    if cell.job != "measure" or name is None or not workload.sweeps(cell.params):
        return [cell]
    return [replace(cell, params=params, interleaved={name: cell.params[name]},
                    iters=cell.iters[i] if isinstance(cell.iters, list) else cell.iters)
            for i, params in enumerate(workload.variants(cell.params))]


def to_records(cell: CellSpec, results: Results) -> list[Record]:
    """A cell's results as records (see ``variant_specs``), each carrying its facts, derived
    now from today's code. A cell that failed as a whole has one result for all its values."""
    if cell.job != "measure":
        return [Record(cell, results[0])]
    specs = variant_specs(cell)
    if len(results) == 1 and len(specs) > 1 and not results[0].ok:
        results = results * len(specs)   # a sweep that failed as one: each value says why
    if len(results) != len(specs):
        raise ValueError(f"{cell.label()}: {len(results)} results for {len(specs)} values")
    return [Record(spec, result, facts.derive(spec, result))
            for spec, result in zip(specs, results)]


def batches(cells: list[Cell]) -> list[list[Cell]]:
    """Consecutive cells with the same ``batch_key``, each list one worker process."""
    out: list[list[Cell]] = []
    for cell in cells:
        if out and batch_key(out[-1][-1]) == batch_key(cell):
            out[-1].append(cell)
        else:
            out.append([cell])
    return out


class BarMonitor:
    """The runner's progress bar, as executors report to it (``executors.Monitor``)."""

    def __init__(self, bar: tqdm):
        self.bar = bar
        self.counts: dict[str, int] = {}

    def starting(self, cell: Cell) -> None:
        self.bar.set_description_str(cell.label())
        self.bar.set_postfix_str(self._jobs())

    def phase(self, message: protocol.Progress) -> None:
        self.bar.set_postfix_str(f"{message.phase} {message.done}/{message.total}",
                                 refresh=True)

    def jobs(self, counts: dict[str, int]) -> None:
        if counts != self.counts:
            self.counts = dict(counts)
            self.bar.set_postfix_str(self._jobs(), refresh=True)

    def _jobs(self) -> str:
        if not self.counts:
            return ""
        return "jobs: " + ", ".join(f"{n} {state}" for state, n in self.counts.items())

    def say(self, line: str) -> None:
        self.bar.write(line, file=sys.stderr)   # beside the bar, not in the tables


def run_cells(cells: Iterable[Cell], writer: RunWriter, timeout: float,
              executor: Executor, progress: bool = True) -> list[Record]:
    """Hand planned cells (their start states and environments prepared) to ``executor`` once,
    in batches that share a worker, and write each record (flushed to disk) as it lands."""
    cells = list(cells)
    records: list[Record] = []
    seconds = estimate.expected(cells, estimate.landing_times())
    expected = dict(zip(map(estimate.key, cells), seconds))   # a cell's repeats share a key
    started = time.perf_counter()
    bar = EstimatedBar(estimate.Remaining(seconds), total=len(cells),
                       unit="cell", file=sys.stderr, disable=not progress, dynamic_ncols=True,
                       bar_format="{l_bar}{bar:20}| {n_fmt}/{total_fmt} cells [{elapsed}, "
                                  "about {left} left]{postfix}")
    took: dict[str, float] = {}
    with bar:
        shown = BarMonitor(bar)
        last = time.perf_counter() - started
        # closing: a failed write or an interrupt stops every worker (or job) now
        with contextlib.closing(executor.run_batches(batches(cells), timeout, shown)) as landed:
            for cell, results in landed:
                for record in to_records(cell, results):
                    writer.record(record)
                    records.append(record)
                if not results[0].ok:
                    shown.say(f"eagerbench: {cell.label()} {results[0].status}: "
                              f"{results[0].reason}")
                now = time.perf_counter() - started
                took[estimate.key(cell)] = now - last
                last = now
                bar.remaining.landed(expected.get(estimate.key(cell), 0.0), now)
                bar.update(1)
    estimate.remember(took)
    return records


class EstimatedBar(tqdm):
    """A tqdm bar whose time left comes from each cell's expected seconds (``estimate``), so
    it has an estimate from the start, not only once cells have landed."""

    def __init__(self, remaining: estimate.Remaining, *args, **kwargs):
        self.remaining = remaining
        super().__init__(*args, **kwargs)

    def elapsed_s(self) -> float:
        return self._time() - self.start_t if hasattr(self, "start_t") else 0.0  # type: ignore[attr-defined]

    @property
    def format_dict(self):
        values = super().format_dict
        values["left"] = tqdm.format_interval(self.remaining.left(self.elapsed_s()))
        return values
