"""TensorFlow implementation of the backend interface (eager, or compiled with tf.function)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from eagerbench.frameworks.backends.base import Backend
from eagerbench.frameworks.backends.compiling import passed_through, rejoined
from eagerbench.frameworks.backends.hlo import entry_bytes
from eagerbench.frameworks.backends.probes import count_error
from eagerbench.records.model import CompilerCounts

# XLA's HLO is asked for with arguments like the first call's, made afresh: no larger than this
# (1e7-float vectors, 80 MB, are; a 1 GiB cell's are not)
COSTED_ARGUMENT_BYTES = 256 << 20
# Eager ops whose result shares its input's buffer (a variable's read, unless the variable is
# in copy-on-read mode; shape changes): they write nothing new.
_ALIASING_OPS = frozenset({"ReadVariableOp", "Identity", "IdentityN", "Reshape", "ExpandDims",
                           "Squeeze", "StopGradient"})


class _Argument:
    """A step's tensor or variable argument, as its shape and dtype (a leaf to ``tf.nest``)."""

    def __init__(self, x: Any) -> None:
        self.variable, self.shape, self.dtype = isinstance(x, tf.Variable), x.shape, x.dtype

    def bytes(self) -> int | None:
        elements = self.shape.num_elements()
        return None if elements is None else elements * self.dtype.size

    def make(self) -> Any:
        zeros = tf.zeros(self.shape, self.dtype)
        return tf.Variable(zeros, trainable=False) if self.variable else zeros


def _argument_spec(x: Any) -> Any:
    return _Argument(x) if isinstance(x, (tf.Variable, tf.Tensor)) else x


class XlaCost:
    """The bytes a tf-xla step's compiled program reads and writes per call, from the HLO
    XLA optimised for the first call's argument shapes (TensorFlow exposes no cost analysis):
    None where its arguments are too large to make again, or its program loops."""

    def __init__(self, traced) -> None:
        self.traced, self.arguments = traced, None
        self._bytes: float | None = None
        self._costed = False

    def bytes_accessed(self) -> float | None:
        if self._costed or self.arguments is None:
            return self._bytes
        self._costed = True
        sizes = [a.bytes() for a in tf.nest.flatten(self.arguments) if isinstance(a, _Argument)]
        if None in sizes or sum(sizes) > COSTED_ARGUMENT_BYTES:
            return None
        try:
            arguments = tf.nest.map_structure(
                lambda a: a.make() if isinstance(a, _Argument) else a, self.arguments)
            hlo = self.traced.experimental_get_compiler_ir(*arguments)(stage="optimized_hlo")
            self._bytes = entry_bytes(hlo)
        except Exception:  # noqa: BLE001 - a diagnostic: the workload's own count stands
            self._bytes = None
        return self._bytes


