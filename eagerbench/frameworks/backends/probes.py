"""What the why phase asks a backend: the ops a step dispatches, and probes of what one
dispatch, one launch, an op's size, a fused chain and memory traffic cost in this mode."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from eagerbench.frameworks.backends.compiling import Compiling


def count_error(errors: list) -> Optional[dict]:
    """``count_ops``'s answer when counting failed while the step went on (its state moved
    one step, as every mode's does): ``{"error": the first failure}``; None when none did."""
    return {"error": f"{type(errors[0]).__name__}: {errors[0]}"} if errors else None


class Probes(Compiling):
    """A backend's answers to the why phase (run after a cell's timed samples, never inside)."""

    # Frameworks whose eager ops can update a tensor in place (JAX's never do): such an op
    # makes no new tensor and costs less to dispatch, so it is counted and priced apart.
    updates_in_place = True

    def count_ops(self, fn: Callable, *args: Any) -> tuple[Optional[dict], Any]:
        """The framework ops one eager call of ``fn`` dispatches, as ``{"ops": all of them,
        "in_place": those updating a tensor in place, "sizes": {elements: ops}, "fresh":
        {bytes: results}}`` (an op's size is the most elements any of its operands or results
        has; ``fresh`` counts the results written to new memory, not views or updates), and
        what it returned; None where the framework offers no dispatch counter, and
        ``{"error": ...}`` where counting failed: the call runs to its end either way."""
        return None, fn(*args)

    def dispatch_probe(self, kind: str = "new", elements: int = 1,
                       tensors: int = 1) -> Optional[Callable[[], Any]]:
        """The cheapest thing this mode dispatches, as a call: in an eager mode one add on
        tensors of ``elements`` (one, by default), making a new one (``kind="new"``) or updating
        one in place (``"in_place"``: None where the framework has no such op); in a compiled
        mode one call of a trivial compiled function that takes and returns ``tensors`` tensors
        (a step's many: a call's price grows with them, in tf.function here 497 us with one
        tensor, 556 us with three), all but the first passed through unchanged, so handed back
        outside the graph where the mode does that for a step (jax-jit, tf-graph, tf-xla)."""
        # Each call takes the one before's result, as a step's calls and ops do: independent
        # calls, queued by an asynchronous framework (JAX), would run side by side on its threads.
        if self.compiled:
            last = [tuple(self.asarray(np.ones(elements)) for _ in range(max(1, tensors)))]
            function = self.compile_function(   # 1 stays 1; the others pass through
                lambda vs: (vs[0] * 0.5 + 0.5,) + tuple(vs[1:]), "probe")

            def launch():
                last[0] = function(last[0])
                return last[0]

            return launch
        last = [self.asarray(np.ones(elements))]
        zero = self.asarray(np.zeros(elements))
        if kind == "in_place":
            if not self.updates_in_place:
                return None
            buf = self.buffer(np.zeros(elements))
            return lambda: self.add_inplace(buf, zero)

        def add():
            last[0] = last[0] + zero
            return last[0]

        return add

    def sized_from(self) -> int:
        """The fewest elements from which an op's size, or a fused launch's, is priced: below,
        what a size costs beyond a one-element op is within a probe's noise, unless the
        framework hands smaller ops to another thread (JAX on a CPU)."""
        from eagerbench.records.why import SIZE_MIN_ELEMENTS

        return SIZE_MIN_ELEMENTS

    def launch_elements(self, step: Callable) -> int:
        """The fewest elements a compiled launch probe's tensors need for the framework to
        run it as it runs ``step`` (called once the step has run): 1, unless the framework
        hands a costlier program to another thread (JAX on a CPU)."""
        return 1

    def stream_add(self, elements: int) -> Callable[[], Any]:
        """A call of ``b += a`` on vectors of ``elements``, updating ``b`` in place: memory
        traffic at streaming bandwidth when the vectors are larger than the caches."""
        buf, x = self.buffer_full(elements, 0.0), self.full(elements, 1.0 / 1024)
        return lambda: self.add_inplace(buf, x)

    # Whether a compiled graph runs its ops one by one, each handed to a kernel by the
    # framework's executor (tf.function without XLA), rather than fused into a few loops: its
    # ops are then counted and priced inside a graph.
    @property
    def runs_graph_ops(self) -> bool:
        return False

    def graph_op_probe(self, ops: int, elements: int = 1) -> Optional[Callable[[], Any]]:
        """In a mode whose graphs run their ops one by one: a call of a compiled chain of
        ``ops`` in-place adds of ones on a buffer of ``elements``, which returns the buffer's
        value (each call adds ``ops``); None in other modes."""
        if not self.runs_graph_ops:
            return None
        buf, ones = self.buffer(np.zeros(elements)), self.asarray(np.ones(elements))

        def chain(v):
            for _ in range(ops):
                self.add_inplace(buf, v)
            return buf

        function = self.compile_function(chain, f"graph_op_probe_{ops}")
        return lambda: function(ones)

    @property
    def fuses_ops(self) -> bool:
        """Whether this mode's compiler fuses a step's element-wise ops into loops (XLA,
        Inductor), rather than running them one by one (tf.function, a CUDA graph's replay)."""
        return self.compiled and not self.runs_graph_ops

    def fused_add_probe(self, adds: int, elements: int) -> Optional[Callable[[], Any]]:
        """In a mode that fuses: a call of a compiled chain ``b + a + a + ...`` of ``adds`` adds
        on vectors of ``elements``, each call taking the one before's result (its values grow
        by ``adds / 1024``, exactly); None in other modes."""
        if not self.fuses_ops:
            return None
        a, last = self.asarray(np.full(elements, 1.0 / 1024)), [self.asarray(np.zeros(elements))]

        def chain(operands):
            a, b = operands
            for _ in range(adds):
                b = b + a
            return b

        function = self.compile_function(chain, f"fused_add_probe_{adds}")

        def call():
            last[0] = function((a, last[0]))
            return last[0]

        return call

    def reset_peak_device_memory(self) -> None:
        """Start a new high-water mark of device memory (GPU only)."""

    def peak_device_memory(self) -> Optional[int]:
        """Bytes of device memory at the high-water mark since the last reset (None on a CPU)."""
        return None
