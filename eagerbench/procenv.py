"""A worker process's surroundings: the threads every framework's pools get, the CPUs it may
run on, its caches, its environment variables, and its tie to the runner that started it.

Everything here is set before a framework is imported (a pool sized at import keeps its size).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Allocator settings a cell can ask for (``--allocator``), as the environment they set.
ALLOCATORS = {"default": {}, "thp": {"THP_MEM_ALLOC_ENABLE": "1"}}

# Where the package lives: a worker imports eagerbench and workloads from the runner's copy.
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def thread_env(threads: int, device: str) -> dict:
    """Environment that pins every framework's pools to ``threads`` before it initialises."""
    env = {name: str(threads) for name in (
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""   # a CPU cell must not touch (or reserve) a GPU
    return env


def compile_cache_env(root: str) -> dict:
    """torch.compile's on-disk caches, under ``root`` (never the user's own). JAX's persistent
    cache stays off: JAX compiles identical programs again within a process (an interleaved
    sweep's variants, a cell after another), and with the cache on those became loads, so no
    process of a run compiled cold."""
    return {"TORCHINDUCTOR_CACHE_DIR": os.path.join(root, "inductor"),
            "TRITON_CACHE_DIR": os.path.join(root, "triton"),
            "JAX_ENABLE_COMPILATION_CACHE": "false"}


def with_package_path(env: dict) -> dict:
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


def cache_root() -> str:
    """eagerbench's own cache folder (prepared states, stand-in data): ``$EAGERBENCH_CACHE``
    or ``~/.cache/eagerbench``."""
    return os.environ.get("EAGERBENCH_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "eagerbench")


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
