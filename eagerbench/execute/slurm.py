"""The Slurm executor: every worker process is a Slurm job on a node of its own, via submitit.

Each batch of cells (one framework, one repeat: one worker process locally) becomes one task of
a submitit job array, on an exclusive node by default: a benchmark must not share its node. On
the node, ``measure_on_node`` runs the same ``executors.local.run_batch`` as the local executor, and
appends each cell's result to a stream file in the run's folder the moment it lands; the
submitting process tails those files, so records reach the store as cells finish, not when a
job ends, and a job cancelled half-way keeps the cells it measured.

Job states come from ``squeue`` (``SqueueWatcher``), not from submitit's default ``sacct``:
``sacct`` needs Slurm's accounting database, which small clusters (and the test cluster of
``scripts/slurm_local.sh``) do not run; submitit then warns on every poll. ``squeue --states=all``
knows every job for ``MinJobAge`` after it ends, and a finished job's result file is read first.

The run folder must be on a file system the nodes share (as submitit's own folder must be).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Generator, Iterator, Optional

from eagerbench.execute.executors import Monitor, Results
from eagerbench.execute.local import failed
from eagerbench.execute.venvs import EnvironmentSet
from eagerbench.records.model import CellResult, CellSpec

QUEUED = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
          "SUSPENDED", "UNKNOWN")
RUNNING = ("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING")
# What a job's end means for the cells it had not measured yet (one line each).
ENDINGS = {
    "CANCELLED": "Slurm job {job} was cancelled (scancel) before it measured this cell",
    "PREEMPTED": "Slurm job {job} was pre-empted before it measured this cell",
    "NODE_FAIL": "Slurm job {job} ended because its node {node} failed",
    "BOOT_FAIL": "Slurm job {job} could not boot its node {node}",
    "TIMEOUT": "Slurm job {job} hit its time limit ({minutes} min; raise --time-limit)",
    "DEADLINE": "Slurm job {job} passed its deadline",
    "OUT_OF_MEMORY": "Slurm job {job} ran out of memory on {node}",
    "FAILED": "Slurm job {job} failed on {node}: {detail}",
    "COMPLETED": "Slurm job {job} ended without a result for this cell: {detail}",
    "VANISHED": "Slurm job {job} left the queue without a result (purged, or the cluster "
                "restarted)",
}
POLL_S = 1.0
# How long a job whose result file exists may take to show its end in squeue.
SETTLE_S = 30.0
# How sbatch refusing a job reaches us through submitit.
SUBMISSION_ERRORS = (subprocess.CalledProcessError, OSError, RuntimeError)


@functools.lru_cache(maxsize=None)
def _submitit():
    """submitit's executor and job classes, with job states read by squeue (see the module
    docstring); one watcher, so one squeue call polls every job."""
    import submitit
    from submitit.slurm import slurm as submitit_slurm

    class SqueueWatcher(submitit_slurm.SlurmInfoWatcher):
        def _make_command(self) -> Optional[list[str]]:
            ids = sorted({x.split("_")[0] for x in self._registered - self._finished})
            if not ids:
                return None
            return ["squeue", "--states=all", "--array", "-o", "%i|%T|%N", "-j", ",".join(ids)]

        def read_info(self, string) -> dict:
            text = string.decode() if isinstance(string, bytes) else string
            lines = text.splitlines()
            return super().read_info("\n".join(["JobID|State|NodeList"] + lines[1:]))

    class SqueueJob(submitit.SlurmJob):
        watcher = SqueueWatcher(delay_s=POLL_S * 2)

    class Executor(submitit.SlurmExecutor):
        job_class = SqueueJob

    return Executor, SqueueJob


def _watched(jobs: list, folder) -> list:
    """The jobs as ``SqueueJob``s: submitit builds the tasks of an array as plain ``SlurmJob``s,
    whose watcher would call sacct."""
    job_class = _submitit()[1]
    return [job if isinstance(job, job_class) else
            job_class(folder=folder, job_id=job.job_id, tasks=job._tasks) for job in jobs]


# --- on the node ---------------------------------------------------------------------------------

def node_identity() -> dict:
    """This node's host fingerprint and the Slurm job measuring on it."""
    from eagerbench.records import host

    fingerprint = host.fingerprint({"cpu": host.cpu_model(), "cpu_count": os.cpu_count(),
                                    "memory_gib": host.memory_gib(), "gpus": host.gpus(),
                                    "platform": os.uname().sysname})
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    return {"host": fingerprint, "slurm": {"job_id": job, "node": socket.gethostname(),
                                    "partition": os.environ.get("SLURM_JOB_PARTITION")}}


