"""One measured cell in its own process: ``python -m eagerbench.worker < spec.json``.

The runner spawns one worker per cell (never two frameworks in one process; threads set before
the framework initialises; no fork after CUDA). The worker speaks JSON lines on the stdout it was
started with; anything the frameworks print goes to stderr instead, so it cannot corrupt them.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from typing import Any

PROTOCOL_VERSION = 1


class Channel:
    """JSON lines to the runner on a private copy of stdout."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)   # frameworks that print to fd 1 now print to stderr
        sys.stdout = sys.stderr

    def send(self, kind: str, **payload: Any) -> None:
        self._out.write(json.dumps({"type": kind, **payload}) + "\n")


def _data_source(spec: dict):
    from workloads import mnist

    if spec.get("data"):
        return (lambda batch: mnist.load(spec["data"], batch)), f"MNIST file {spec['data']}"
    cache = os.environ.get("EAGERBENCH_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "eagerbench")
    return ((lambda batch: mnist.standin_cached(batch, spec["seed"], cache)),
            "stand-in (deterministic synthetic MNIST-like images; pass --data for real MNIST)")


def measure(spec: dict, channel: Channel) -> dict:
    """Build the cell's task(s), warm them up, time them; return the result record.

    A cell whose workload interleaves a parameter (``spec["params"][name]`` is then a list)
    builds one task per value and runs them round-robin, one iteration each in turn; the
    record then holds one entry per value under ``variants``.
    """
    from eagerbench.modes import get_mode
    from eagerbench.timer import GCWatch, harness_overhead_ns, run_iteration
    from workloads import get_workload

    workload = get_workload(spec["workload"])
    mode = get_mode(spec["mode"])
    variants = workload.variants(spec["params"])
    cpus = _pin_cpus(spec["threads"])
    t_setup = time.perf_counter()
    options = {k: v for k, v in (spec.get("options") or {}).items() if k in mode.options}
    B = mode.make(spec["device"], spec["dtype"], spec["threads"], **options)
    data, source = _data_source(spec)
    ctx = {"seed": spec["seed"], "data": data}
    runs = []
    for params in variants:
        task = workload.build(B, params, ctx)
        B.block((task.st, task.mem))
        runs.append({"task": task, "st": task.st, "mem": task.mem, "warmup": [], "timed": [],
                     "stopped": None, "traces_during_timing": 0,
                     "setup_s": time.perf_counter() - t_setup})
        t_setup = time.perf_counter()

    def one(run: dict, phase: str) -> None:
        """One iteration of one variant, then (untimed) what it produced."""
        before = B.trace_count()
        run["st"], run["mem"], s = run_iteration(run["task"].step, B.block, run["st"],
                                                 run["mem"], watch)
        s.observed = run["task"].observe(run["st"], run["mem"])
        run[phase].append(s)
        if phase == "timed":
            run["traces_during_timing"] += B.trace_count() - before
            run["stopped"] = run["task"].stopped(run["st"])

    watch = GCWatch()
    with watch:
        for i in range(spec["warmup"]):
            for run in runs:
                one(run, "warmup")
            channel.send("progress", phase="warmup", i=i + 1, n=spec["warmup"])
        traces_before = B.trace_count()
        if spec["gc"] == "off":
            gc.disable()
        elif spec["gc"] == "freeze":
            gc.collect()
            gc.freeze()
        gc_state = {"enabled": gc.isenabled(), "frozen_objects": gc.get_freeze_count()}
        last = time.perf_counter()
        counts = spec["iters"] if isinstance(spec["iters"], list) else [spec["iters"]] * len(runs)
        for i in range(max(counts)):
            active = [run for run, n in zip(runs, counts) if i < n and not run["stopped"]]
            if not active:
                break
            for run in active:
                one(run, "timed")
            if time.perf_counter() - last > 0.25 or i + 1 == max(counts):
                channel.send("progress", phase="timed", i=i + 1, n=max(counts))
                last = time.perf_counter()
        gc.enable()
        gc.unfreeze()

    def rows(samples):
        return [{"ns": s.ns, "gc_collections": s.gc_collections, "gc_ns": s.gc_ns,
                 **s.observed} for s in samples]

    def own(run: dict) -> dict:
        return {"setup_s": run["setup_s"], "warmup": rows(run["warmup"]),
                "timed": rows(run["timed"]), "stopped": run["stopped"],
                "traces_during_timing": run["traces_during_timing"], "info": run["task"].info,
                "check": run["task"].check(run["st"], run["mem"])}

    shared = {
        "status": "ok",
        "gc_state": gc_state,
        "harness_overhead_ns": harness_overhead_ns(),
        "traces_before_timing": traces_before,
        "threads_applied": B.threads(),
        "compile_cache": B.compile_cache(),
        "device_name": B.device_name(),
        "cpus": cpus,
        "options": options,
        "data_source": source if workload.uses_data else None,
        "versions": _versions(mode.framework),
    }
    if not workload.sweeps(spec["params"]):
        return {**shared, **own(runs[0])}
    return {**shared, "variants": [own(r) for r in runs]}


def _pin_cpus(threads: int) -> int:
    """Restrict the process to ``threads`` CPUs when fewer than all were asked for: the only
    thread control XLA's CPU pool honours, and it holds every framework to the same cores."""
    if not hasattr(os, "sched_getaffinity"):
        return os.cpu_count() or 1
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    return len(os.sched_getaffinity(0))


def verify(spec: dict, channel: Channel) -> dict:
    """Run l-BFGS untimed in float64 and check the gradient against finite differences."""
    import numpy as np

    from eagerbench.modes import get_mode
    from workloads import autoencoder, get_workload, lbfgs_reference

    _pin_cpus(spec["threads"])
    data, source = _data_source(spec)
    params, iters = spec["params"], spec["iters"]
    x0 = autoencoder.init_weights(spec["seed"])
    if spec["mode"] == "torch.optim.LBFGS":
        losses, x = lbfgs_reference.run(data(params["batch"]), x0, params["history"], iters)
        np.save(spec["save"], x)
        return {"status": "ok", "losses": losses, "data_source": source}
    mode = get_mode(spec["mode"])
    B = mode.make(spec["device"], "float64", spec["threads"])
    task = get_workload("lbfgs").build(B, params, {"seed": spec["seed"], "data": data})
    st, mem, losses = task.st, task.mem, []
    for i in range(iters):
        st, mem = task.step(st, mem)
        losses.append(task.observe(st, mem)["loss"])
        channel.send("progress", phase="verify", i=i + 1, n=iters)
    np.save(spec["save"], B.to_numpy(st["x"]))
    small = data(spec.get("gradcheck_batch", 20))
    return {"status": "ok", "losses": losses, "data_source": source,
            "gradcheck": autoencoder.gradient_check(B, small, x0)}


def _versions(framework: str) -> dict:
    import importlib

    module = importlib.import_module(framework)
    return {framework: getattr(module, "__version__", "?")}


def one_line(exc: BaseException) -> str:
    """An exception as one line a user can act on."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, MemoryError) or "out of memory" in message.lower():
        return f"out of memory: {message}" if message else "out of memory"
    return f"{type(exc).__name__}: {message}"[:500]


def main() -> int:
    from eagerbench.workload import Unsupported

    channel = Channel()
    spec = json.loads(sys.stdin.read())
    channel.send("hello", pid=os.getpid(), protocol=PROTOCOL_VERSION)
    try:
        result = {"measure": measure, "verify": verify}[spec.get("job", "measure")](spec, channel)
    except Unsupported as exc:
        channel.send("result", status="unsupported", reason=str(exc))
        return 0
    except BaseException as exc:  # noqa: BLE001 - a cell's failure is data, reported upward
        traceback.print_exc()
        channel.send("result", status="failed", reason=one_line(exc))
        return 1
    channel.send("result", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
