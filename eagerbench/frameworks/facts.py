"""The facts a report needs from the code of the day, derived once, when a cell is measured:
the mode's label and eager twin, and the work one call does (``records.model.Facts``)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from eagerbench import presentation
from eagerbench.records import runfile
from eagerbench.records.model import CellResult, CellSpec, Facts

DEFAULT_OPTIONS = {"compile_mode": "default", "allocator": "default"}
SAMPLE_FIELDS = ("ns", "calls", "step", "gc_collections", "gc_ns")


# Settings every mode takes, shown in its label when set: the allocator and the environment
# (``--env``, by its label: ``jax-jit @jax==0.4.30``).
PROCESS_SETTINGS = {"allocator": "+", "env": "@"}


def mode_label(spec: CellSpec) -> str:
    """The mode, with each setting that differs from the default appended (``torch +thp``,
    ``jax @jax==0.4.30``)."""
    from eagerbench.frameworks.modes import get_mode

    taken = set(get_mode(spec.mode).options)
    tags = [f"{PROCESS_SETTINGS.get(k, '+')}{v}" for k, v in (spec.options or {}).items()
            if v is not None and v != DEFAULT_OPTIONS.get(k)
            and (k in taken or k in PROCESS_SETTINGS)]
    return " ".join([spec.mode] + tags)


def eager_twin(label: str) -> str | None:
    """What a mode label's eager tax is read against: the eager mode of its framework with the
    same settings; for an eager mode with settings, the same mode without them."""
    from eagerbench.frameworks.modes import get_mode

    base, *tags = label.split(" ")
    mode = get_mode(base)
    if mode.baseline != base:
        return " ".join([mode.baseline] + tags)
    return base if tags else None


def observed_means(result: CellResult) -> dict:
    """The mean of each numeric value observed after the timed samples (l-BFGS's pairs)."""
    values = defaultdict(list)
    for sample in result.timed:
        for k, v in sample.observed.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values[k].append(v)
    return {k: float(np.mean(v)) for k, v in values.items()}


def derive(spec: CellSpec, result: CellResult) -> Facts:
    """The facts of a measured cell (raises KeyError for an unknown workload or mode)."""
    from eagerbench.frameworks.modes import get_mode
    from workloads import get_workload

    mode = get_mode(spec.mode)
    workload = get_workload(spec.workload)
    label = mode_label(spec)
    work = workload.work(spec.params, spec.dtype, observed_means(result)) if result.ok else None
    return Facts(label=label, framework=mode.framework, eager_twin=eager_twin(label),
                 compiled=mode.compiled,
                 flops=work.flops if work else None, bytes=work.bytes if work else None,
                 ops=work.ops if work else None, footprint=work.footprint if work else None,
                 arithmetic=work.arithmetic if work else "matmul",
                 shown=tuple(workload.shown),
                 views=tuple(presentation.to_json(v) for v in workload.views))


def open_run(where: Path | str) -> runfile.Run:
    """A stored run, as ``runfile.read`` reads it, a schema-1 run's facts derived by today's
    code: how every reader opens a run."""
    return runfile.read(where, derive)
