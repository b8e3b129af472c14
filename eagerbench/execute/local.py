"""The local executor: worker processes on this machine, one batch after another. This module
owns the spawning of workers: their environment, the job written to them, their messages read
back, and what a worker that dies or runs out of time costs (the cells in progress, recorded
as failed; a new worker measures the rest).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Generator, Iterator, Optional

from eagerbench.execute import venvs
from eagerbench.execute.executors import Monitor, Results, batch_key
from eagerbench.records import protocol
from eagerbench.records.model import CellResult, CellSpec
from eagerbench.records.settings import ALLOCATORS
from eagerbench.worker.process import (
    COLD_TEMPLATE_ENV,
    compile_cache_env,
    thread_env,
    with_package_path,
)


def failed(reason: str, stderr_tail: str = "") -> Results:
    """The results of a cell that its worker never finished."""
    return (CellResult("failed", reason=reason, stderr_tail=stderr_tail),)


def _describe_exit(rc: int, stderr_tail: str) -> str:
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        hint = " (out of memory?)" if -rc == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    last = stderr_tail.strip().splitlines()[-1:] or [""]
    return f"worker exited with code {rc}: {last[0][:300]}"


NO_ENVIRONMENTS = venvs.EnvironmentSet()


def _worker_env(cell: CellSpec, cache: str, template: Optional[str] = None) -> dict[str, str]:
    env = {**os.environ, **thread_env(cell.threads, cell.device),
           **ALLOCATORS[cell.options.get("allocator") or "default"], **cell.extra_env,
           **compile_cache_env(cache, first_process=cell.repeat == 0)}
    env.pop(COLD_TEMPLATE_ENV, None)
    if template and cell.repeat == 0:   # each unit of a first process compiles cold
        env[COLD_TEMPLATE_ENV] = template
    env["EAGERBENCH_RUNNER_PID"] = str(os.getpid())
    return with_package_path(env)


def _interpreter(cell: CellSpec, env: dict,
                 environments: venvs.EnvironmentSet) -> tuple[str, dict]:
    """The Python a cell's worker runs in, and its environment variables: this one's, or
    the interpreter of the cell's ``--env`` environment (prepared before the run)."""
    if not cell.options.get("env"):
        return sys.executable, env
    built = environments.interpreter(cell.options["env"])
    return str(built.python), venvs.worker_env(built, env)


