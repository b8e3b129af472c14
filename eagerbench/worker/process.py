"""A worker process's surroundings: the threads every framework's pools get, the CPUs it may
run on, its caches, its environment variables, and its tie to the runner that started it.

Everything here is set before a framework is imported (a pool sized at import keeps its size).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Where the package lives: a worker imports eagerbench and workloads from the runner's copy.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])   # above eagerbench/worker/


def thread_env(threads: int, device: str) -> dict[str, str]:
    """Environment that pins every framework's pools to ``threads`` before it initialises."""
    env = {name: str(threads) for name in (
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""   # a CPU cell must not touch (or reserve) a GPU
    return env


def compile_cache_env(root: str, first_process: bool = True) -> dict[str, str]:
    """The compilers' on-disk caches, under ``root`` (never the user's own). torch.compile's is
    on in every process (its first process starts from a template, so it compiles cold). JAX's
    is off in a setting's first process: JAX compiles identical programs again within a process
    (an interleaved sweep's variants, a cell after another), and with the cache on those became
    loads, so no process would have compiled cold. Later processes read and write it, every
    program cached however quick its compile (their compile costs are never reported)."""
    env = {"TORCHINDUCTOR_CACHE_DIR": os.path.join(root, "inductor"),
           "TRITON_CACHE_DIR": os.path.join(root, "triton"),
           "JAX_ENABLE_COMPILATION_CACHE": "false"}
    if not first_process:
        env.update({"JAX_ENABLE_COMPILATION_CACHE": "true",
                    "JAX_COMPILATION_CACHE_DIR": os.path.join(root, "jax"),
                    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})
    return env


# Set by the local executor in a setting's first process: the compiler-only cache each unit
# there starts from, so that no unit loads graphs another unit compiled.
COLD_TEMPLATE_ENV = "EAGERBENCH_COLD_CACHE_TEMPLATE"
TORCH_CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment for the block, each variable as it was
    after (unset again where it was unset)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def cold_compile_cache() -> Iterator[bool]:
    """Around one unit of a first process: torch.compile's caches start from the template
    (Dynamo's in-memory caches are reset between units; only the disk cache carried graphs
    from one cell to the next, two l-BFGS cells with the same graphs, say), and what the unit
    compiled is merged into the shared cache afterwards, for the later processes to load.
    Yields whether it did: then a graph the unit found in the cache is one it compiled itself
    (a graph again after a recompile, the same graph at two breaks), its cost already paid."""
    template = os.environ.get(COLD_TEMPLATE_ENV)
    found = {name: os.environ.get(name) for name in TORCH_CACHE_VARS}
    shared = {name: folder for name, folder in found.items() if folder}
    if not template or len(shared) < len(found):
        yield False
        return
    unit = os.path.join(tempfile.mkdtemp(
        prefix="unit-", dir=os.path.dirname(shared["TORCHINDUCTOR_CACHE_DIR"])), "cache")
    shutil.copytree(template, unit)
    try:
        with _environ({name: os.path.join(unit, os.path.basename(folder))
                       for name, folder in shared.items()}):
            yield True
    finally:
        for folder in shared.values():
            mine = os.path.join(unit, os.path.basename(folder))
            if os.path.isdir(mine):
                shutil.copytree(mine, folder, dirs_exist_ok=True)
        shutil.rmtree(os.path.dirname(unit), ignore_errors=True)


@contextmanager
def throwaway_compile_cache() -> Iterator[None]:
    """Around what the why phase compiles before a unit's warm-up: torch.compile's on-disk
    caches point to an empty folder, dropped after. The product probe of a matmul cell is
    that cell's own graph: compiled into the cell's cache, it was found there by the cell's
    first compile, whose cost then went unmeasured in every process that ran the why phase."""
    folder = tempfile.mkdtemp(prefix="eagerbench-probe-cache-")
    try:
        with _environ({name: os.path.join(folder, name.lower()) for name in TORCH_CACHE_VARS}):
            yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def with_package_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this package's root first on PYTHONPATH (a worker runs the runner's code)."""
    return {**env, "PYTHONPATH": PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")}


def pin_cpus(threads: int) -> int:
    """Restrict the process to ``threads`` CPUs when fewer than all were asked for: the only
    thread control XLA's CPU pool honours, and it holds every framework to the same cores.
    Returns the CPUs the process may now run on."""
    if not hasattr(os, "sched_getaffinity"):
        return os.cpu_count() or 1
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    return len(os.sched_getaffinity(0))


def usable_cpus() -> int:
    """The CPUs this process may run on now (its affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def memory_bytes() -> float:
    """This machine's physical memory (8 GiB where it cannot be read)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 8.0 * 2**30


def die_with_runner() -> None:
    """Ask the kernel to kill this worker when the runner dies, even by SIGKILL (which the
    runner cannot catch to kill its workers itself); Linux only."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    runner = os.environ.get("EAGERBENCH_RUNNER_PID")
    if runner and os.getppid() != int(runner):   # the runner died before the prctl
        os._exit(1)
