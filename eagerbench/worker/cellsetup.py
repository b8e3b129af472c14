"""From a cell's spec to what the timing loop needs: its mode's backend, its workload's data and
context, and which cells of a job are measured together as one unit."""

from __future__ import annotations

import importlib
import time
from typing import Any, Callable, Optional

import numpy as np

from eagerbench.frameworks.backends.base import Backend
from eagerbench.records.model import CellSpec
from eagerbench.records.store import cache_root
from eagerbench.worker.loop import Entry
from eagerbench.worker.process import memory_bytes
from eagerbench.workload import Workload

Images = Callable[[int], np.ndarray]   # a batch of images, by its size


def data_source(spec: CellSpec) -> tuple[Images, str]:
    """The cell's images (a function of the batch size) and a line saying where they come
    from."""
    from workloads import mnist

    path = spec.data
    if path:
        return (lambda batch: mnist.load(path, batch)), f"MNIST file {path}"
    return ((lambda batch: mnist.standin_cached(batch, spec.seed, cache_root())),
            "stand-in (deterministic synthetic MNIST-like images; pass --data for real MNIST)")


def context(spec: CellSpec, workload: Workload) -> tuple[dict[str, Any], Optional[str]]:
    """The context a workload builds from (seed, data, a prepared start state) and the data's
    source where the workload reads data."""
    data, source = data_source(spec)
    ctx: dict[str, Any] = {"seed": spec.seed, "data": data}
    if spec.prepared:
        if spec.prepared.get("error"):
            raise RuntimeError(spec.prepared["error"])
        with np.load(spec.prepared["path"]) as saved:
            ctx["prepared"] = dict(saved)
    return ctx, (source if workload.uses_data else None)


def backend_for(spec: CellSpec, dtype: Optional[str] = None) -> tuple[Backend, dict[str, Any]]:
    """The cell's mode's backend, and the mode options it was given."""
    from eagerbench.frameworks.modes import get_mode
    from eagerbench.workload import Unsupported

    mode = get_mode(spec.mode)
    if mode.since:   # an environment of another release (--env) may lack the mode
        missing = mode.unavailable(versions(mode.framework)[mode.framework])
        if missing:
            raise Unsupported(missing)
    options: dict[str, Any] = {k: v for k, v in dict(spec.options or {}).items()
                               if k in mode.options}
    return mode.make(spec.device, dtype or spec.dtype, spec.threads, **options), options


def entry_for(spec: CellSpec) -> tuple[Entry, dict[str, Any]]:
    """The timing loop's entry for a cell, and what its result records of the set-up: mode
    options, data source, framework version."""
    from workloads import get_workload

    workload = get_workload(spec.workload)
    backend, options = backend_for(spec)
    ctx, source = context(spec, workload)
    iters = spec.iters if isinstance(spec.iters, list) else [spec.iters]
    entry = Entry(backend, workload, spec.params, ctx, iters, spec.mode)
    return entry, {"options": options, "data_source": source,
                   "versions": versions(backend.framework)}


def warm_up_compiler(spec: CellSpec) -> float:
    """Compile and run a trivial function once in the cell's mode, then forget it: every cell
    of the process then finds the compiler's modules loaded and its own graphs uncompiled, so
    its compile cost is its own, whichever cell ran first. Returns the seconds it took."""
    import numpy as np

    started = time.perf_counter()
    backend, _ = backend_for(spec)
    f = backend.compile_function(lambda x: backend.tanh(x) * 2.0 + 1.0, "compiler_warm_up")
    x = backend.asarray(np.linspace(0.0, 1.0, 7))
    for _ in range(3):
        backend.block(f(x))
    seconds = time.perf_counter() - started
    backend.reset()
    return seconds


def units(specs: list[CellSpec]) -> list[list[int]]:
    """The cells measured together: consecutive cells of one workload and parameter set in
    different modes, unless their data together would take more than an eighth of memory
    (1 GiB vectors in three modes: each is then measured alone)."""
    from workloads import get_workload

    out: list[list[int]] = []
    for i, spec in enumerate(specs):
        if out:
            head = specs[out[-1][0]]
            same = (head.workload, head.params, head.repeat) == \
                (spec.workload, spec.params, spec.repeat)
            if same and spec.mode not in {specs[j].mode for j in out[-1]}:
                footprint = get_workload(spec.workload).work(
                    spec.params, spec.dtype, {}).footprint or 0
                if footprint * (len(out[-1]) + 1) <= memory_bytes() / 8:
                    out[-1].append(i)
                    continue
        out.append([i])
    return out


def versions(framework: str) -> dict[str, str]:
    """``{framework: its __version__}``."""
    module = importlib.import_module(framework)
    return {framework: str(getattr(module, "__version__", "?"))}