def _measure_limits_once(cells: list[CellSpec], folder: Path, host: dict) -> None:
    """This host type's peak and bandwidth, measured by the first job that lands on one."""
    from eagerbench.records import host as hosts
    from eagerbench.worker import machine

    path = folder / f"{hosts.key(host)}.json"
    if path.exists():
        return
    measured = machine.probe_limits(cells[0].threads, cells[0].device,
                                    dtypes=tuple(dict.fromkeys(c.dtype for c in cells)))
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"host": host, "limits": measured}))
    os.replace(partial, path)


class StoppedBySlurm(Exception):
    pass


def _stopped_by_slurm(signum, frame):
    raise StoppedBySlurm()


def measure_on_node(specs: list[dict], timeout: float, stream: str,
                    limits_dir: Optional[str]) -> int:
    """A Slurm job's body: measure the batch in worker processes on this node, appending
    ``{"index", "results"}`` lines to ``stream`` (flushed and synced) as each cell lands."""
    from eagerbench.execute.local import run_batch, warm_compiler

    cells = [CellSpec.from_json(s) for s in specs]
    # Slurm ends a job (scancel, a node failure, pre-emption, the time limit) with SIGTERM to
    # all its processes: the worker dies of it too, and that death is not the cell's failure.
    # Stop without writing it; the submitting side gives the cells the job's own end.
    signal.signal(signal.SIGTERM, _stopped_by_slurm)
    identity = node_identity()
    if limits_dir:
        _measure_limits_once(cells, Path(limits_dir), identity["host"])
    with tempfile.TemporaryDirectory(prefix="eagerbench-caches-") as cache, \
            open(stream, "a") as out:
        warm_compiler(cells, cache)   # the compiler's one-time set-up, as locally
        for index, (_, results) in enumerate(run_batch(cells, timeout, cache_dir=cache)):
            line = [replace(r, process={**r.process, **identity}).to_json() for r in results]
            out.write(json.dumps({"index": index, "results": line}) + "\n")
            out.flush()
            os.fsync(out.fileno())
    return len(cells)


def prepare_on_node(spec: dict, timeout: float) -> CellResult:
    """A Slurm job's body for one job that is not a measurement (a prepared state)."""
    from eagerbench.execute.local import run_cell

    return run_cell(CellSpec.from_json(spec), timeout)


# --- on the submitting machine -------------------------------------------------------------------

class SlurmError(Exception):
    """The cluster cannot take the run at all (no sbatch, an unknown partition)."""


