"""``eagerbench.measure``: a run from Python, for notebooks and tests (pyperf's ``bench_func``,
across execution modes). It plans, measures in worker processes and writes a run folder exactly
as ``eagerbench run`` does, and returns the same typed records."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from eagerbench.frameworks import facts
from eagerbench.records import host
from eagerbench.records.limits import MachineLimits
from eagerbench.records.model import Record
from eagerbench.report import cell_table, exports, summary
from eagerbench.report.rows import CellRow
from eagerbench.workload import Workload


@dataclass(frozen=True)
class Measured:
    """What ``measure`` returns: every record, each cell's typed row (``rows``, with its
    ratios' intervals and flags), and the run folder."""

    records: tuple[Record, ...]
    rows: tuple[CellRow, ...]
    folder: Path

    @property
    def cells(self) -> pd.DataFrame:
        """The rows as ``cells.csv``'s table (its columns: ``docs/results-format.md``)."""
        return exports.cells_frame(list(self.rows))

    def summary(self) -> pd.DataFrame:
        """The table of every cell, as a workload page shows it."""
        return cell_table.summary_table(list(self.rows))


def reference_of(workload: Workload) -> str:
    """Where worker processes can import a Workload object from: ``file.py:NAME`` or
    ``module:NAME``."""
    modules = [sys.modules.get(getattr(workload.step_function, "__module__", ""))]
    for module in [m for m in modules if m] + list(sys.modules.values()):
        for attr, value in list(vars(module).items()):
            if value is workload:
                path = getattr(module, "__file__", None)
                if path and (module.__name__.startswith("eagerbench_user_")
                             or module.__name__ == "__main__"):
                    return f"{path}:{attr}"
                return f"{module.__name__}:{attr}"
    raise ValueError(f"workload {workload.name!r} is not defined at the top level of a file or "
                     f"module: worker processes import it from there")


def _name(workload) -> str:
    import workloads

    if isinstance(workload, Workload):
        if workload.name in workloads.builtin_workloads():
            return workload.name
        workload = reference_of(workload)
    if workloads.is_reference(workload):
        return workloads.register([workload])[0]
    return workload


def measure(workload, *, modes=None, params: Optional[dict] = None, repeat: int = 5,
            iters: Optional[int] = None, warmup: Optional[int] = None,
            threads: Optional[int] = None, device: str = "cpu", dtype: str = "float32",
            seed: int = 1, min_time_s: float = 0.2, why: bool = True, limits: bool = True,
            out=None, timeout: float = 900.0, progress: bool = False,
            executor="local", grid: str = "default") -> Measured:
    """Measure a workload in every mode that can run it (or ``modes``), each cell in ``repeat``
    worker processes, through the same session as ``eagerbench run``: the same checks, the
    machine's limits first (``limits``), the why phase (``why``), the same run folder.

    ``workload`` is a name, ``"path/to/file.py[:NAME]"``, ``"module:NAME"``, or a ``Workload``
    defined at the top level of a file or module. ``params`` maps parameter names to a value
    or a list of values (a grid); ``grid="full"`` runs every value a workload offers where
    ``params`` names none. The run folder is ``out`` (a run already there is kept, as
    with ``eagerbench run --out``) or a temporary folder. Raises ``eagerbench.plan.PlanError``
    or ``workloads.WorkloadError`` on bad input, ``eagerbench.session.SessionError`` when the
    run cannot be written.
    """
    from eagerbench import session
    from eagerbench.execute import executors
    from eagerbench.plan import grid as planner

    runner = executors.create(executor) if isinstance(executor, str) else executor
    name = _name(workload)
    values = {k: (list(v) if isinstance(v, (list, tuple)) else [v])
              for k, v in (params or {}).items()}
    threads = threads or host.default_threads()
    cells, skipped = planner.plan([name], list(modes or []), values, iters=iters, warmup=warmup,
                                  repeat=repeat, threads=threads, device=device, dtype=dtype,
                                  seed=seed, data=None, gc_mode="on", min_time_s=min_time_s,
                                  why=why, grid=grid)
    settings = session.run_settings(
        device=device, dtype=dtype, threads=threads, seed=seed, repeat=repeat,
        min_time_s=min_time_s, why=why, command=f"eagerbench.measure({name!r})",
        skipped=tuple(skipped), grid=grid)
    target = Path(out) if out else Path(tempfile.mkdtemp(prefix="eagerbench-"))
    started = time.perf_counter()
    opened = session.open_new(target, session.header_env(settings, cells, runner, limits,
                                                         _quiet))
    opened.started = started
    outcome = session.execute(cells, opened, runner, timeout, progress, _quiet)
    run = facts.open_run(outcome.target)
    records = run.latest()
    found = summary.summarize(records, MachineLimits.from_json(run.env().get("limits")))
    return Measured(tuple(records), tuple(found.rows), outcome.target)


def _quiet(line: str) -> None:
    """Lines a run says beside its progress: to stderr, as the command line does."""
    print(line, file=sys.stderr)
