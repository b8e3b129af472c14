"""JAX implementation of the backend interface: op-by-op dispatch, or ``jax.jit``.

JAX reads its platform settings at import: a JAX mode calls ``jax_setup.prepare`` before it imports
this module. JAX arrays are immutable: "in-place" buffer updates return new arrays (under ``jit``
with the buffers donated, XLA updates them in place). Op by op, the l-BFGS history is a Python
list of rows, as a JAX user would keep it; rewriting one row of an (m, n) array would copy all of
it.
"""

from __future__ import annotations

import inspect
import os
from collections import Counter
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from eagerbench.frameworks.backends.base import Backend
from eagerbench.frameworks.backends.compiling import passed_through, rejoined
from eagerbench.frameworks.backends.probes import count_error
from eagerbench.records.model import CompilerCounts, Donation

# XLA compiles in this process (count, and seconds of tracing, lowering and compiling), from
# JAX's monitoring events: a recompile with no new Python trace (a committed input, a new
# layout) shows here and nowhere else.
_COMPILES = {"count": 0, "seconds": 0.0}
_COMPILE_PHASES = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")


_PHASE_SECONDS = {"tracing": 0.0, "lowering": 0.0, "backend": 0.0}


def _on_duration(event: str, seconds: float, **kwargs) -> None:
    if event in _COMPILE_PHASES:
        _COMPILES["seconds"] += seconds
        _PHASE_SECONDS[list(_PHASE_SECONDS)[_COMPILE_PHASES.index(event)]] += seconds
    if event == _COMPILE_PHASES[-1]:
        _COMPILES["count"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_duration)

# Programs loaded from (or missed in) the persistent compilation cache: on in every process of
# a run but a setting's first (``worker.process.compile_cache_env``).
_CACHE = {"graph_hits": 0, "graph_misses": 0}
_CACHE_EVENTS = {"/jax/compilation_cache/cache_hits": "graph_hits",
                 "/jax/compilation_cache/cache_misses": "graph_misses"}


def _on_event(event: str, **kwargs) -> None:
    if event in _CACHE_EVENTS:
        _CACHE[_CACHE_EVENTS[event]] += 1


jax.monitoring.register_event_listener(_on_event)


INLINE_FLOPS = 1000         # XLA's CPU client: a program with fewer runs on the caller's thread
OFF_THREAD_ELEMENTS = 512   # a launch probe's ``x * 0.5 + 0.5`` on this many: 1,024 FLOPs


def _traceable(leaf: Any) -> bool:
    """Whether a leaf of ``st`` is a value ``jax.jit`` traces (an array or a float); anything
    else (an int, a string, a module's graph definition, an optimizer's functions) is handed
    to the step as it is, a static argument: a new value compiles again, as the guard reports."""
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, complex))


class _Static:
    """The static leaves of ``st`` and where they go: hashable, as ``jax.jit`` needs, compared
    by value where they can be and by identity where not (a module's graph definition)."""

    def __init__(self, treedef: Any, leaves: tuple[tuple[int, Any], ...]):
        self.treedef, self.leaves = treedef, leaves

    @staticmethod
    def _key(x: Any) -> Any:
        try:
            hash(x)
            return x
        except TypeError:
            return ("id", id(x))

    def __hash__(self) -> int:
        return hash((self.treedef, tuple((i, self._key(x)) for i, x in self.leaves)))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _Static) and self.treedef == other.treedef
                and len(self.leaves) == len(other.leaves)
                and all(i == j and (a is b or self._key(a) == self._key(b))
                        for (i, a), (j, b) in zip(self.leaves, other.leaves)))

    def leaves_with(self, traced: list) -> list:
        """Every leaf of ``st`` in order: the static ones here, the ``traced`` ones between."""
        out, it, static = [], iter(traced), dict(self.leaves)
        for i in range(len(self.leaves) + len(traced)):
            out.append(static[i] if i in static else next(it))
        return out