def check_cluster(partition: Optional[str]) -> None:
    """Fail before anything is measured when the cluster cannot be reached or lacks the
    partition (a bad partition rejected later is recorded per cell)."""
    if shutil.which("sbatch") is None:
        raise SlurmError("--executor slurm: sbatch is not on PATH (run on a Slurm login node, "
                         "or start scripts/slurm_local.sh up)")
    if partition and shutil.which("sinfo"):
        try:
            proc = subprocess.run(["sinfo", "--noheader", "-o", "%R"], capture_output=True,
                                  text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return
        known = set(proc.stdout.split())
        if proc.returncode == 0 and known and partition not in known:
            raise SlurmError(f"--partition {partition}: no such Slurm partition (this cluster "
                             f"has {', '.join(sorted(known))})")


@dataclass
class _Task:
    """One submitted batch: its job, the cells it measures, and how far its stream was read."""

    cells: list[CellSpec]
    stream: Path
    job: Any = None               # submitit's Job once submitted
    error: Optional[str] = None     # sbatch refused it
    offset: int = 0
    landed: set = field(default_factory=set)
    held: dict = field(default_factory=dict)
    seen_in_queue: bool = False
    result_seen: Optional[float] = None   # when its job's result file was first seen
    ended: bool = False


@dataclass(frozen=True)
class SlurmOptions:
    """What the jobs ask Slurm for (the run's header records them as the executor's settings)."""

    partition: Optional[str] = None
    constraint: Optional[str] = None
    gres: Optional[str] = None
    time_limit: int = 60          # minutes per job
    account: Optional[str] = None
    max_jobs: int = 16            # array jobs running at once
    exclusive: bool = True        # a node to itself: no neighbour shares its cores
    limits: bool = True           # probe each node's memory and compute limits

    def parameters(self, parallelism: int) -> dict:
        """submitit's parameters for an array of ``parallelism`` jobs at once."""
        params: dict = {"time": int(self.time_limit), "array_parallelism": parallelism,
                        "job_name": "eagerbench", "mem": "0", "use_srun": False,
                        "additional_parameters": {"no_requeue": True}}
        if self.exclusive:
            params["exclusive"] = True
        for name in ("partition", "constraint", "gres", "account"):
            if getattr(self, name):
                params[name] = getattr(self, name)
        return params


class SlurmExecutor:
    name = "slurm"

    def __init__(self, folder: Optional[str] = None, **options):
        self._folder = Path(folder) if folder else None
        self.options = SlurmOptions(**options)

    @property
    def folder(self) -> Path:
        if self._folder is None:
            raise RuntimeError("the Slurm executor has no folder: call at(folder, ...) first")
        return self._folder

    def settings(self) -> dict:
        return {"name": self.name, **asdict(self.options)}

    def at(self, folder: Path, environments: EnvironmentSet) -> "SlurmExecutor":
        """This executor writing its jobs' files under ``folder`` (the run's own folder); its
        nodes run this checkout's environment (``--env`` runs locally only)."""
        if environments.built or environments.failed:
            raise ValueError("--env runs with the local executor only")
        self._folder = Path(folder) / "slurm"
        return self

    def _executor(self, parallelism: int):
        executor = _submitit()[0](folder=str(self.folder / "jobs" / "%j"), max_num_timeout=0)
        executor.update_parameters(**self.options.parameters(parallelism))
        return executor

    # -- jobs that are not measurements --
    def run_one(self, cell: CellSpec, timeout: float) -> CellResult:
        executor = self._executor(1)
        try:
            job = executor.submit(prepare_on_node, cell.to_json(), timeout)
        except SUBMISSION_ERRORS as exc:
            return CellResult("failed", reason=_refusal(exc))
        try:
            return job.result()
        except Exception as exc:   # noqa: BLE001 - the job's end, in one line
            return CellResult("failed", reason=_job_failure(job, exc))

    # -- measurements --
    def run_batches(self, batches: list[list[CellSpec]], timeout: float,
                    progress: Monitor) -> Generator[tuple[CellSpec, Results], None, None]:
        tasks = self._submit(batches, timeout, progress)
        try:
            while not all(t.ended for t in tasks):
                for task in tasks:
                    yield from self._drain(task)
                progress.jobs(self._counts(tasks))
                if not all(t.ended for t in tasks):
                    time.sleep(POLL_S)
        finally:
            self._cancel([t for t in tasks if not t.ended], progress)

    def _submit(self, batches, timeout, progress) -> list[_Task]:
        streams = self.folder / "streams" / time.strftime("%Y%m%d-%H%M%S")
        streams.mkdir(parents=True, exist_ok=True)
        limits_dir = None
        if self.options.limits:
            limits_dir = self.folder / "limits"
            limits_dir.mkdir(parents=True, exist_ok=True)
        tasks = [_Task(batch, streams / f"{i}.jsonl") for i, batch in enumerate(batches)]
        for task in tasks:
            task.stream.touch()
        executor = self._executor(max(1, self.options.max_jobs))
        try:
            jobs = executor.map_array(
                measure_on_node, [[c.to_json() for c in t.cells] for t in tasks],
                [timeout] * len(tasks), [str(t.stream) for t in tasks],
                [str(limits_dir) if limits_dir else None] * len(tasks))
        except SUBMISSION_ERRORS as exc:   # sbatch's refusal becomes every cell's reason
            reason = _refusal(exc)
            progress.say(f"eagerbench: sbatch refused the jobs: {reason}")
            for task in tasks:
                task.error = reason
            return tasks
        for task, job in zip(tasks, _watched(jobs, executor.folder)):
            task.job = job
        progress.say(f"eagerbench: submitted {len(jobs)} Slurm job(s) "
                     f"(array {jobs[0].job_id.split('_')[0]}), files in {self.folder}")
        return tasks

    def _drain(self, task: _Task) -> Iterator[tuple[CellSpec, Results]]:
        """The task's newly streamed results; once its job has ended, the cells it never
        reached, each failed with the job's end as the reason."""
        if task.ended:
            return
        if task.error is not None:
            task.ended = True
            for cell in task.cells:
                yield cell, failed(f"sbatch refused the job: {task.error}")
            return
        state = _state(task.job)
        task.seen_in_queue |= state != "UNKNOWN"
        yield from self._landed(task)
        if not self._finished(task, state):
            return
        yield from self._landed(task)   # lines written as it ended
        task.ended = True
        if state not in ("COMPLETED", "FAILED", "UNKNOWN"):
            task.held.clear()   # killed by the job's end: the job's end is the reason
        for index, result in task.held.items():
            task.landed.add(index)
            yield task.cells[index], result
        reason = None
        for index, cell in enumerate(task.cells):
            if index not in task.landed:
                reason = reason or _job_failure(task.job, None, state, self.options.time_limit)
                yield cell, failed(reason, _tail(task.job))

    @staticmethod
    def _finished(task: _Task, state: str) -> bool:
        """Whether the task's job has ended. Its result file comes first, but its state is read
        from a cache polled every few seconds: a job killed by a node failure writes that file
        within a second, while the cache may still say PENDING. The job's end is its reason, so
        wait up to ``SETTLE_S`` for squeue to record it."""
        if _ended(state) or (task.seen_in_queue and state == "UNKNOWN"):
            return True
        if not task.job.paths.result_pickle.exists():
            return False
        if task.result_seen is None:
            task.result_seen = time.monotonic()
        return time.monotonic() - task.result_seen > SETTLE_S

    def _landed(self, task: _Task) -> Iterator[tuple[CellSpec, Results]]:
        """Newly streamed results; a worker killed by a signal is held back until the job's
        end says whether Slurm killed it (see ``measure_on_node``)."""
        for index, results in self._read_stream(task):
            if results[0].status == "failed" and "killed by SIG" in results[0].reason:
                task.held[index] = results
                continue
            task.landed.add(index)
            yield task.cells[index], results

    @staticmethod
    def _read_stream(task: _Task) -> Iterator[tuple[int, Results]]:
        with open(task.stream) as stream:
            stream.seek(task.offset)
            text = stream.read()
        complete = text[:text.rfind("\n") + 1]   # a line still being written waits
        task.offset += len(complete.encode())
        for line in complete.splitlines():
            entry = json.loads(line)
            yield entry["index"], tuple(CellResult.from_json(r) for r in entry["results"])

    @staticmethod
    def _counts(tasks: list[_Task]) -> dict[str, int]:
        counts = {"queued": 0, "running": 0, "done": 0}
        for task in tasks:
            if task.ended:
                counts["done"] += 1
            elif _state(task.job, "cache") in RUNNING:
                counts["running"] += 1
            else:
                counts["queued"] += 1
        return counts

    @staticmethod
    def _cancel(tasks: list[_Task], progress) -> None:
        ids = sorted({t.job.job_id for t in tasks if t.job is not None})
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True)
            progress.say(f"eagerbench: cancelled {len(ids)} Slurm job(s) still queued or running")

    def hosts(self) -> list[dict]:
        """The host types the run's jobs measured on, each with its measured limits."""
        folder = self._folder / "limits" if self._folder else None
        if folder is None or not folder.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _state(job, mode: str = "standard") -> str:
    try:
        return job.watcher.get_state(job.job_id, mode=mode).split()[0]
    except Exception:   # noqa: BLE001 - squeue unreachable for a moment: unknown, retried
        return "UNKNOWN"


