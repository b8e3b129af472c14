"""The worker's jobs other than measuring: a prepared start state, and a verify run of l-BFGS.
Each returns a ``CellResult`` whose extra fields hold what the job found."""

from __future__ import annotations

import os
import time

from eagerbench.records.model import CellResult, CellSpec
from eagerbench.worker.cellsetup import backend_for, context, data_source
from eagerbench.worker.loop import Channel
from eagerbench.worker.process import pin_cpus

GRADCHECK_BATCH = 20    # images the gradient is checked on, by central differences


def prepare(spec: CellSpec, channel: Channel) -> CellResult:
    """Compute a workload's prepared start state once, for every cell that shares it."""
    import numpy as np

    from workloads import get_workload

    pin_cpus(spec.threads)
    workload = get_workload(spec.workload)
    if workload.prepare is None or spec.save is None:
        raise ValueError(f"{spec.workload} has no start state to prepare, or nowhere to save it")
    backend, _ = backend_for(spec)
    ctx, _ = context(spec, workload)
    started = time.perf_counter()
    arrays = workload.prepare(backend, spec.params, ctx)
    np.savez(spec.save, **arrays)
    return CellResult("ok", extra={"seconds": time.perf_counter() - started})


def verify(spec: CellSpec, channel: Channel) -> CellResult:
    """Run l-BFGS untimed in float64 and check the gradient against finite differences."""
    import numpy as np

    from workloads import autoencoder, get_workload, lbfgs_reference

    pin_cpus(spec.threads)
    if spec.save is None or not isinstance(spec.iters, int):
        raise ValueError("a verify job saves its weights and runs a fixed number of steps")
    data, source = data_source(spec)
    params, iters, save = spec.params, spec.iters, spec.save
    x0 = autoencoder.init_weights(spec.seed)
    if spec.mode == "torch.optim.LBFGS":
        losses, x = lbfgs_reference.run(data(params["batch"]), x0, params["history"], iters)
        np.save(save, x)
        return CellResult("ok", data_source=source,
                          extra={"losses": losses, "pid": os.getpid()})
    backend, _ = backend_for(spec, "float64")
    task = get_workload("lbfgs").build(backend, params, {"seed": spec.seed, "data": data})
    st, mem, losses = task.st, task.mem, []
    for i in range(iters):
        st, mem = task.step(st, mem)
        losses.append(task.observe(st, mem)["loss"])
        channel.progress("verify", i + 1, iters)
    np.save(save, backend.to_numpy(st["x"]))
    small = data(GRADCHECK_BATCH)
    return CellResult("ok", data_source=source, extra={
        "losses": losses, "pid": os.getpid(),
        "gradcheck": autoencoder.gradient_check(backend, small, x0)})


JOBS = {"verify": verify, "prepare": prepare}
