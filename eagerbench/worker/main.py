"""Measures a batch of cells of one framework in one process: ``python -m eagerbench.worker``.

The runner starts one worker per framework and repeat (and setting) and writes it one
``protocol.Job``: never two frameworks in one process, threads set before the framework
initialises, no fork after CUDA. The cells run unit by unit (the modes of one parameter set
together, ``cellsetup.units``), each from freshly built data with the framework's compiled
graphs and caches reset after it, after one warm-up of each mode's compiler for the whole
process. The worker answers in ``protocol`` messages on the stdout it was started with;
anything the frameworks print goes to stderr.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from dataclasses import replace
from typing import Optional

from eagerbench.records import protocol
from eagerbench.records.host import allocator_settings
from eagerbench.records.model import CellResult, CellSpec, ProcessInfo
from eagerbench.worker.cellsetup import entry_for, units, warm_up_compiler
from eagerbench.worker.failures import one_line
from eagerbench.worker.jobs import JOBS
from eagerbench.worker.loop import Channel, Settings, measure_unit
from eagerbench.worker.process import cold_compile_cache, die_with_runner, pin_cpus


class Pipe:
    """Protocol messages to the runner on a private copy of stdout (a ``loop.Channel``)."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)   # frameworks that print to fd 1 now print to stderr
        sys.stdout = sys.stderr

    def send(self, message: protocol.Message) -> None:
        self._out.write(protocol.encode(message) + "\n")

    def progress(self, phase: str, done: int, total: int) -> None:
        self.send(protocol.Progress(phase, done, total))


def measure_cells(specs: list[CellSpec], channel: Channel) -> list[list[CellResult]]:
    """One unit: every cell's backend and data, measured together; per cell, one result per
    value of its sweep."""
    from eagerbench.worker.why.observer import WhyObserver

    started = time.perf_counter()
    entries, extras = [], []
    try:
        for spec in specs:
            entry, extra = entry_for(spec)
            entries.append(entry)
            extras.append(extra)
        settings = Settings(max(s.warmup for s in specs), max(s.min_time_s for s in specs),
                            specs[0].gc)
        observer = WhyObserver(entries) if all(s.why for s in specs) else None
        with cold_compile_cache() as cold:
            results = [replace(r, compile_cache={**r.compile_cache, "cold_unit": int(cold)})
                       for r in measure_unit(entries, settings, channel, observer)]
    finally:
        for entry in entries:
            entry.backend.reset()
    seconds = (time.perf_counter() - started) / len(specs)
    out, position = [], 0
    for entry, extra in zip(entries, extras):
        count = len(entry.workload.variants(entry.params))
        out.append([replace(r, cell_s=seconds, **extra)
                    for r in results[position:position + count]])
        position += count
    return out


def failure(exc: BaseException) -> CellResult:
    """A cell that could not be measured, as data: unsupported by its mode, or failed."""
    from eagerbench.workload import Unsupported

    if isinstance(exc, Unsupported):
        return CellResult("unsupported", reason=str(exc))
    traceback.print_exc()
    return CellResult("failed", reason=one_line(exc))


def measure_or_isolate(specs: list[CellSpec], channel: Channel) -> list[list[CellResult]]:
    """A unit's results; when it fails, each of its cells alone, so that one mode that cannot
    run (a step CUDA graphs cannot capture) costs only its own cell."""
    try:
        return measure_cells(specs, channel)
    except Exception as exc:  # noqa: BLE001 - a cell's failure is data, reported upward
        if len(specs) == 1:
            return [[failure(exc)]]
    out = []
    for spec in specs:
        try:
            out += measure_cells([spec], channel)
        except Exception as exc:  # noqa: BLE001
            out.append([failure(exc)])
    return out


def warm_up_compilers(cells: list[CellSpec]) -> dict[str, Optional[float]]:
    """One compiler warm-up per mode, before any cell: seconds each took (None: it failed,
    and the cell itself will say what is wrong)."""
    seconds: dict[str, Optional[float]] = {}
    for spec in cells:
        if spec.mode not in seconds:
            try:
                seconds[spec.mode] = warm_up_compiler(spec)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                seconds[spec.mode] = None
    return seconds


def run_measure(cells: list[CellSpec], channel: Pipe) -> int:
    """Measure every cell of the job, unit by unit, one ``Result`` per cell."""
    cpus = pin_cpus(cells[0].threads)
    process = ProcessInfo(pid=os.getpid(), started=time.time(), cpus=cpus,
                          compiler_warmup_s=warm_up_compilers(cells),
                          allocator=allocator_settings())
    failed = 0
    for unit in units(cells):
        channel.send(protocol.Start(tuple(unit)))
        _inject_fault(unit)
        measured = measure_or_isolate([cells[i] for i in unit], channel)
        gc.collect()
        for index, results in zip(unit, measured):
            failed += any(r.status == "failed" for r in results)
            channel.send(protocol.Result(index, tuple(
                replace(r, process=ProcessInfo(**process, position=index)) for r in results)))
    return 1 if failed else 0


def run_jobs(cells: list[CellSpec], channel: Pipe) -> int:
    """Run other jobs (verify, prepare) one after another in this process: a ``Result``
    each, a failure reported as data."""
    failed = 0
    for index, spec in enumerate(cells):
        channel.send(protocol.Start((index,)))
        try:
            result = JOBS[spec.job](spec, channel)
        except Exception as exc:  # noqa: BLE001 - a job's failure is data, reported upward
            result = failure(exc)
        failed += result.status == "failed"
        channel.send(protocol.Result(index, (result,)))
    return 1 if failed else 0


def _inject_fault(unit: list[int]) -> None:
    """Fault injection for the tests: ``EAGERBENCH_KILL_AT=i`` kills this worker with SIGKILL
    (as the kernel's out-of-memory killer does) when it starts the cell at batch position i."""
    at = os.environ.get("EAGERBENCH_KILL_AT")
    if at is not None and int(at) in unit:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    die_with_runner()
    channel = Pipe()
    channel.send(protocol.Hello(os.getpid()))
    try:
        job = protocol.decode(sys.stdin.read())
    except protocol.ProtocolError as exc:
        print(f"eagerbench worker: {exc}", file=sys.stderr)
        return 2
    if not isinstance(job, protocol.Job):
        print(f"eagerbench worker: expected a job, got {type(job).__name__}", file=sys.stderr)
        return 2
    cells = list(job.cells)
    return run_measure(cells, channel) if job.kind == "measure" else run_jobs(cells, channel)


if __name__ == "__main__":
    sys.exit(main())
