"""What a workload computes with: a backend's data, buffers, math, gradients and control flow.

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
from typing import Any, Callable

import numpy as np


class ArrayOps(abc.ABC):
    """One framework on one device with one dtype: the operations a workload calls."""

    framework: str = ""

    def __init__(self, device: str, dtype: str, compiled: bool):
        self.device = device
        self.dtype_name = dtype
        self.compiled = compiled
        self.host_reads = 0   # device values read by Python control flow (host syncs)
        self._eager_steps: dict[int, Callable] = {}   # see Compiling.keep_eager
        self._watched: list[Callable[[], int]] = []   # see Compiling.watch_traces

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

    # --- waiting --------------------------------------------------------------------------------
    @abc.abstractmethod
    def block(self, tree: Any) -> None:
        """Wait until every tensor in ``tree`` is computed (device and async queues drained)."""