def _lines(proc, deadline_of: Callable[[], float]) -> Iterator[Optional[str]]:
    """The worker's lines; ``None`` once when the deadline passes first."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline_of() - time.perf_counter()))
        except queue.Empty:
            yield None
            return
        if not line:
            return
        yield line


class _Watch:
    """What the runner knows of one worker: its deadline, the cells in progress, when it
    started its first unit, and why it was stopped."""

    def __init__(self, timeout: float, cells: int) -> None:
        self.timeout, self.cells = timeout, cells
        self.started = time.perf_counter()
        self.deadline = self.started + timeout
        self.pending: list[int] = [0]
        self.startup_s: Optional[float] = None
        self.failure: Optional[str] = None

    def begin(self, indices: tuple[int, ...]) -> None:
        self.pending = list(indices)
        self.deadline = time.perf_counter() + self.timeout * len(indices)
        if self.startup_s is None:
            self.startup_s = time.perf_counter() - self.started

    def landed(self, index: int) -> None:
        self.pending = [i for i in self.pending if i != index]
        if not self.pending and index + 1 < self.cells:
            self.pending = [index + 1]   # until the next unit says what it holds


def _read(proc, watch: _Watch, first: CellSpec, on_progress) -> Iterator[tuple[int, Results]]:
    """The results a worker sends, as they land; stops it on a timeout or a stale protocol."""
    for line in _lines(proc, lambda: watch.deadline):
        if line is None:
            watch.failure = f"timed out after {watch.timeout:g} s"
            break
        try:
            message = protocol.decode(line)
        except protocol.ProtocolError as exc:
            if line.lstrip().startswith("{"):   # a message of another version: stop here
                watch.failure = f"worker: {exc}"
                break
            continue                             # a stray line on the worker's stdout
        if isinstance(message, protocol.Start):
            watch.begin(message.indices)
        elif isinstance(message, protocol.Progress):
            on_progress(message)
        elif isinstance(message, protocol.Result):
            results = message.results
            if message.index == 0 and first.job == "measure":
                results = tuple(replace(r, process={**r.process, "startup_s": watch.startup_s})
                                for r in results)
            yield message.index, results
            watch.landed(message.index)
    if watch.failure:
        os.killpg(proc.pid, signal.SIGKILL)


def _one_process(cells: list[CellSpec], timeout: float, on_progress, cache_dir: str,
                 template: Optional[str],
                 environments: venvs.EnvironmentSet
                 ) -> Generator[tuple[int, Results], None, None]:
    """Start one worker on ``cells``; yield ``(index, results)`` per cell as each lands. The
    cells in progress (one unit) when the worker dies or runs out of time are yielded as
    failed, and the generator ends there."""
    watch = _Watch(timeout, len(cells))
    try:
        python, env = _interpreter(cells[0], _worker_env(cells[0], cache_dir, template),
                                   environments)
    except venvs.EnvError as exc:
        for index in range(len(cells)):
            yield index, failed(f"environment {cells[0].options.get('env')}: {exc}")
        return
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen([python, "-m", "eagerbench.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errfile, text=True, env=env,
                                start_new_session=True)
        completed = False
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(protocol.encode(protocol.Job(cells[0].job, tuple(cells))))
            proc.stdin.close()
            yield from _read(proc, watch, cells[0], on_progress)
            completed = True
        finally:
            if not completed and proc.poll() is None:   # abandoned (an interrupt, a failed
                os.killpg(proc.pid, signal.SIGKILL)      # write): no orphan worker, and reaped
                proc.wait()                              # before the runner reports the fault
        rc = proc.wait()
        errfile.seek(0)
        stderr_tail = errfile.read()[-4000:]
    for index in watch.pending:
        yield index, failed(watch.failure or _describe_exit(rc, stderr_tail), stderr_tail[-1500:])


def run_batch(cells: list[CellSpec], timeout: float, on_progress=lambda message: None,
              cache_dir: Optional[str] = None, template: Optional[str] = None,
              environments: Optional[venvs.EnvironmentSet] = None
              ) -> Generator[tuple[CellSpec, Results], None, None]:
    """Measure cells that share a ``batch_key`` in one worker, yielding each cell with its
    results as they land.

    The worker keeps torch.compile's on-disk cache in ``cache_dir`` (by default an empty one
    of its own); with a ``template``, each unit of a first process compiles from a copy of it
    and merges what it compiled into ``cache_dir`` after. When the worker dies or times out,
    the cells in progress are recorded as failed and a new worker measures the cells after
    them. The ``--env`` environments its cells name were prepared before the run.
    """
    own = tempfile.TemporaryDirectory(prefix="eagerbench-cache-") if cache_dir is None else None
    folder = own.name if own is not None else str(cache_dir)
    left = list(cells)
    try:
        while left:
            done = 0
            started = time.perf_counter()
            # closing: when this batch is abandoned, its worker stops now, not at collection
            with contextlib.closing(_one_process(left, timeout, on_progress,
                                                 folder, template,
                                                 environments or NO_ENVIRONMENTS)) as landed:
                for index, results in landed:
                    wall = time.perf_counter() - started
                    yield left[index], tuple(replace(r, wall_s=wall) for r in results)
                    started = time.perf_counter()
                    done = max(done, index + 1)
            left = left[done:]
    finally:
        if own is not None:
            own.cleanup()


def run_cell(cell: CellSpec, timeout: float, on_progress=lambda message: None) -> CellResult:
    """Run one job, or one cell that is no sweep, in a fresh worker with empty caches; its
    result (``measure_cell`` gives a sweep's, one per value)."""
    results = measure_cell(cell, timeout, on_progress)
    if len(results) != 1:
        raise ValueError(f"{cell.label()} is a sweep of {len(results)} values: use measure_cell")
    return results[0]


def measure_cell(cell: CellSpec, timeout: float, on_progress=lambda message: None) -> Results:
    """Measure one cell in a fresh worker with empty caches: one result per value it sweeps."""
    return next(run_batch([cell], timeout, on_progress))[1]


WARM_UP_COMPILER = ("import torch; f = torch.compile(lambda x: (x * 2).sin()); "
                    "f(torch.ones(8, device={device!r}))")


def warm_compiler(cells: list[CellSpec], template: str) -> Optional[float]:
    """Compile a trivial function once into ``template`` if any cell uses torch.compile.

    torch.compile's first use in a cache directory also builds its toolchain's artifacts
    (about 5 s on 2 cores), which a user pays once, not per program. The first process of each
    setting starts from a copy of this template: a cell's compile there is its own graph's,
    whatever ran before it. Returns the seconds the warm-up took (None when no cell needs it
    or it failed).
    """
    from eagerbench.frameworks.modes import get_mode

    users = [c for c in cells if "compile_mode" in get_mode(c.mode).options]
    if not users:
        return None
    env = {**os.environ, **thread_env(users[0].threads, users[0].device),
           **compile_cache_env(template)}
    code = WARM_UP_COMPILER.format(device="cuda" if users[0].device == "cuda" else "cpu")
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=600)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - started if proc.returncode == 0 else None


