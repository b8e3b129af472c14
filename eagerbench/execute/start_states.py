"""Start states computed once and shared by every mode's cells (``Workload.prepare``).

The state is computed by one mode, in a worker like any cell, and cached on disk under a key
of everything it depends on (the workload's code included), so that a second run, or a second
repeat, loads it instead of recomputing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from eagerbench.records.model import CellSpec
from eagerbench.records.store import cache_root

# Which mode computes a prepared state, among the run's modes: the fastest at l-BFGS on a CPU
# first (the choice changes only how long preparing takes; every cell loads the same state).
PREFERRED = ("tf-graph", "jax-jit", "torch", "tf-xla", "torch-compile", "tf-eager", "jax")


def _program_modules(workload) -> list:
    """The modules a workload's program is made of: its own, the ``workloads`` modules it uses
    (l-BFGS: the autoencoder and the optimizer), and the data's where it reads data."""
    import inspect
    import sys
    import types

    first = sys.modules[workload.build.__module__]
    found, todo = {first.__name__: first}, [first]
    if workload.uses_data:
        from workloads import mnist

        found[mnist.__name__] = mnist
    while todo:
        for value in vars(todo.pop()).values():
            module = value if isinstance(value, types.ModuleType) else inspect.getmodule(value)
            if (module is not None and module.__name__.startswith("workloads.")
                    and module.__name__ not in found):
                found[module.__name__] = module
                todo.append(module)
    return [found[name] for name in sorted(found)]


def _code_hash(workload) -> str:
    """The source of the workload's program: a change to it invalidates the states it
    prepared, and a change to another workload does not (l-BFGS at batch 60k and history 100
    takes minutes to prepare)."""
    digest = hashlib.sha256()
    for module in _program_modules(workload):
        digest.update(module.__name__.encode())
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def key(cell, workload) -> dict:
    """Everything a prepared state depends on."""
    return {"workload": cell.workload,
            "params": {k: cell.params[k] for k in workload.prepare_params},
            "seed": cell.seed, "dtype": cell.dtype, "device": cell.device, "data": cell.data,
            "code": _code_hash(workload)}


def path_for(state_key: dict) -> Path:
    name = hashlib.sha256(json.dumps(state_key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_root()) / "prepared" / f"{state_key['workload']}-{name}.npz"


def choose_mode(modes: set[str]) -> str:
    """The mode that computes a start state: the run's fastest installed here (the job runs
    in the runner's own environment, also when the run's cells run in ``--env`` ones)."""
    from eagerbench.frameworks.modes import get_mode

    here = [m for m in PREFERRED if get_mode(m).installed()]
    return next((m for m in here if m in modes), here[0] if here else sorted(modes)[0])


def _compute(cell, workload, path: Path, mode: str, timeout: float, run_one) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    job = CellSpec(cell.workload, {k: cell.params[k] for k in workload.prepare_params}, mode,
               device=cell.device, dtype=cell.dtype, threads=cell.threads, seed=cell.seed,
               data=cell.data, job="prepare", save=str(partial))
    result = run_one(job, timeout)
    if not result.ok:
        partial.unlink(missing_ok=True)
        return {"error": f"preparing the start state in {mode} failed: {result.reason}"}
    os.replace(partial, path)
    return {"seconds": result.extra["seconds"]}


def attach(cells: list, timeout: float, say: Callable[[str], None], run_one=None) -> list:
    """The cells, each that needs a prepared state pointing at it (computed where missing, by
    ``run_one``: the run's executor, this machine by default)."""
    from eagerbench.execute.local import run_cell
    from workloads import get_workload

    run_one = run_one or run_cell
    modes = {c.mode for c in cells}
    states: dict[str, dict] = {}
    out = []
    for cell in cells:
        workload = get_workload(cell.workload)
        if workload.prepare is None or cell.job != "measure":
            out.append(cell)
            continue
        state_key = key(cell, workload)
        name = json.dumps(state_key, sort_keys=True)
        if name not in states:
            path, mode = path_for(state_key), choose_mode(modes)
            state = {"path": str(path), "by": mode, "cached": path.exists()}
            if not path.exists():
                label = " ".join(f"{k}={v}" for k, v in state_key["params"].items())
                say(f"eagerbench: preparing the {cell.workload} start state ({label}) in {mode}, "
                    f"once; cached in {path.parent}")
                state.update(_compute(cell, workload, path, mode, timeout, run_one))
            states[name] = state
        out.append(dataclasses.replace(cell, prepared=states[name]))
    return out