class TFBackend(Backend):
    framework = "tensorflow"

    def __init__(self, device: str, dtype: str, compiled: bool, threads: int,
                 jit_compile: bool = False):
        super().__init__(device, dtype, compiled)
        # TF refuses to resize its pools once the runtime is initialised: this must come first.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # runtime already started by an earlier backend (tests); recorded
            pass
        gpus = tf.config.list_physical_devices("GPU")
        if device == "cuda":
            if not gpus:
                raise RuntimeError("CUDA is not available to TensorFlow on this machine "
                                   "(install tensorflow[and-cuda])")
            for gpu in gpus:  # let other modes share the GPU
                tf.config.experimental.set_memory_growth(gpu, True)
        elif gpus:
            try:
                tf.config.set_visible_devices([], "GPU")  # keep a CPU cell off the GPU
            except RuntimeError:
                pass
        self.tf_device = "/GPU:0" if device == "cuda" else "/CPU:0"
        # Every op the workload creates from now on is placed on the chosen device.
        self._scope = tf.device(self.tf_device)
        self._scope.__enter__()
        self.dtype = {"float32": tf.float32, "float64": tf.float64}[dtype]
        self.jit_compile = jit_compile
        self._compiled: list = []
        self._costed: list[XlaCost] = []
        self._tracing_s = 0.0

    @property
    def runs_graph_ops(self) -> bool:
        """tf.function's executor runs a graph's ops one by one; XLA fuses them."""
        return self.compiled and not self.jit_compile

    def fused_add_probe(self, adds: int, elements: int):
        """tf-xla: a compiled chain of ``adds`` in-place adds into a variable, as a step keeps
        its state (here XLA took 4.4 us for each of 100 such adds of 1e5 floats, and 0.4 us
        for each add of a chain of plain tensors: priced by the second, a third of the
        cell went unexplained). The variable grows by ``adds / 1024`` a call, exactly."""
        if not self.fuses_ops:
            return None
        a, variable = self.full(elements, 1.0 / 1024), self.buffer_full(elements, 0.0)

        def chain(a):
            for _ in range(adds):
                self.add_inplace(variable, a)

        function = self.compile_function(chain, f"fused_add_probe_{adds}")
        return lambda: (function(a), variable)[1]

    def native_device(self):
        return self.tf_device

    def threads(self) -> dict:
        return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}

    def device_name(self) -> str:
        if self.device == "cuda":
            details = tf.config.experimental.get_device_details(
                tf.config.list_physical_devices("GPU")[0])
            return details.get("device_name", "GPU")
        return "cpu"

    def asarray(self, array: np.ndarray) -> Any:
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating):
            return tf.constant(array, dtype=self.dtype)
        return tf.constant(array)

    def full(self, n: int, value: float) -> Any:
        return tf.fill([n], tf.constant(value, dtype=self.dtype))

    def buffer_full(self, n: int, value: float) -> Any:
        return tf.Variable(self.full(n, value), trainable=False)

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.numpy()

    def index(self, value: int) -> Any:
        return tf.constant(value, dtype=tf.int32) if self.compiled else value

    def int_min(self, a, b):
        return tf.minimum(a, b) if self.compiled else min(a, b)

    def buffer(self, array: np.ndarray) -> Any:
        if not self.compiled and np.ndim(array) == 2:
            # Op by op, a history of rows is a Python list (as the article's TF port kept it).
            return [self.asarray(row) for row in array]
        # Straight from NumPy: one copy (tf.constant first would make two of a 1 GiB vector).
        return tf.Variable(np.asarray(array, dtype=self.dtype.as_numpy_dtype), trainable=False)

    # Rows are read with a gather and written with a scatter. The strided-slice forms
    # (``buf[i]``, ``buf[i].assign``) made TensorFlow copy the whole (m, n) buffer on every
    # read or write once m was large: at history 100 an l-BFGS iteration took 1.3 s in eager
    # and 0.7 s in tf.function instead of ~30 ms (batch 1000, 2-core CPU), and 50x more under XLA.
    #
    # Updates never build a read of the variable that nobody uses: ``assign_add`` takes
    # ``read_value=False``, and since ``Variable.scatter_update`` has no such flag (it always wraps
    # its result in a lazy read: 68 against 27 us per call in eager here), the scatter is the op
    # that method emits, ResourceScatterUpdate, called directly. In a graph both are the same op.
    def buffer_write(self, buf: Any, i: Any, row: Any) -> Any:
        if isinstance(buf, list):
            buf[i] = row
            return buf
        tf.raw_ops.ResourceScatterUpdate(resource=buf.handle, indices=tf.reshape(i, [1]),
                                         updates=tf.cast(row, buf.dtype)[None])
        return buf

    def buffer_read(self, buf: Any, i: Any) -> Any:
        return buf[i] if isinstance(buf, list) else buf.sparse_read(i)

    def add_inplace(self, buf: Any, x: Any) -> Any:
        # The default read_value=True builds a read of the result, which the caller throws away:
        # 66 against 32 us per add in eager here.
        buf.assign_add(x, read_value=False)
        return buf

    def stack_new(self, size: int) -> Any:
        if self.compiled:
            return tf.TensorArray(self.dtype, size=size, clear_after_read=False)
        return super().stack_new(size)

    def stack_write(self, stack, i, value):
        return stack.write(i, value) if self.compiled else super().stack_write(stack, i, value)

    def stack_read(self, stack, i):
        return stack.read(i) if self.compiled else super().stack_read(stack, i)

    def matmul(self, a, b):
        return tf.matmul(a, b)

    def transpose(self, a):
        return tf.transpose(a)

    def sigmoid(self, a):
        return tf.sigmoid(a)

    def reshape(self, a, shape):
        return tf.reshape(a, shape)

    def sum(self, a):
        return tf.reduce_sum(a)

    def mean(self, a):
        return tf.reduce_mean(a)

    def max(self, a):
        return tf.reduce_max(a)

    def dot(self, a, b):
        return tf.reduce_sum(a * b)

    def minimum(self, a, b):
        return tf.minimum(tf.cast(a, self.dtype), tf.cast(b, self.dtype))

    def value_and_grad(self, f: Callable) -> Callable:
        def vg(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = f(x)
            g = tape.gradient(y, x)
            return y, (list(g) if isinstance(x, (list, tuple)) else g)

        return vg

    def nth_derivative(self, f: Callable, n: int) -> Callable:
        if n == 0:
            return f
        inner = self.nth_derivative(f, n - 1)

        def derivative(x):   # nested tapes: the outer tape records the inner gradient
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = inner(x)
            return tape.gradient(y, x)

        return derivative

    def custom_gradient(self, forward: Callable, backward: Callable) -> Callable:
        @tf.custom_gradient
        def custom(*xs):
            y = forward(*xs)
            return y, lambda dy: list(backward(xs, y, dy))

        return custom

    def rng_key(self, seed: int):
        # Stateless RNG keyed by a tensor that each draw advances: the same in eager and in
        # graphs, and a graph never bakes a Python seed in.
        return tf.constant([seed, 0], dtype=tf.int64)

    def normal(self, key, shape):
        sample = tf.random.stateless_normal(shape, seed=key, dtype=self.dtype)
        return sample, key + tf.constant([0, 1], dtype=tf.int64)

    def solve(self, a, b):
        return tf.linalg.solve(a, b)

    def eye(self, n):
        return tf.eye(n, dtype=self.dtype)

    def sqrt(self, a):
        return tf.sqrt(a)

    def tanh(self, a):
        return tf.tanh(a)

    def images(self, array):
        return self.asarray(array)   # NHWC: TensorFlow's CPU convolutions need it

    def conv_kernel(self, array):
        return self.asarray(array)   # HWIO

    def conv2d(self, x, w, stride, pad):
        return tf.nn.conv2d(x, w, strides=stride,
                            padding=[[0, 0], [pad, pad], [pad, pad], [0, 0]])

    def batch_norm(self, x, gamma, beta, eps=1e-5):
        if self.dtype != tf.float64:
            # The fused kernel, as Keras uses it (forward and backward: 16.7 against 26.4 ms for
            # moments + batch_normalization on a 32x32x32x16 batch, eager, 2-core CPU).
            return tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=eps,
                                                    is_training=True)[0]
        # TensorFlow has no float64 fused kernel (float64 runs only in the agreement tests).
        mean, var = tf.nn.moments(x, axes=[0, 1, 2])
        return tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)

    def relu(self, a):
        return tf.nn.relu(a)

    def spatial_mean(self, x):
        return tf.reduce_mean(x, axis=[1, 2])

    def log_softmax(self, a):
        return tf.nn.log_softmax(a, axis=-1)

    def cond(self, pred, true_fn, false_fn, *operands):
        if not self.compiled:
            return super().cond(pred, true_fn, false_fn, *operands)
        # Buffers (tf.Variables) are updated in place inside the taken branch and handed back
        # as they are; only tensors flow out of tf.cond.
        is_var = [isinstance(o, tf.Variable) for o in operands]

        def tensors_only(fn):
            def branch():
                out = fn(*operands)
                return tuple(o for o, v in zip(out, is_var) if not v)
            return branch

        flowing = iter(tf.cond(pred, tensors_only(true_fn), tensors_only(false_fn)))
        return tuple(op if v else next(flowing) for op, v in zip(operands, is_var))

    def fori_loop(self, lower, upper, body, carry):
        if not self.compiled:
            return super().fori_loop(lower, upper, body, carry)
        _, carry = tf.while_loop(lambda i, c: i < upper,
                                 lambda i, c: (i + 1, body(i, c)),
                                 (tf.convert_to_tensor(lower, tf.int32), carry))
        return carry

    def compile_step(self, fn: Callable, name: str = "step") -> Callable:
        if not self.compiled:
            return fn

        # Buffers in ``mem`` are tf.Variables updated in place. They are not returned from the
        # graph: a returned read would alias the variable and force a full copy-on-write at the
        # next assignment. Inputs of ``st`` the step hands back unchanged are handed back
        # outside the graph, as jax-jit's are: XLA copies an input it returns (two 1024 x 1024
        # inputs: 12.2 ms a product with them returned, 9.9 ms without, here).
        returned: dict = {}   # the last trace's output structure, and per leaf its input

        def graph_step(st, mem):   # runs only while tf.function traces: timed as tracing
            started = time.perf_counter()
            new_st, _ = fn(st, mem)
            self._tracing_s += time.perf_counter() - started
            leaves = tf.nest.flatten(new_st)
            returned.update(structure=new_st,
                            forwarded=passed_through(tf.nest.flatten(st), leaves))
            return [x for x, f in zip(leaves, returned["forwarded"]) if f is None]

        traced = tf.function(graph_step, autograph=False, jit_compile=self.jit_compile)
        self._compiled.append(traced)
        costed = XlaCost(traced) if self.jit_compile else None
        if costed is not None:
            self._costed.append(costed)

        def step(st, mem):
            if costed is not None and costed.arguments is None:
                costed.arguments = tf.nest.map_structure(_argument_spec, (st, mem))
            computed = traced(st, mem)   # first: its first call traces, filling ``returned``
            leaves = rejoined(returned["forwarded"], tf.nest.flatten(st), computed)
            return tf.nest.pack_sequence_as(returned["structure"], leaves), mem

        return self.keep_eager(fn, step)

    def trace_count(self) -> int:
        return (sum(f.experimental_get_tracing_count() for f in self._compiled)
                + self.watched_traces())

    def graph_diagnostics(self) -> CompilerCounts:
        out = super().graph_diagnostics()   # the traces first: a costing may trace again
        if self.jit_compile:
            costs = [c.bytes_accessed() for c in self._costed]
            out["bytes_accessed"] = float(sum(c for c in costs if c is not None))
        return out

    def count_ops(self, fn, *args):
        """Every op TensorFlow executes eagerly during the call (its op callbacks, the hook
        tf.debugging uses), variable reads and updates included; an op that returns nothing
        (``AssignAddVariableOp``, ``ResourceScatterUpdate``) updated a variable in place, and
        one of ``_ALIASING_OPS`` made no new memory."""
        from tensorflow.python.framework import op_callbacks

        count = {"ops": 0, "in_place": 0}
        sizes: Counter = Counter()
        fresh: Counter = Counter()

        errors: list = []

        def counted(op_type, inputs, attrs, outputs, op_name=None, graph=None):
            if graph is not None:   # built into a graph, not executed eagerly
                return outputs
            try:   # the step goes on whatever the count meets (see ``count_error``)
                count["ops"] += 1
                count["in_place"] += not outputs
                # A variable's handle is a scalar: its op's size is its other operands'
                sizes[max([int(t.shape.num_elements() or 1) for t in (*inputs, *(outputs or ()))
                           if t.dtype != tf.resource] or [1])] += 1
                name = op_type.decode() if isinstance(op_type, bytes) else op_type
                if name not in _ALIASING_OPS:
                    fresh.update(int(t.shape.num_elements() or 1) * t.dtype.size
                                 for t in outputs or () if t.dtype != tf.resource)
            except Exception as exc:  # noqa: BLE001 - reported with the count
                errors.append(exc)
            return outputs

        op_callbacks.add_op_callback(counted)
        try:
            out = fn(*args)
        finally:
            op_callbacks.remove_op_callback(counted)
        return count_error(errors) or {**count, "sizes": dict(sizes), "fresh": dict(fresh)}, out

    def reset_peak_device_memory(self) -> None:
        if self.device == "cuda":
            tf.config.experimental.reset_memory_stats("GPU:0")

    def peak_device_memory(self) -> int | None:
        if self.device != "cuda":
            return None
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])

    def compile_events(self) -> dict:
        # Each trace is a new graph, optimised (and for tf-xla compiled) on its first call;
        # TensorFlow exposes no timing of that part, only of the tracing itself.
        return {"count": self.trace_count(), "seconds": self._tracing_s}

    def block(self, tree: Any) -> None:
        # CPU execution is synchronous; GPU kernels are queued, so drain the devices.
        if self.device == "cuda":
            tf.test.experimental.sync_devices()
