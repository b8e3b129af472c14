"""One run, from planned cells to a finished run folder: the single path that ``eagerbench run``
(new or ``--resume``) and ``eagerbench.measure`` both take.

In order: the folder and its lock, the header (environment, the machine's limits and its
contention, the plan), the cells on the executor, a second look at the limits when a cell beat
them (``beat_limits``), the footer, the report, and the run's place in its target folder. An
interrupt or a failed write keeps every record already written and says how to resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from eagerbench.execute import executors, start_states, venvs
from eagerbench.execute.executors import Executor
from eagerbench.execute.runner import run_cells, variant_specs
from eagerbench.frameworks import facts
from eagerbench.records import store
from eagerbench.records.limits import MachineLimits
from eagerbench.records.model import CellSpec, Record
from eagerbench.records.runfile import RAW, ResultsError, RunHeader, RunWriter
from eagerbench.records.settings import RunSettings
from eagerbench.report import build as report
from eagerbench.report import summary
from eagerbench.worker import machine


class SessionError(Exception):
    """A run that cannot start or finish, in one line for the user."""


class Interrupted(Exception):
    """The run was interrupted; what it measured is kept in ``folder``."""

    def __init__(self, folder: Path, target: Path) -> None:
        super().__init__(f"interrupted; the cells finished so far are in {folder}")
        self.folder, self.target = folder, target


@dataclass
class Outcome:
    """A finished run: its records (a resumed run's earlier ones too) and its report."""

    target: Path
    folder: Path
    records: list[Record]
    summary: pd.DataFrame
    kept_previous: Optional[Path] = None

    @property
    def failed(self) -> int:
        return sum(r.result.status == "failed" for r in self.records)


@dataclass
class Opened:
    """A run folder being written: where, its writer, its locks, and what its footer gets."""

    target: Path
    folder: Path
    writer: RunWriter
    locks: list = field(default_factory=list)
    footer: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    environments: venvs.EnvironmentSet = field(default_factory=venvs.EnvironmentSet)

    def release(self) -> None:
        for lock in self.locks:
            lock.release()


def run_settings(*, environments: Optional["Environments"] = None, **chosen) -> RunSettings:
    """The settings a run's header records, whichever front end started it: what was chosen,
    the user's workloads registered now, and the allocator as this process sees it."""
    import workloads
    from eagerbench.records import host

    return RunSettings(**chosen, user_workloads=tuple(workloads.registered()),
                       allocator_settings=host.allocator_settings(),
                       environments=environments.recorded() if environments else {})


@dataclass(frozen=True)
class Environments:
    """A run's ``--env`` environments: the specs its cells are planned in, and the set built
    for them before any cell runs."""

    specs: tuple[venvs.EnvSpec, ...] = ()
    prepared: venvs.EnvironmentSet = field(default_factory=venvs.EnvironmentSet)

    def recorded(self) -> dict:
        """What the run's header records of each environment."""
        out = {}
        for spec in self.specs:
            if spec.label in self.prepared.built:
                out[spec.label] = self.prepared.built[spec.label].to_json()
            else:
                out[spec.label] = {**spec.to_json(),
                                   "failed": self.prepared.failed.get(spec.label, "")}
        return out


def prepare_environments(texts: tuple[str, ...], executor: Executor,
                         say: Callable[[str], None]) -> Environments:
    """``--env``: each SPEC read and resolved (an unknown release or an unreachable index is a
    ``SessionError`` before anything is measured), then built or found in the cache. A build
    that fails is said and recorded; its cells fail with that reason and the others run."""
    if not texts:
        return Environments()
    if executor.name != "local":
        raise SessionError("--env runs with the local executor only")
    try:
        specs = tuple(dict.fromkeys(venvs.parse(text) for text in texts))
        labels = [spec.label for spec in specs]
        if len(set(labels)) != len(labels):
            raise SessionError(f"--env: two environments share the label "
                               f"{next(x for x in labels if labels.count(x) > 1)!r}")
        for spec in specs:
            venvs.check(spec)
    except venvs.EnvError as exc:
        raise SessionError(str(exc)) from None
    return Environments(specs, venvs.prepare(list(specs), say))


def header_env(run_settings: RunSettings, cells: list[CellSpec], executor: Executor,
               measure_limits: bool, say: Callable[[str], None]) -> dict:
    """The run's header environment: the settings, the machine's limits (measured here when
    the run is local and ``measure_limits``) and contention, and the plan (``--resume``
    finishes exactly these cells)."""
    from eagerbench.records import host

    settings = {**run_settings.to_json(), "executor": executor.settings()}
    if executor.name == "local":   # a cluster's jobs measure their own nodes
        if measure_limits:
            say("eagerbench: measuring this machine's matmul peak and bandwidth ...")
            settings["limits"] = machine.probe_limits(settings["threads"], settings["device"],
                                                 dtypes=(settings["dtype"],))
        settings["contention"] = {"before": machine.contention()}
    return {**host.record(settings), "plan": [c.to_json() for c in cells]}


def open_new(target: Path, env: dict,
             environments: Environments = Environments()) -> Opened:
    """A new run beside any run already in ``target`` (it takes its place once finished),
    its cells to run in ``environments``."""
    try:
        folder, lock = store.begin(target)
    except ResultsError as exc:
        raise SessionError(str(exc)) from None
    try:
        writer = RunWriter(folder / RAW, RunHeader.new(env))
    except ResultsError as exc:
        lock.release()
        raise SessionError(str(exc)) from None
    return Opened(target, folder, writer, [lock], environments=environments.prepared)


@dataclass
class Resumption:
    """An interrupted run, opened to finish: its planned cells, those still to measure, and
    the settings its executor ran with."""

    opened: Opened
    planned: list[CellSpec]
    todo: list[CellSpec]
    executor_settings: dict
    limits: bool
    torn: Optional[str] = None


def open_resume(folder: Path, rerun_failed: bool,
                say: Callable[[str], None] = lambda line: None) -> Resumption:
    """The interrupted run in ``folder``, locked, with the cells it did not finish (and the
    ``--env`` environments they run in, found in the cache or built again)."""
    import workloads

    if not store.holds_run(folder):
        raise SessionError(f"--resume {folder}: no {RAW} here (not an eagerbench run folder)")
    locks = [_lock(folder)] + ([_lock(folder.parent)] if store.is_staging(folder) else [])
    try:
        torn = store.set_aside_torn_tail(folder)
        previous = facts.open_run(folder)
        planned = previous.header.env.get("plan")
        if planned is None:
            raise ResultsError(f"{folder / RAW}: written before runs recorded their plan "
                               f"(schema {previous.header.schema}); nothing to resume")
        workloads.register(previous.header.env.get("user_workloads") or [])
        cells = [CellSpec.from_json(spec) for spec in planned]
        writer = RunWriter(folder / RAW, None)
    except (ResultsError, workloads.WorkloadError, ValueError, TypeError) as exc:
        for lock in locks:
            lock.release()
        raise SessionError(str(exc)) from None
    done = {rec.spec.identity() for rec in previous.latest() if rec.result.ok or not rerun_failed}
    todo = [c for c in cells if not all(v.identity() in done for v in variant_specs(c))]
    earlier = previous.footer or {}
    opened = Opened(folder.parent if len(locks) > 1 else folder, folder, writer, locks,
                    {"resumed": earlier.get("resumed", 0) + 1,
                     "earlier_wall_s": earlier.get("run_wall_s", 0.0)},
                    environments=venvs.prepare(venvs.specs_of(todo), say))
    where = previous.header.env.get("executor") or {}
    return Resumption(opened, cells, todo, where,
                      where.get("limits", bool(previous.header.env.get("limits"))), torn)


def _lock(folder: Path):
    try:
        return store.Lock(folder)
    except ResultsError as exc:
        raise SessionError(str(exc)) from None


def execute(cells: list[CellSpec], opened: Opened, executor: Executor, timeout: float,
            progress: bool, say: Callable[[str], None]) -> Outcome:
    """Measure ``cells`` into an opened run, then finish it: footer, report, and its place in
    its target. The cells' start states are prepared first (computed where no cache holds
    them), then the cells go to the executor once. Where a cell beat the limits measured
    before the run (``beat_limits``), they are measured again and the best of both kept."""
    executor = executor.at(opened.folder, opened.environments)
    try:
        ready = start_states.attach(cells, timeout, say, executor.run_one)
        run_cells(ready, opened.writer, timeout, executor, progress=progress)
        opened.writer.footer(_footer(opened, executor, say))
    except KeyboardInterrupt:
        opened.writer.close()
        _report_partial(opened.folder, say)
        opened.release()
        raise Interrupted(opened.folder, opened.target) from None
    except ResultsError as exc:
        opened.release()
        raise SessionError(f"{exc}; resume with `eagerbench run --resume {opened.folder}`") \
            from None
    opened.writer.close()
    return _finish(opened)


def _footer(opened: Opened, executor: Executor, say: Callable[[str], None]) -> dict:
    """The run's footer: hosts, wall time, contention after, limits measured again where a
    cell beat them."""
    run = facts.open_run(opened.folder)
    env = run.env()
    footer = {**opened.footer, **executors.hosts_footer(executor)}
    before = MachineLimits.from_json(env.get("limits"))
    if executor.name == "local" and before and summary.beat_limits(run.latest(), before):
        say("eagerbench: a cell beat the limits measured before the run, or ran faster than its "
            "kernels at their rates (taken in a slow spell?): measuring them again")
        again = MachineLimits.from_json(machine.probe_limits(env["threads"], env["device"],
                                                             dtypes=(env["dtype"],)))
        footer["limits"] = before.merged(again).to_json() if again else before.to_json()
    footer["run_wall_s"] = footer.pop("earlier_wall_s", 0.0) + time.perf_counter() \
        - opened.started
    if executor.name == "local":
        footer["contention"] = {**(env.get("contention") or {}), "after": machine.contention()}
    return footer


def _finish(opened: Opened) -> Outcome:
    """The report, then the run in its target's place (the previous one kept aside)."""
    try:
        summary = report.build(opened.folder)
        kept = store.promote(opened.folder, opened.target) \
            if opened.folder != opened.target else None
        records = facts.open_run(opened.target).latest()
    finally:
        opened.release()
    return Outcome(opened.target, opened.folder, records, summary, kept)


def _report_partial(folder: Path, say: Callable[[str], None]) -> None:
    """The report of an interrupted run, from what it measured (best effort)."""
    try:
        report.build(folder)
    except Exception as exc:  # noqa: BLE001 - the records are safe; the report is a bonus
        say(f"eagerbench: no report for the partial run: {exc}")