class JittedStep:
    """A step ``(st, mem) -> (st, mem)`` under ``jax.jit`` with the buffers in ``mem`` donated.

    Two things keep donation honest. Inputs of ``st`` that the step returns unchanged are handed
    back outside the jit: as outputs of the jit they would be copied, and XLA could give them a
    donated buffer of the same shape, so that the buffer meant to be updated in place is copied
    and a fresh one allocated on every step. And ``mem`` comes first among the outputs, since
    XLA hands each donated buffer to the first output of its shape and dtype. After the first
    call, ``donation`` says how many donated buffers the outputs really reuse. Leaves of ``st``
    that are not arrays are static arguments (``_traceable``).
    """

    def __init__(self, fn: Callable, on_trace: Callable[[], None]):
        self.fn = fn
        self.on_trace = on_trace
        self.forwarded: list = []     # per output leaf of st: the st input leaf it passes on
        self.st_def = None
        self.donation: Optional[Donation] = None
        self.arguments: Optional[tuple] = None   # the first call's arguments: shapes, dtypes
        self._cost: dict | None = None   # XLA's cost analysis of the first call's executable
        self._jitted = jax.jit(self._traced, donate_argnums=(1,), static_argnums=(2,))

    def _traced(self, traced, mem, static: _Static):
        self.on_trace()   # runs only while JAX traces
        st_leaves = static.leaves_with(traced)
        new_st, new_mem = self.fn(jax.tree_util.tree_unflatten(static.treedef, st_leaves), mem)
        leaves, self.st_def = jax.tree_util.tree_flatten(new_st)
        self.forwarded = passed_through(st_leaves, leaves)
        return new_mem, [x for x, f in zip(leaves, self.forwarded) if f is None]

    def __call__(self, st, mem):
        first = self.donation is None
        st_in, treedef = jax.tree_util.tree_flatten(st)
        traced = [x for x in st_in if _traceable(x)]
        static = _Static(treedef, tuple((i, x) for i, x in enumerate(st_in) if not _traceable(x)))
        if first:   # read before the call: donated inputs are deleted by it
            donated = {x.unsafe_buffer_pointer(): x.nbytes for x in jax.tree_util.tree_leaves(mem)}
            self.arguments = (*jax.tree_util.tree_map(_argument_shape, (traced, mem)), static)
        new_mem, computed = self._jitted(traced, mem, static)
        leaves = rejoined(self.forwarded, st_in, computed)
        if first:
            kept = {x.unsafe_buffer_pointer() for x in jax.tree_util.tree_leaves(new_mem)}
            self.donation = {"donated": len(donated), "reused": len(donated.keys() & kept),
                             "copied_bytes": sum(n for p, n in donated.items() if p not in kept)}
        return jax.tree_util.tree_unflatten(self.st_def, leaves), new_mem

    def cost(self) -> dict:
        """XLA's cost analysis of the executable the first call compiled (after fusion); empty
        before the first call. Taken from that executable (a cache hit: no compile), so call
        it before ``jax.clear_caches``."""
        if self._cost is None and self.arguments is not None:
            try:
                cost = self._jitted.lower(*self.arguments).compile().cost_analysis()
                self._cost = dict(cost[0] if isinstance(cost, list) else cost)
            except Exception:  # noqa: BLE001 - a diagnostic; the backend may offer no analysis
                self.arguments = None
        return self._cost or {}

    def bytes_accessed(self) -> float | None:
        """Bytes one call reads and writes, as XLA's cost analysis counts them; None before
        the first call."""
        found = self.cost().get("bytes accessed")
        return None if found is None else float(found)

    def flops(self) -> float | None:
        """FLOPs of one call, as XLA's cost analysis counts them; None before the first call."""
        found = self.cost().get("flops")
        return None if found is None else float(found)


def _counted(jaxpr) -> dict:
    """``count_ops``'s answer for a traced step: its top-level operations, their sizes (the
    most elements any operand or result of each has) and the bytes of their results (each a
    new array in op-by-op JAX)."""
    sizes = Counter(max([int(np.prod(getattr(v.aval, "shape", ()) or (1,)))
                         for v in (*eqn.invars, *eqn.outvars)] or [1])
                    for eqn in jaxpr.eqns)
    # (a PRNG key's dtype is JAX's own, not NumPy's: its itemsize is its key data's)
    fresh = Counter(int(np.prod(v.aval.shape or (1,))) * v.aval.dtype.itemsize
                    for eqn in jaxpr.eqns for v in eqn.outvars if hasattr(v.aval, "dtype"))
    return {"ops": len(jaxpr.eqns), "in_place": 0, "sizes": dict(sizes), "fresh": dict(fresh)}


