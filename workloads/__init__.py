"""The benchmarked programs, one module each, each defining ``WORKLOAD``."""

from __future__ import annotations

import functools
import importlib
import pkgutil

from eagerbench.workload import Workload

# Display order; the default suite runs them in this order too.
_ORDER = ["lbfgs", "matmul", "elementwise", "higher-order", "custom-gradient", "kfac", "convnet"]


def all_workloads() -> dict[str, Workload]:
    """Every workload defined in this package, by name, in display order."""
    return dict(_discovered())


@functools.cache
def _discovered() -> tuple:
    """The package's modules, scanned and imported once per process (reports look a mode or
    workload up for every record)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        workload = getattr(module, "WORKLOAD", None)
        if isinstance(workload, Workload):
            found[workload.name] = workload
    rank = {name: i for i, name in enumerate(_ORDER)}
    return tuple(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def get_workload(name: str) -> Workload:
    workloads = all_workloads()
    if name not in workloads:
        raise KeyError(f"unknown workload {name!r} (known: {', '.join(workloads)})")
    return workloads[name]
