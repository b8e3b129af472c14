"""The small per-framework interface that workloads are written against.

A workload is written once with these calls (plus Python's arithmetic operators, which every
framework's tensors support) and runs unchanged in every mode, the way the article ported l-BFGS
from PyTorch to TensorFlow by substituting API calls. Framework quirks stay in the subclasses.

State threading convention for compiled steps: a step is ``fn(st, mem) -> (st, mem)`` where ``st``
is a dict of small or immutable tensors and ``mem`` a dict of large buffers that a backend may
update in place (``buffer_write``, ``add_inplace``). In-place backends return the same buffer
objects; functional ones (JAX) return new arrays.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Optional

import numpy as np

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


def count_error(errors: list) -> Optional[dict]:
    """``count_ops``'s answer when counting failed while the step went on (its state moved
    one step, as every mode's does): ``{"error": the first failure}``; None when none did."""
    return {"error": f"{type(errors[0]).__name__}: {errors[0]}"} if errors else None


class Backend(abc.ABC):
    """One framework on one device with one dtype, in eager or compiled form."""

    framework: str = ""
    # Whether a compiled step turns ``cond``/``fori_loop`` into graph control flow (tf.function,
    # jax.jit). Where it does not (torch.compile), a workload with data-dependent control flow
    # compiles only its straight-line parts.
    graph_control_flow: bool = True

    def __init__(self, device: str, dtype: str, compiled: bool):
        self.device = device
        self.dtype_name = dtype
        self.compiled = compiled
        self.host_reads = 0   # device values read by Python control flow (host syncs)
        self._eager_steps: dict[int, Callable] = {}

    # --- set-up -----------------------------------------------------------------------------
    @abc.abstractmethod
    def threads(self) -> dict:
        """The thread counts the framework reports it is using."""

    def device_name(self) -> str:
        """A human-readable name of the device the backend computes on."""
        return self.device

    def native_device(self) -> Any:
        """The framework's own device object (for framework-native workloads)."""
        return self.device

    # --- data ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def asarray(self, array: np.ndarray) -> Any:
        """A tensor on this backend's device; floating arrays are cast to its dtype."""

    @abc.abstractmethod
    def to_numpy(self, tensor: Any) -> np.ndarray:
        """The tensor's value as a NumPy array (waits for the value to be ready)."""

    def full(self, n: int, value: float) -> Any:
        """A vector of ``n`` copies of ``value``, made by the framework where it can: copying a
        1 GiB vector from NumPy took TensorFlow 1.7 s here, each time."""
        return self.asarray(np.full(n, value, dtype=self.dtype_name))

    def to_float(self, tensor: Any) -> float:
        return float(self.to_numpy(tensor))

    def scalar(self, value: float) -> Any:
        """A 0-d tensor of this backend's dtype."""
        return self.asarray(np.asarray(value, dtype=np.float64))

    def index(self, value: int) -> Any:
        """An integer counter for loop bounds and buffer slots: a Python int in eager modes,
        a tensor in compiled ones (a Python int there would be baked into the trace)."""
        return value

    def int_min(self, a: Any, b: Any) -> Any:
        """``min(a, b)`` of two counters made by ``index``."""
        return min(a, b)

    # --- mutable buffers ------------------------------------------------------------------------
    @abc.abstractmethod
    def buffer(self, array: np.ndarray) -> Any:
        """A buffer initialised from ``array`` that ``buffer_write``/``add_inplace`` may mutate."""

    def buffer_full(self, n: int, value: float) -> Any:
        """A mutable vector of ``n`` copies of ``value`` (see ``full``)."""
        return self.buffer(np.full(n, value, dtype=self.dtype_name))

    @abc.abstractmethod
    def buffer_write(self, buf: Any, i: Any, row: Any) -> Any:
        """``buf[i] = row``; returns the buffer (the same object for in-place backends)."""

    @abc.abstractmethod
    def buffer_read(self, buf: Any, i: Any) -> Any:
        """``buf[i]`` without copying where the framework allows it."""

    @abc.abstractmethod
    def add_inplace(self, buf: Any, x: Any) -> Any:
        """``buf += x``; returns the buffer."""

    # --- small scratch lists inside a step (the alphas of l-BFGS) -------------------------------
    def stack_new(self, size: int) -> Any:
        return [None] * size

    def stack_write(self, stack: Any, i: Any, value: Any) -> Any:
        stack[i] = value
        return stack

    def stack_read(self, stack: Any, i: Any) -> Any:
        return stack[i]

    # --- math -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def matmul(self, a: Any, b: Any) -> Any: ...

    @abc.abstractmethod
    def transpose(self, a: Any) -> Any: ...

    @abc.abstractmethod
    def sigmoid(self, a: Any) -> Any: ...

    @abc.abstractmethod
    def reshape(self, a: Any, shape: tuple) -> Any: ...

    @abc.abstractmethod
    def sum(self, a: Any) -> Any: ...

    @abc.abstractmethod
    def mean(self, a: Any) -> Any: ...

    @abc.abstractmethod
    def max(self, a: Any) -> Any: ...

    @abc.abstractmethod
    def dot(self, a: Any, b: Any) -> Any:
        """Inner product of two vectors, a 0-d tensor."""

    @abc.abstractmethod
    def minimum(self, a: Any, b: Any) -> Any: ...

    def axpy(self, alpha: Any, x: Any, y: Any) -> Any:
        """``y + alpha * x`` in the framework's cheapest form."""
        return y + alpha * x

    @abc.abstractmethod
    def value_and_grad(self, f: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, Any]]:
        """``x -> (f(x), df/dx)`` for a scalar function of one tensor, or of a list of tensors
        (then the gradient is a list aligned with it)."""

    # --- gradient features (the article's "do more things with gradients") ----------------------
    @abc.abstractmethod
    def nth_derivative(self, f: Callable[[Any], Any], n: int) -> Callable[[Any], Any]:
        """``x -> f^(n)(x)`` for an element-wise ``f``: the framework's gradient operation applied
        ``n`` times (each time to the sum of the previous derivative)."""

    @abc.abstractmethod
    def custom_gradient(self, forward: Callable, backward: Callable) -> Callable:
        """A function ``g(*xs) = forward(*xs)`` whose gradient is ``backward(xs, y, dy)``, a tuple
        with one gradient per input, written with the framework's own custom-gradient facility."""

    @abc.abstractmethod
    def rng_key(self, seed: int) -> Any:
        """Random-number state for ``normal``, seeded; threaded through steps like other state."""

    @abc.abstractmethod
    def normal(self, key: Any, shape: tuple) -> tuple[Any, Any]:
        """``(sample, new_key)``: standard normal numbers of this dtype from the framework's RNG."""

    @abc.abstractmethod
    def solve(self, a: Any, b: Any) -> Any:
        """``a^-1 @ b`` for a square, well-conditioned ``a``."""

    @abc.abstractmethod
    def eye(self, n: int) -> Any: ...

    @abc.abstractmethod
    def sqrt(self, a: Any) -> Any: ...

    @abc.abstractmethod
    def tanh(self, a: Any) -> Any: ...

    # --- convolutional nets (images are NHWC in NumPy; a backend may keep its own layout) ------
    @abc.abstractmethod
    def images(self, array: np.ndarray) -> Any:
        """A batch of images given as NHWC NumPy, in this backend's preferred layout."""

    @abc.abstractmethod
    def conv_kernel(self, array: np.ndarray) -> Any:
        """A convolution kernel given as HWIO NumPy, in the layout ``conv2d`` expects."""

    @abc.abstractmethod
    def conv2d(self, x: Any, w: Any, stride: int, pad: int) -> Any:
        """Cross-correlation with explicit symmetric zero padding (the same in every framework)."""

    @abc.abstractmethod
    def batch_norm(self, x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Any:
        """Training-mode batch normalisation over batch and space (biased variance)."""

    @abc.abstractmethod
    def relu(self, a: Any) -> Any: ...

    @abc.abstractmethod
    def spatial_mean(self, x: Any) -> Any:
        """Global average pooling: (batch, channels)."""

    @abc.abstractmethod
    def log_softmax(self, a: Any) -> Any:
        """Log-softmax over the last axis."""

    # --- control flow -----------------------------------------------------------------------------
    def host_bool(self, value: Any) -> bool:
        """A device boolean read by Python: a host sync, counted in ``host_reads``."""
        self.host_reads += 1
        return bool(value)

    def host_int(self, value: Any) -> int:
        """A device integer read by Python (a loop bound)."""
        return int(value)

    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
        """``true_fn(*operands) if pred else false_fn(*operands)``. Both branches return a tuple
        aligned with ``operands`` (an updated value in each position, buffers included)."""
        return true_fn(*operands) if self.host_bool(pred) else false_fn(*operands)

    def fori_loop(self, lower: Any, upper: Any, body: Callable[[Any, Any], Any], carry: Any) -> Any:
        """``for i in range(lower, upper): carry = body(i, carry)``; returns the carry."""
        for i in range(self.host_int(lower), self.host_int(upper)):
            carry = body(i, carry)
        return carry

    # --- execution --------------------------------------------------------------------------------
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

    # --- why: what a step issues, and what it holds ---------------------------------------------
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

    def graph_diagnostics(self) -> CompilerCounts:
        """Counters of the compiler so far in this process (cumulative; the worker takes their
        change per cell): ``graphs`` compiled, ``graph_breaks`` by reason, and the compile
        time split into phases where the framework times them."""
        return CompilerCounts(graphs=self.trace_count()) if self.compiled else CompilerCounts()

    def reset_peak_device_memory(self) -> None:
        """Start a new high-water mark of device memory (GPU only)."""

    def peak_device_memory(self) -> Optional[int]:
        """Bytes of device memory at the high-water mark since the last reset (None on a CPU)."""
        return None

    def trace_count(self) -> int:
        """How many times compiled steps have been traced (Python run to build a graph) so far."""
        return 0

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

    @abc.abstractmethod
    def block(self, tree: Any) -> None:
        """Wait until every tensor in ``tree`` is computed (device and async queues drained)."""
