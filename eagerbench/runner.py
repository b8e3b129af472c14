"""Runs a grid of cells in worker processes and appends each result as it lands.

Modelled on pyperf's master/worker split: the runner never imports a framework. Cells are sent
to workers in batches of one framework, one workload and one repeat (``batch_key``): a process
start and a framework import cost 1 to 4 s, more than many cells take to measure. A crash, an
out-of-memory kill or a timeout costs the cell in progress; a new worker measures the rest.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from tqdm import tqdm

RAW = "raw.jsonl"


@dataclass
class Cell:
    """One measured unit: a workload with fixed parameters in one mode."""

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
    extra_env: dict = field(default_factory=dict)

    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.workload} {params} [{self.mode}]"

    def spec(self) -> dict:
        spec = asdict(self)
        spec.pop("extra_env")
        return spec


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
    return {"TORCHINDUCTOR_CACHE_DIR": os.path.join(root, "inductor"),
            "TRITON_CACHE_DIR": os.path.join(root, "triton")}


def _worker_env(cell: Cell, cache: str) -> dict:
    env = {**os.environ, **thread_env(cell.threads, cell.device),
           **ALLOCATORS[cell.options.get("allocator", "default")], **cell.extra_env,
           **_cache_env(cache)}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
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
        job = {"job": first.job, "cells": specs} if first.job == "measure" else specs[0]
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        failure = None
        for msg in _messages(proc, lambda: state["deadline"]):
            if msg is None:
                os.killpg(proc.pid, signal.SIGKILL)
                failure = f"timed out after {timeout:g} s"
                break
            kind = msg.pop("type", None)
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
        rc = proc.wait()
        errfile.seek(0)
        stderr_tail = errfile.read()[-4000:]
    for index in state["pending"]:
        reason = failure or _describe_exit(rc, stderr_tail)
        yield index, {"status": "failed", "reason": reason, "stderr_tail": stderr_tail[-1500:]}


def run_batch(cells: list[Cell], timeout: float, on_progress=lambda msg: None,
              cache_dir: Optional[str] = None) -> Iterator[dict]:
    """Measure cells that share a ``batch_key`` in one worker, yielding each record as it lands.

    The worker keeps torch.compile's on-disk cache in ``cache_dir`` (by default an empty one
    of its own). When the worker dies or times out, the cells in progress are recorded as
    failed and a new worker measures the cells after them.
    """
    own = tempfile.TemporaryDirectory(prefix="eagerbench-cache-") if cache_dir is None else None
    left = list(cells)
    while left:
        specs = [c.spec() for c in left]
        done = 0
        started = time.perf_counter()
        for index, result in _one_process(specs, left[0], timeout, on_progress,
                                          cache_dir or own.name):
            if result["status"] != "ok":
                result.setdefault("stderr_tail", "")
            result["wall_s"] = time.perf_counter() - started
            started = time.perf_counter()
            yield {"cell": specs[index], "result": result}
            done = max(done, index + 1)
        left = left[done:]
    if own is not None:
        own.cleanup()


def run_cell(cell: Cell, timeout: float, on_progress=lambda msg: None) -> dict:
    """Run one cell (or job) in a fresh worker with empty caches; always returns its record."""
    return next(run_batch([cell], timeout, on_progress))


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


def split_variants(record: dict) -> list[dict]:
    """One record per parameter set: a cell that interleaved several values of a parameter in
    one process becomes one record per value, each saying what it shared its process with."""
    from workloads import get_workload

    cell, res = record["cell"], record["result"]
    workload = get_workload(cell["workload"])
    if not workload.sweeps(cell["params"]):
        return [record]
    name = workload.interleave
    shared = {k: v for k, v in res.items() if k != "variants"}
    out = []
    for i, params in enumerate(workload.variants(cell["params"])):
        one = {**cell, "params": params, "interleaved": {name: cell["params"][name]}}
        if isinstance(cell["iters"], list):
            one["iters"] = cell["iters"][i]
        result = {**shared, **res["variants"][i]} if res.get("variants") else dict(shared)
        out.append({"cell": one, "result": result})
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


def run_cells(cells: Iterable[Cell], out_dir: Path, timeout: float,
              progress: bool = True) -> list[dict]:
    """Run cells in order, appending each record to ``out_dir/raw.jsonl`` the moment it ends."""
    from eagerbench import prepared

    cells = list(cells)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    bar = tqdm(total=len(cells), unit="cell", file=sys.stderr, disable=not progress,
               bar_format="{l_bar}{bar:20}| {n_fmt}/{total_fmt} cells [{elapsed}<{remaining}]"
                          "{postfix}", dynamic_ncols=True)
    # torch.compile keeps compiled graphs on disk between processes: with the user's cache a
    # first call would depend on what ran before. Processes start from a template holding only
    # the compiler's one-time set-up.
    # The processes of later repeats reuse the graphs the first compiled (their steady state is
    # the same code; a compile cost is only ever taken from a process that compiled cold).
    caches = tempfile.TemporaryDirectory(prefix="eagerbench-caches-")
    template = os.path.join(caches.name, "template")
    os.mkdir(template)
    with caches, bar, open(out_dir / RAW, "a") as raw:
        cells = prepared.attach(cells, timeout, bar.write)
        setup = warm_compiler(cells, template)
        if setup is not None:
            bar.write(f"eagerbench: torch.compile's one-time set-up took {setup:.1f} s "
                      f"(done once, kept out of every cell's compile cost)")
        shared: dict[tuple, str] = {}
        for group in batches(cells):
            bar.set_description_str(group[0].label())

            def show(msg, bar=bar):
                bar.set_postfix_str(f"{msg['phase']} {msg['i']}/{msg['n']}", refresh=True)

            setting = batch_key(group[0])[:1] + batch_key(group[0])[2:]   # all but the repeat
            if setting not in shared:
                shared[setting] = os.path.join(caches.name, str(len(shared)))
                shutil.copytree(template, shared[setting])
            measured = run_batch(group, timeout, show, shared[setting])
            for position, record in enumerate(measured):
                for one in split_variants(record):
                    raw.write(json.dumps(one) + "\n")
                    records.append(one)
                raw.flush()
                if record["result"]["status"] != "ok":
                    bar.write(f"eagerbench: {group[position].label()} "
                              f"{record['result']['status']}: {record['result']['reason']}")
                bar.update(1)
                if position + 1 < len(group):
                    bar.set_description_str(group[position + 1].label())
                bar.set_postfix_str("")
    return records


def load_records(out_dir: Path) -> list[dict]:
    """Every record of a saved run (a torn last line from a killed run is skipped)."""
    records = []
    with open(Path(out_dir) / RAW) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
