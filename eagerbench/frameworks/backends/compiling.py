"""How a mode runs a step: unchanged (eager) or traced and compiled, and what its compiler did
(graphs, compiles and their seconds, donated buffers, caches)."""

from __future__ import annotations

from typing import Callable, Optional

from eagerbench.frameworks.backends.ops import ArrayOps
from eagerbench.records.model import CompilerCounts, Donation


def passed_through(inputs: list, outputs: list) -> list[Optional[int]]:
    """Per output leaf of a traced step, the position of the input leaf it is (returned
    unchanged), or None where the step computed it: a compiler copies an input it returns,
    so those are handed back outside the compiled function (``rejoined``)."""
    position = {id(x): i for i, x in enumerate(inputs)}
    return [position.get(id(x)) for x in outputs]


def rejoined(passed: list[Optional[int]], inputs: list, computed) -> list:
    """The step's output leaves: the inputs ``passed_through`` names, the ``computed`` ones
    (the compiled function's outputs, in order) between them."""
    computed = iter(computed)
    return [inputs[i] if i is not None else next(computed) for i in passed]


class Compiling(ArrayOps):
    """A backend's execution: a step as its mode runs it, and its compiler's counters."""

    # Whether a compiled step turns ``cond``/``fori_loop`` into graph control flow (tf.function,
    # jax.jit). Where it does not (torch.compile), a workload with data-dependent control flow
    # compiles only its straight-line parts.
    graph_control_flow: bool = True

    def compile_step(self, fn: Callable, name: str = "step") -> Callable:
        """The step as this mode runs it: unchanged in eager modes, traced/compiled otherwise."""
        return fn

    def compile_function(self, fn: Callable, name: str = "function") -> Callable:
        """A plain function (tensors in, tensors out) as this mode runs it."""
        if not self.compiled:
            return fn
        step = self.compile_step(lambda st, mem: (fn(st["x"]), mem), name)
        return lambda x: step({"x": x}, {})[0]

    def keep_eager(self, fn: Callable, compiled: Callable) -> Callable:
        """``compiled``, remembering the Python step it was built from (``eager_step``)."""
        self._eager_steps[id(compiled)] = fn
        return compiled

    def eager_step(self, step: Callable) -> Callable:
        """The Python step a compiled step was built from (an eager step is its own)."""
        return self._eager_steps.get(id(step), step)

    def graph_diagnostics(self) -> CompilerCounts:
        """Counters of the compiler so far in this process (cumulative; the worker takes their
        change per cell): ``graphs`` compiled, ``graph_breaks`` by reason, and the compile
        time split into phases where the framework times them."""
        return CompilerCounts(graphs=self.trace_count()) if self.compiled else CompilerCounts()

    def trace_count(self) -> int:
        """How many times compiled steps have been traced (Python run to build a graph) so far."""
        return 0

    def watch_traces(self, counter: Callable[[], int]) -> None:
        """Count the traces of a step that a library compiles itself (Keras: ``counter`` is
        how often its step's Python ran). A backend whose own counter sees only the functions
        it compiled (TensorFlow, JAX) adds these to ``trace_count``; PyTorch's counts every
        graph Dynamo makes in the process already."""
        self._watched.append(counter)

    def watched_traces(self) -> int:
        return sum(counter() for counter in self._watched)

    def compile_events(self) -> dict:
        """Backend compiles so far in this process: ``count``, and ``seconds`` where the framework
        times them (JAX: XLA compiles; torch: Dynamo frame compiles; TensorFlow: traces, timed
        while tracing only). A compile with no new trace (JAX recompiling for a committed input)
        shows here and not in ``trace_count``."""
        return {"count": self.trace_count(), "seconds": None}

    def donation(self) -> Optional[Donation]:
        """``{"donated": n, "reused": k, "copied_bytes": b}``: buffers handed to compiled steps to
        update in place, how many the outputs really reuse (checked after each step's first
        call), and the bytes of those that are not."""
        return None

    def reset(self) -> None:
        """Forget compiled graphs and caches, so that the next cell in this process compiles
        its own from scratch (``torch._dynamo.reset``, ``jax.clear_caches``)."""

    def compile_cache(self) -> dict:
        """Hits and misses of an on-disk compile cache, where the framework keeps one."""
        return {}