def _setting(cell: CellSpec) -> tuple:
    """The processes that share a compile cache: a worker's batch key but its repeat and its
    why phase. The why phase runs in the first process only and compiles nothing another
    process reuses; with it in the key, the second process had a cache of its own, found
    none of the first's graphs and compiled them all again (65 s of torch.compile warm-up at
    repeat 1 against 11 s at repeats 2 to 4)."""
    key = batch_key(cell)
    return key[:1] + key[2:-2] + key[-1:]


class LocalExecutor:
    """Worker processes on this machine, one batch after another."""

    name = "local"

    def __init__(self) -> None:
        self.environments = venvs.EnvironmentSet()

    def settings(self) -> dict:
        return {"name": self.name}

    def at(self, folder: Path, environments: venvs.EnvironmentSet) -> "LocalExecutor":
        self.environments = environments   # keeps nothing in the run's folder
        return self

    def hosts(self) -> list[dict]:
        return []   # this machine: the run's header describes it

    def run_one(self, cell: CellSpec, timeout: float) -> CellResult:
        return run_cell(cell, timeout)

    def run_batches(self, batches: list[list[CellSpec]], timeout: float,
                    progress: Monitor) -> Generator[tuple[CellSpec, Results], None, None]:
        # torch.compile keeps compiled graphs on disk between processes: with the user's cache
        # a first call would depend on what ran before. Processes start from a template holding
        # only the compiler's one-time set-up. The processes of later repeats reuse the graphs
        # the first compiled (their steady state is the same code; a compile cost and a first
        # call are only ever taken from a process that compiled cold).
        with tempfile.TemporaryDirectory(prefix="eagerbench-caches-") as caches:
            template = os.path.join(caches, "template")
            os.mkdir(template)
            setup = warm_compiler([c for batch in batches for c in batch], template)
            if setup is not None:
                progress.say(f"eagerbench: torch.compile's one-time set-up took {setup:.1f} s "
                             f"(done once, kept out of every cell's compile cost)")
            shared: dict[tuple, str] = {}
            for batch in batches:
                progress.starting(batch[0])
                setting = _setting(batch[0])
                if setting not in shared:
                    shared[setting] = os.path.join(caches, str(len(shared)))
                    shutil.copytree(template, shared[setting])
                # closing: a failed write or an interrupt stops the worker now, not at collection
                with contextlib.closing(run_batch(batch, timeout, progress.phase,
                                                  shared[setting], template,
                                                  self.environments)) as landed:
                    for position, (cell, results) in enumerate(landed):
                        yield cell, results
                        if position + 1 < len(batch):
                            progress.starting(batch[position + 1])