def _ended(state: str) -> bool:
    return state not in QUEUED and state not in RUNNING


def _tail(job) -> str:
    try:
        return job.paths.stderr.read_text()[-1500:]
    except OSError:
        return ""


def _refusal(exc: BaseException) -> str:
    """sbatch's own error line (submitit wraps it in a CalledProcessError or a message)."""
    text = getattr(exc, "output", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [ln.strip() for ln in str(text).splitlines() if "error" in ln.lower()]
    return (lines[-1] if lines else str(text).strip().splitlines()[-1])[:300]


def _job_failure(job, exc: Optional[BaseException], state: Optional[str] = None,
                 time_limit: object = "?") -> str:
    """Why a job gave no result for a cell, in one line."""
    state = state or _state(job, "force")
    node = "its node"
    try:
        info = job.watcher.get_info(job.job_id, mode="cache")
        node = info.get("NodeList") or node
    except Exception:   # noqa: BLE001
        pass
    detail = ""
    if exc is None:
        try:
            exc = job.exception()
        except Exception as err:   # noqa: BLE001 - no result file at all
            exc = err
    if exc is not None:
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        detail = lines[-1][:300] if lines else type(exc).__name__
    if state == "UNKNOWN":
        state = "VANISHED"
    template = ENDINGS.get(state, "Slurm job {job} ended in state " + state + ": {detail}")
    return template.format(job=job.job_id, node=node, detail=detail or "no output",
                           minutes=time_limit)