def _argument_shape(x):
    """What ``lower`` needs of an argument to find the executable its call compiled: a shape
    and dtype (a committed array's device too: it is part of the cache key)."""
    if not isinstance(x, jax.Array):
        return x
    weak = {"weak_type": x.weak_type} if SHAPE_TAKES_WEAK_TYPE else {}
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding if committed(x) else None,
                                **weak)


# ``ShapeDtypeStruct(weak_type=...)`` arrived after JAX 0.4.30; before it, a weak-typed argument
# lowers as a strong one (a cost analysis of a twin program, after the timing: never in it).
SHAPE_TAKES_WEAK_TYPE = "weak_type" in inspect.signature(jax.ShapeDtypeStruct).parameters
# ``jnp.full(..., device=)`` arrived in JAX 0.4.21; before it, the array is put on the device.
FULL_TAKES_DEVICE = "device" in inspect.signature(jnp.full).parameters


def committed(x) -> bool:
    """Whether an array is committed to its device: ``Array.committed`` since JAX 0.4.31, the
    private ``_committed`` before (``--env jax==0.4.30``)."""
    found = getattr(x, "committed", None)
    return bool(x._committed if found is None else found)


_HOST_READ_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                     jax.errors.TracerIntegerConversionError)


class JaxBackend(Backend):
    framework = "jax"
    updates_in_place = False   # every op makes a new array (donation is jit's alone)

    def __init__(self, device: str, dtype: str, compiled: bool, threads: int):
        super().__init__(device, dtype, compiled)
        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        platform = "gpu" if device == "cuda" else "cpu"
        try:
            self.jax_device = jax.devices(platform)[0]
        except RuntimeError:
            raise RuntimeError(f"JAX sees no {platform.upper()} device here "
                               f"(install jax[cuda12])") from None
        jax.config.update("jax_default_device", self.jax_device)
        # values Python reads, recorded or replayed by count_ops
        self._host_values: Optional[tuple[str, Any]] = None
        self.dtype = {"float32": jnp.float32, "float64": jnp.float64}[dtype]
        self._traces = 0
        self._jitted: list[JittedStep] = []

    def native_device(self):
        return self.jax_device

    def threads(self) -> dict:
        # XLA's CPU pool follows the CPUs the process may use (the worker pins them).
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return {"intra_op": n, "inter_op": n}

    def device_name(self) -> str:
        return getattr(self.jax_device, "device_kind", str(self.jax_device))

    def asarray(self, array):
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(self.dtype)
        return jax.device_put(array, self.jax_device)

    def to_numpy(self, tensor):
        return np.asarray(tensor)

    def index(self, value: int):
        # Placed like every other input: an uncommitted counter that comes back committed from
        # the step would make XLA compile the step a second time.
        return jax.device_put(np.int32(value), self.jax_device) if self.compiled else value

    def int_min(self, a, b):
        return jnp.minimum(a, b) if self.compiled else min(a, b)

    def full(self, n: int, value: float):
        if FULL_TAKES_DEVICE:
            return jnp.full((n,), value, self.dtype, device=self.jax_device)
        return jax.device_put(jnp.full((n,), value, self.dtype), self.jax_device)

    def buffer_full(self, n: int, value: float):
        return self.full(n, value)   # XLA's own memory: it can be donated

    def buffer(self, array):
        array = np.asarray(array)
        if not self.compiled and array.ndim == 2:
            return [self.asarray(row) for row in array]
        # A copy XLA owns: device_put may alias the NumPy array on the CPU, and XLA cannot
        # donate memory it does not own (the first step would copy it, whatever the step does).
        return jnp.copy(self.asarray(array))

    def buffer_write(self, buf, i, row):
        if isinstance(buf, list):
            buf[i] = row
            return buf
        return buf.at[i].set(row)

    def buffer_read(self, buf, i):
        return buf[i]

    def add_inplace(self, buf, x):
        return buf + x

    def stream_add(self, elements: int):
        # No eager op of JAX's updates in place (a fresh output would fault in every page):
        # the sum goes into the donated buffer, as a compiled step's does.
        add = jax.jit(lambda b, a: b + a, donate_argnums=0)
        last, x = [self.full(elements, 0.0)], self.full(elements, 1.0 / 1024)

        def call():
            last[0] = add(last[0], x)
            return last[0]
        return call

    def stack_new(self, size: int):
        return jnp.zeros(size, self.dtype) if self.compiled else [None] * size

    def stack_write(self, stack, i, value):
        return stack.at[i].set(value) if self.compiled else super().stack_write(stack, i, value)

    def matmul(self, a, b):
        return jnp.matmul(a, b)

    def transpose(self, a):
        return a.T

    def sigmoid(self, a):
        return jax.nn.sigmoid(a)

    def reshape(self, a, shape):
        return jnp.reshape(a, shape)

    def sum(self, a):
        return jnp.sum(a)

    def mean(self, a):
        return jnp.mean(a)

    def max(self, a):
        return jnp.max(a)

    def dot(self, a, b):
        return jnp.dot(a, b)

    def minimum(self, a, b):
        return jnp.minimum(jnp.asarray(a, self.dtype), jnp.asarray(b, self.dtype))

    def value_and_grad(self, f: Callable) -> Callable:
        return jax.value_and_grad(f)   # lists of arrays are pytrees: grads come as a list

    def nth_derivative(self, f: Callable, n: int) -> Callable:
        for _ in range(n):
            f = (lambda h: jax.grad(lambda x: jnp.sum(h(x))))(f)
        return f

    def custom_gradient(self, forward: Callable, backward: Callable) -> Callable:
        custom = jax.custom_vjp(forward)

        def fwd(*xs):
            y = forward(*xs)
            return y, (xs, y)

        custom.defvjp(fwd, lambda res, dy: tuple(backward(res[0], res[1], dy)))
        return custom

    def rng_key(self, seed: int):
        return jax.random.PRNGKey(seed)

    def normal(self, key, shape):
        key, sub = jax.random.split(key)
        return jax.random.normal(sub, shape, self.dtype), key

    def solve(self, a, b):
        return jnp.linalg.solve(a, b)

    def eye(self, n):
        return jnp.eye(n, dtype=self.dtype)

    def sqrt(self, a):
        return jnp.sqrt(a)

    def tanh(self, a):
        return jnp.tanh(a)

    def images(self, array):
        return self.asarray(array)   # NHWC

    def conv_kernel(self, array):
        return self.asarray(array)   # HWIO

    def conv2d(self, x, w, stride, pad):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def batch_norm(self, x, gamma, beta, eps=1e-5):
        mean = jnp.mean(x, axis=(0, 1, 2))
        var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
        return (x - mean) * jax.lax.rsqrt(var + eps) * gamma + beta

    def relu(self, a):
        return jax.nn.relu(a)

    def spatial_mean(self, x):
        return jnp.mean(x, axis=(1, 2))

    def log_softmax(self, a):
        return jax.nn.log_softmax(a, axis=-1)

    def cond(self, pred, true_fn, false_fn, *operands):
        if not self.compiled:
            return super().cond(pred, true_fn, false_fn, *operands)
        return jax.lax.cond(pred, lambda ops: tuple(true_fn(*ops)),
                            lambda ops: tuple(false_fn(*ops)), operands)

    def fori_loop(self, lower, upper, body, carry):
        if not self.compiled:
            return super().fori_loop(lower, upper, body, carry)
        return jax.lax.fori_loop(lower, upper, body, carry)

    def compile_step(self, fn: Callable, name: str = "step") -> Callable:
        if not self.compiled:
            return fn
        step = JittedStep(fn, self._count_trace)
        self._jitted.append(step)
        return self.keep_eager(fn, step)

    def _count_trace(self) -> None:
        self._traces += 1

    def trace_count(self) -> int:
        return self._traces + self.watched_traces()

    def compile_events(self) -> dict:
        return dict(_COMPILES)

    def donation(self) -> Optional[Donation]:
        checked = [s.donation for s in self._jitted if s.donation is not None]
        if not checked:
            return None
        return Donation(donated=sum(d["donated"] for d in checked),
                        reused=sum(d["reused"] for d in checked),
                        copied_bytes=sum(d["copied_bytes"] for d in checked))

    def count_ops(self, fn, *args):
        """Top-level operations of the step's jaxpr: in op-by-op JAX each is one dispatch (a
        primitive, or one call of a jitted library function such as ``jnp.linalg.solve``).
        JAX's dispatch runs in C++ and has no counter, so the step is traced. Where its Python
        reads values (l-BFGS's ``cond`` and loop bounds, through ``host_bool``/``host_int``),
        they are recorded as the step runs eagerly, and the trace then takes the same path,
        reading the recorded values; a read outside those gives None. Only the
        arrays are traced: a Python number in the state (an eager counter) stays one, as it is
        when the step runs, so its arithmetic dispatches nothing. Each trace gets its own copy
        of the containers (an op-by-op history is a Python list the step writes into), so no
        tracer leaks into the state."""
        leaves, tree = jax.tree_util.tree_flatten(args)
        traced = [isinstance(leaf, jax.Array) for leaf in leaves]

        def with_arrays(*arrays):
            given = iter(arrays)
            return fn(*jax.tree_util.tree_unflatten(
                tree, [next(given) if is_array else leaf
                       for leaf, is_array in zip(leaves, traced)]))

        def trace():
            return jax.make_jaxpr(with_arrays)(*[leaf for leaf, is_array in zip(leaves, traced)
                                                 if is_array])

        # The step runs first, whatever the count meets after: a count that failed before the
        # step would leave this mode a step behind the others of its unit.
        self._host_values = ("record", [])
        try:
            out = fn(*args)
        except BaseException:
            self._host_values = None
            raise
        try:
            self._host_values = ("replay", iter(self._host_values[1]))   # what it recorded
            jaxpr = trace()
        except (*_HOST_READ_ERRORS, StopIteration):
            return None, out
        except Exception as exc:  # noqa: BLE001 - the step ran, only its trace failed (a step
            # that updates Python objects in place cannot be traced): its state moved on
            return count_error([exc]), out
        finally:
            self._host_values = None
        return _counted(jaxpr.jaxpr), out

    def host_bool(self, value):
        return self._host_value(super().host_bool, value)

    def host_int(self, value):
        return self._host_value(super().host_int, value)

    def _host_value(self, read: Callable, value):
        """A value read by Python; recorded, or replayed, while ``count_ops`` traces."""
        if self._host_values is None:
            return read(value)
        action, values = self._host_values
        if action == "replay":
            return next(values)
        values.append(read(value))
        return values[-1]

    def graph_diagnostics(self) -> CompilerCounts:
        if not self.compiled:
            return CompilerCounts()
        split = dict(_PHASE_SECONDS)   # read first: a cost analysis that compiled would add to it
        costs = [s.bytes_accessed() for s in self._jitted]
        return CompilerCounts(graphs=self.trace_count(), compile_split_s=split,
                              bytes_accessed=float(sum(c for c in costs if c is not None)))

    def sized_from(self) -> int:
        # An eager op is a program too: an add of 1,000 elements took 14.3 us, of one 10.5.
        return super().sized_from() if self.device == "cuda" else OFF_THREAD_ELEMENTS

    def launch_elements(self, step: Callable) -> int:
        # XLA's CPU client runs a program of under 1,000 FLOPs (its cost analysis's) on the
        # caller's thread, a larger one on a worker thread: a chain of 99 adds of 10 floats
        # took 4.6 us a call here, one of 100 adds 8.6 to 10 us.
        if self.device == "cuda" or not isinstance(step, JittedStep):
            return 1
        flops = step.flops()
        return OFF_THREAD_ELEMENTS if flops is not None and flops >= INLINE_FLOPS else 1

    def reset_peak_device_memory(self) -> None:
        pass   # XLA keeps one high-water mark per device, for the process's life

    def peak_device_memory(self) -> int | None:
        if self.device != "cuda":
            return None
        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")

    def compile_cache(self) -> dict:
        return dict(_CACHE)

    def reset(self) -> None:
        for step in self._jitted:   # costed while their executables are still cached
            step.bytes_accessed()
        jax.clear_caches()

    def block(self, tree: Any) -> None:
        jax.block_until_ready(tree)
