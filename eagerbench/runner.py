"""Runs a grid of cells in worker processes and appends each result as it lands.

Modelled on pyperf's master/worker split: the runner never imports a framework. Cells are sent
to workers in batches of one framework, one workload and one repeat (``batch_key``): a process
start and a framework import cost 1 to 4 s, more than many cells take to measure. A crash, an
out-of-memory kill or a timeout costs the cell in progress; a new worker measures the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from tqdm import tqdm

from eagerbench.results import CellResult, CellSpec, Record, RunWriter
from eagerbench.worker import PROTOCOL_VERSION


# What the runner is asked to measure is the result model's cell identity.
Cell = CellSpec


def batch_key(cell: Cell) -> tuple:
    """Cells with the same key may share a worker process: one framework, one repeat, the same
    process-wide settings (threads, allocator, environment)."""
    from eagerbench.modes import get_mode

    return (get_mode(cell.mode).framework, cell.repeat, cell.device, cell.dtype, cell.threads,
            cell.gc, json.dumps(cell.extra_env, sort_keys=True), cell.job,
            json.dumps(cell.options.get("allocator"), sort_keys=True))


def thread_env(threads: int, device: str) -> dict:
    """Environment that pins every framework's pools to ``threads`` before it initialises."""
    env = {name: str(threads) for name in (
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""   # a CPU cell must not touch (or reserve) a GPU
    return env


# Allocator settings a cell can ask for (``--allocator``), as the environment they set.
ALLOCATORS = {"default": {}, "thp": {"THP_MEM_ALLOC_ENABLE": "1"}}


def _describe_exit(rc: int, stderr_tail: str) -> str:
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        hint = " (out of memory?)" if -rc == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    last = stderr_tail.strip().splitlines()[-1:] or [""]
    return f"worker exited with code {rc}: {last[0][:300]}"


def _cache_env(root: str) -> dict:
    """torch.compile's on-disk caches, under ``root`` (never the user's own). JAX's persistent
    cache stays off: JAX compiles identical programs again within a process (an interleaved
    sweep's variants, a cell after another), and with the cache on those became loads, so no
    process of a run compiled cold."""
    return {"TORCHINDUCTOR_CACHE_DIR": os.path.join(root, "inductor"),
            "TRITON_CACHE_DIR": os.path.join(root, "triton"),
            "JAX_ENABLE_COMPILATION_CACHE": "false"}


def _worker_env(cell: Cell, cache: str) -> dict:
    env = {**os.environ, **thread_env(cell.threads, cell.device),
           **ALLOCATORS[cell.options.get("allocator", "default")], **cell.extra_env,
           **_cache_env(cache)}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["EAGERBENCH_RUNNER_PID"] = str(os.getpid())
    return env


def _messages(proc, deadline_of: Callable[[], float]) -> Iterator[Optional[dict]]:
    """The worker's JSON messages; ``None`` once when the deadline passes first."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout] + [lines.put("")],
                     daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline_of() - time.perf_counter()))
        except queue.Empty:
            yield None
            return
        if not line:
            return
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def _one_process(specs: list[dict], first: Cell, timeout: float, on_progress,
                 cache_dir: str) -> Iterator[tuple[int, dict]]:
    """Start one worker on ``specs``; yield ``(index, result)`` per cell as each lands. The
    cells in progress (one unit) when the worker dies or runs out of time are yielded as
    failed, and the generator ends there."""
    started = time.perf_counter()
    state = {"deadline": started + timeout, "pending": [0], "startup_s": None}
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen([sys.executable, "-m", "eagerbench.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errfile, text=True,
                                env=_worker_env(first, cache_dir), start_new_session=True)
        completed = False
        try:
            job = {"job": first.job, "cells": specs}
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            failure = None
            for msg in _messages(proc, lambda: state["deadline"]):
                if msg is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    failure = f"timed out after {timeout:g} s"
                    break
                kind = msg.pop("type", None)
                if kind == "hello" and msg.get("protocol") != PROTOCOL_VERSION:
                    os.killpg(proc.pid, signal.SIGKILL)
                    failure = (f"worker speaks protocol {msg.get('protocol')}, this runner "
                               f"{PROTOCOL_VERSION} (a stale install?)")
                    break
                if kind == "start":
                    state["pending"] = list(msg["indices"])
                    state["deadline"] = time.perf_counter() + timeout * len(msg["indices"])
                    if state["startup_s"] is None:
                        state["startup_s"] = time.perf_counter() - started
                elif kind == "progress":
                    on_progress(msg)
                elif kind == "result":
                    index = msg.pop("index", 0)
                    if index == 0 and first.job == "measure":
                        msg.setdefault("process", {})["startup_s"] = state["startup_s"]
                    yield index, msg
                    state["pending"] = [i for i in state["pending"] if i != index]
                    if not state["pending"] and index + 1 < len(specs):
                        state["pending"] = [index + 1]   # until the next unit says what it holds
            completed = True
        finally:
            if not completed and proc.poll() is None:   # abandoned (an interrupt, a failed
                os.killpg(proc.pid, signal.SIGKILL)      # write): no orphan worker
        rc = proc.wait()
        errfile.seek(0)
        stderr_tail = errfile.read()[-4000:]
    for index in state["pending"]:
        reason = failure or _describe_exit(rc, stderr_tail)
        yield index, {"status": "failed", "reason": reason, "stderr_tail": stderr_tail[-1500:]}


def run_batch(cells: list[Cell], timeout: float, on_progress=lambda msg: None,
              cache_dir: Optional[str] = None) -> Iterator[tuple[Cell, dict]]:
    """Measure cells that share a ``batch_key`` in one worker, yielding each cell with the
    worker's result as it lands.

    The worker keeps torch.compile's on-disk cache in ``cache_dir`` (by default an empty one
    of its own). When the worker dies or times out, the cells in progress are recorded as
    failed and a new worker measures the cells after them.
    """
    own = tempfile.TemporaryDirectory(prefix="eagerbench-cache-") if cache_dir is None else None
    left = list(cells)
    while left:
        specs = [c.to_json() for c in left]
        done = 0
        started = time.perf_counter()
        for index, result in _one_process(specs, left[0], timeout, on_progress,
                                          cache_dir or own.name):
            if result["status"] != "ok":
                result.setdefault("stderr_tail", "")
            result["wall_s"] = time.perf_counter() - started
            started = time.perf_counter()
            yield left[index], result
            done = max(done, index + 1)
        left = left[done:]
    if own is not None:
        own.cleanup()


def run_cell(cell: Cell, timeout: float, on_progress=lambda msg: None) -> dict:
    """Run one cell (or job) in a fresh worker with empty caches; always returns the worker's
    result (a mapping; ``to_records`` types it)."""
    return next(run_batch([cell], timeout, on_progress))[1]


WARM_UP_COMPILER = ("import torch; f = torch.compile(lambda x: (x * 2).sin()); "
                    "f(torch.ones(8, device={device!r}))")


def warm_compiler(cells: list[Cell], template: str) -> float | None:
    """Compile a trivial function once into ``template`` if any cell uses torch.compile.

    torch.compile's first use in a cache directory also builds its toolchain's artifacts
    (about 5 s on 2 cores), which a user pays once, not per program. The first process of each
    setting starts from a copy of this template: a cell's compile there is its own graph's,
    whatever ran before it. Returns the seconds the warm-up took (None when no cell needs it
    or it failed).
    """
    from eagerbench.modes import get_mode

    users = [c for c in cells if "compile_mode" in get_mode(c.mode).options]
    if not users:
        return None
    env = {**os.environ, **thread_env(users[0].threads, users[0].device), **_cache_env(template)}
    code = WARM_UP_COMPILER.format(device="cuda" if users[0].device == "cuda" else "cpu")
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=600)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - started if proc.returncode == 0 else None


def variant_specs(cell: CellSpec) -> list[CellSpec]:
    """The specs of the records a measured cell becomes: one per parameter set, a sweep that
    was interleaved in one process split by value, each saying what it shared its process with."""
    from workloads import get_workload

    workload = get_workload(cell.workload)
    if cell.job != "measure" or not workload.sweeps(cell.params):
        return [cell]
    name = workload.interleave
    return [replace(cell, params=params, interleaved={name: cell.params[name]},
                    iters=cell.iters[i] if isinstance(cell.iters, list) else cell.iters)
            for i, params in enumerate(workload.variants(cell.params))]


def to_records(cell: CellSpec, result: dict) -> list[Record]:
    """A worker's result as typed records (see ``variant_specs``), each carrying its facts,
    derived now from today's code."""
    from eagerbench import facts

    if cell.job != "measure":
        return [Record(cell, CellResult.from_json(result))]
    specs = variant_specs(cell)
    shared = {k: v for k, v in result.items() if k != "variants"}
    out = []
    for i, spec in enumerate(specs):
        res = {**shared, **result["variants"][i]} if result.get("variants") else dict(shared)
        typed = CellResult.from_json(res)
        out.append(Record(spec, typed, facts.derive(spec, typed)))
    return out


def batches(cells: list[Cell]) -> list[list[Cell]]:
    """Consecutive cells with the same ``batch_key``, each list one worker process."""
    out: list[list[Cell]] = []
    for cell in cells:
        if out and batch_key(out[-1][-1]) == batch_key(cell):
            out[-1].append(cell)
        else:
            out.append([cell])
    return out


class BarProgress:
    """The runner's progress bar, as executors report to it (``executors.Progress``)."""

    def __init__(self, bar: tqdm):
        self.bar = bar
        self.counts: dict[str, int] = {}

    def starting(self, cell: Cell) -> None:
        self.bar.set_description_str(cell.label())
        self.bar.set_postfix_str(self._jobs())

    def phase(self, message: dict) -> None:
        self.bar.set_postfix_str(f"{message['phase']} {message['i']}/{message['n']}",
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
              progress: bool = True, executor=None) -> list[Record]:
    """Run cells in order on ``executor`` (default: this machine), each record written (and
    flushed to disk) the moment it lands."""
    from eagerbench import prepared
    from eagerbench.executors.local import LocalExecutor

    executor = executor or LocalExecutor()
    cells = list(cells)
    records: list[Record] = []
    bar = tqdm(total=len(cells), unit="cell", file=sys.stderr, disable=not progress,
               bar_format="{l_bar}{bar:20}| {n_fmt}/{total_fmt} cells [{elapsed}<{remaining}]"
                          "{postfix}", dynamic_ncols=True)
    with bar:
        shown = BarProgress(bar)
        cells = prepared.attach(cells, timeout, shown.say, executor.run_one)
        # closing: a failed write or an interrupt stops every worker (or job) now
        with contextlib.closing(executor.measure(batches(cells), timeout, shown)) as landed:
            for cell, result in landed:
                for record in to_records(cell, result):
                    writer.record(record)
                    records.append(record)
                if result["status"] != "ok":
                    shown.say(f"eagerbench: {cell.label()} {result['status']}: "
                              f"{result['reason']}")
                bar.update(1)
    return records
