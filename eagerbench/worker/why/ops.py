"""The ops a step dispatches per call, counted under the framework's dispatch counter in one
extra step of the warm-up (outside the clock): how many, how many in place, their sizes, and how
many write into new tensors."""

from __future__ import annotations

from typing import Optional

from eagerbench.records.why import Why
from eagerbench.worker.clock import GCWatch
from eagerbench.worker.loop import LiveCell, counted_call, keep
from eagerbench.worker.why.prices import diagnosed


def counts_ops(run: LiveCell) -> bool:
    """Whether ``run`` counts its own ops: a compiled mode that fuses runs the same program as
    its eager twin, which counts them; one whose graph runs them one by one counts (and
    prices) them itself."""
    return not run.backend.compiled or run.backend.runs_graph_ops


def count_ops(run: LiveCell, why: Why) -> list[str]:
    """One call of the run's program under the framework's dispatch counter, into ``why``.
    Returns notes on what could not be taken."""
    backend = run.backend

    def ops() -> Optional[float]:
        count, (run.st, run.mem) = backend.count_ops(backend.eager_step(run.task.step),
                                                     run.st, run.mem)
        backend.block((run.st, run.mem))
        if count and "error" in count:   # the step ran; its count did not
            raise RuntimeError(count["error"])
        why.ops_in_place = count["in_place"] if count else None
        why.op_sizes = {str(n): k for n, k in (count or {}).get("sizes", {}).items()}
        why.fresh_outputs = {str(n): k for n, k in (count or {}).get("fresh", {}).items()}
        return count["ops"] if count else None

    why.ops, note = diagnosed("ops", ops, None)
    return [note] if note else []


def count_round(runs: list[LiveCell], whys: list[Why], watch: GCWatch, graphs: bool) -> None:
    """One more step of every run, so that every mode takes the same steps before its check
    (its twin may be measured in another unit), and the ops' sizes are known before the
    timing, to be priced in the why phase (in every process: one cell's two processes,
    tf-graph at 1e5 elements, took 4.5 and 10.8 ms a call). A run that counts its ops makes it
    under the framework's dispatch counter: an eager mode's step after the warm-up
    (its first call stays a plain one), a graph's program (``graphs``), run eagerly, before
    its graph is first traced (a program that keeps a tensor made while tracing cannot run
    eagerly after: kfac in tf-graph, "out of scope"). A step that only calls compiled steps
    (l-BFGS's) has no program of its own: counted before the warm-up, it would compile
    there. The others (a mode that fuses) make it as a warm-up call, after the warm-up."""
    for run, why in zip(runs, whys):
        backend = run.backend
        graph_program = backend.compiled and backend.eager_step(run.task.step) \
            is not run.task.step
        if not counts_ops(run):
            if not graphs:
                keep(run, counted_call(run, 1, watch, "warmup"), run.warmup)
            continue
        if graph_program != graphs:
            continue
        compiled, reads = run.last_call_compiled, backend.host_reads
        why.notes.extend(count_ops(run, why))
        run.steps += 1
        if not graphs:   # a graph's program, run eagerly, reads values its graph does not
            run.host_reads += backend.host_reads - reads
        run.last_call_compiled = compiled   # the counted call is not the step's warm call
