"""PyTorch implementation of the backend interface."""

from __future__ import annotations

import time
import types
from collections import Counter
from typing import Any, Callable

import numpy as np
import torch

from eagerbench.frameworks.backends.base import Backend
from eagerbench.frameworks.backends.probes import count_error
from eagerbench.records.model import CompilerCounts

# Dynamo frame compiles in this process (count and seconds, tracing and Inductor together), from
# its compile callbacks: every graph compiled, recompiles included.
_COMPILES = {"count": 0, "seconds": 0.0}
_started: list = []


def _compile_started(*args, **kwargs) -> None:
    _started.append(time.perf_counter())


def _compile_ended(*args, **kwargs) -> None:
    if _started:
        _COMPILES["count"] += 1
        _COMPILES["seconds"] += time.perf_counter() - _started.pop()


_WATCHING = {"compiles": False}   # whether Dynamo's callbacks are registered in this process


def _watch_compiles() -> None:
    """Register the callbacks once per process (importing Dynamo costs eager modes nothing)."""
    if not _WATCHING["compiles"]:
        import torch._dynamo

        torch._dynamo.callback.on_compile_start(_compile_started)
        torch._dynamo.callback.on_compile_end(_compile_ended)
        _count_graph_bytes()
        _WATCHING["compiles"] = True


def _count_graph_bytes() -> None:
    """Have Inductor add up the bytes each graph it compiles reads and writes
    (``metrics.num_bytes_accessed``): it does so only while its metrics log is enabled. The
    log's records are dropped, not printed. A graph loaded from the FX graph cache is not
    counted."""
    import logging

    from torch._inductor import compile_fx

    log = getattr(compile_fx, "inductor_metrics_log", None)
    if log is None:   # before torch 2.7 (--env): Inductor has no such switch to turn on
        return
    log.setLevel(logging.INFO)
    log.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())


def _compile_split() -> dict:
    """Dynamo's compile time so far, split: tracing Python bytecode into a graph, and the
    backend (AOTAutograd and Inductor) compiling it."""
    from torch._dynamo.utils import compilation_time_metrics as metrics

    total = sum(metrics.get("_compile.compile_inner", []))
    backend = sum(metrics.get("OutputGraph.call_user_compiler", []))
    return {"tracing": total - backend, "backend": backend}


class TorchBackend(Backend):
    framework = "torch"

    def __init__(self, device: str, dtype: str, compiled: bool, threads: int,
                 compile_mode: str = "default", cudagraph: bool = False):
        super().__init__(device, dtype, compiled)
        self.compile_mode = compile_mode
        self.cudagraph = cudagraph
        if cudagraph and device != "cuda":
            raise RuntimeError("CUDA graphs need --device cuda")
        self._captured: list = []
        self._customs = 0
        # torch.compile traces Python control flow by specialising on it: a data-dependent
        # branch or loop count is a guard that recompiles, not a graph op.
        self.graph_control_flow = False
        # Both pools must be sized before the first parallel op runs; the worker calls this first.
        torch.set_num_threads(threads)
        # Set once: a second call aborts the process in torch 2.0 (a C++ terminate, no
        # exception), and raises in later releases once the pool has started.
        if torch.get_num_interop_threads() != threads:
            try:
                torch.set_num_interop_threads(threads)
            except RuntimeError:  # started by an earlier backend in the same process (tests)
                pass
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available to PyTorch on this machine")
        self.torch_device = torch.device("cuda" if device == "cuda" else "cpu")
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        if compiled and not cudagraph:
            _watch_compiles()

    @property
    def fuses_ops(self) -> bool:
        return self.compiled and not self.cudagraph   # a CUDA graph replays its kernels

    def native_device(self):
        return self.torch_device

    def threads(self) -> dict:
        return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}

    def device_name(self) -> str:
        if self.torch_device.type == "cuda":
            return torch.cuda.get_device_name(self.torch_device)
        return "cpu"

    def asarray(self, array: np.ndarray) -> Any:
        array = np.asarray(array)
        # (np.ascontiguousarray would turn a 0-d scalar into shape (1,))
        t = torch.from_numpy(array if array.flags.c_contiguous else np.ascontiguousarray(array))
        if t.is_floating_point():
            t = t.to(self.dtype)
        return t.to(self.torch_device)

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    def buffer(self, array: np.ndarray) -> Any:
        # from_numpy shares memory with the caller's array: copy so the buffer owns its storage.
        return self.asarray(array).clone()

    def buffer_write(self, buf: Any, i: Any, row: Any) -> Any:
        buf[i].copy_(row)
        return buf

    def buffer_read(self, buf: Any, i: Any) -> Any:
        return buf[i]

    def add_inplace(self, buf: Any, x: Any) -> Any:
        return buf.add_(x)

    def matmul(self, a, b):
        return torch.matmul(a, b)

    def transpose(self, a):
        return a.t()

    def sigmoid(self, a):
        return torch.sigmoid(a)

    def reshape(self, a, shape):
        return a.reshape(shape)

    def sum(self, a):
        return a.sum()

    def mean(self, a):
        return a.mean()

    def max(self, a):
        return a.max()

    def dot(self, a, b):
        return torch.dot(a, b)

    def minimum(self, a, b):
        return torch.minimum(torch.as_tensor(a, dtype=self.dtype, device=self.torch_device),
                             torch.as_tensor(b, dtype=self.dtype, device=self.torch_device))

    def axpy(self, alpha, x, y):
        # One fused kernel. torch.optim.LBFGS writes ``add(x, alpha=a.item())``: a host sync per
        # call (two per stored pair on a GPU), which the TensorFlow and JAX ports don't make.
        # addcmul takes the 0-d tensor on the device as it is.
        if isinstance(alpha, torch.Tensor):
            return torch.addcmul(y, alpha, x)
        return torch.add(y, x, alpha=alpha)

    def value_and_grad(self, f: Callable) -> Callable:
        # Under torch.compile, Dynamo breaks the graph at torch.autograd.grad: the loss and its
        # backward are compiled by AOTAutograd, as for a compiled model's loss.backward().
        # (torch.func.grad_and_value traces as one graph, but compiled 4x slower and ran 10%
        # slower on the convnet step: 2-core CPU, float32.)
        def vg(x):
            many = isinstance(x, (list, tuple))
            with torch.enable_grad():
                xs = [t.detach().requires_grad_(True) for t in (x if many else [x])]
                y = f(xs if many else xs[0])
                g = torch.autograd.grad(y, xs)
            return y.detach(), (list(g) if many else g[0])

        return vg

    def nth_derivative(self, f: Callable, n: int) -> Callable:
        if self.compiled:
            # Dynamo cannot trace torch.autograd.grad (it breaks the graph there and runs the
            # derivatives eagerly); nested torch.func.grad compiles into one graph.
            from torch.func import grad

            g = f
            for _ in range(n):
                g = (lambda h: grad(lambda x: h(x).sum()))(g)
            return g

        def nth(x):   # the article's way: autograd.grad n times, keeping the graph each time
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                y = f(x)
                for _ in range(n):
                    (y,) = torch.autograd.grad(y.sum(), x, create_graph=True)
            return y.detach()

        return nth

    def custom_gradient(self, forward: Callable, backward: Callable) -> Callable:
        class Custom(torch.autograd.Function):
            # forward + setup_context (not forward(ctx, ...)): the form torch.func accepts.
            @staticmethod
            def forward(*xs):
                return forward(*xs)

            @staticmethod
            def setup_context(ctx, inputs, output):
                ctx.save_for_backward(*inputs, output)

            @staticmethod
            def backward(ctx, dy):
                *xs, y = ctx.saved_tensors
                return tuple(backward(tuple(xs), y, dy))

        # Every Custom class shares these methods' code; only their closures differ. Dynamo
        # guards a compiled graph on the code, not the closure, so after compiling a step with
        # one custom function it silently reused that graph for a step with another (the noisy
        # square ran with the exact gradient: torch 2.13, torch.compile). Fresh code objects
        # per class keep the graphs apart.
        self._customs += 1
        for name in ("forward", "setup_context", "backward"):
            fn = getattr(Custom, name)
            code = fn.__code__.replace(co_name=f"{name}_{self._customs}")
            setattr(Custom, name, staticmethod(types.FunctionType(
                code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)))
        return Custom.apply

    def normal(self, key, shape):
        # PyTorch's generator is global state (seeded by rng_key); the key is passed through.
        return torch.randn(shape, dtype=self.dtype, device=self.torch_device), key

    def rng_key(self, seed: int):
        torch.manual_seed(seed)
        return seed

    def solve(self, a, b):
        # linalg.solve checks for singular input on the host: a sync per call, which breaks
        # CUDA-graph capture and which TensorFlow's and JAX's solves don't make. solve_ex with
        # check_errors=False is PyTorch's documented sync-free form (a singular input gives
        # non-finite values, as in the other frameworks).
        return torch.linalg.solve_ex(a, b, check_errors=False)[0]

    def eye(self, n):
        return torch.eye(n, dtype=self.dtype, device=self.torch_device)

    def sqrt(self, a):
        return torch.sqrt(a)

    def tanh(self, a):
        return torch.tanh(a)

    def images(self, array):
        return self.asarray(np.asarray(array).transpose(0, 3, 1, 2))   # NCHW

    def conv_kernel(self, array):
        return self.asarray(np.asarray(array).transpose(3, 2, 0, 1))   # OIHW

    def conv2d(self, x, w, stride, pad):
        return torch.nn.functional.conv2d(x, w, stride=stride, padding=pad)

    def batch_norm(self, x, gamma, beta, eps=1e-5):
        return torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)

    def relu(self, a):
        return torch.relu(a)

    def spatial_mean(self, x):
        return x.mean(dim=(2, 3))

    def log_softmax(self, a):
        return torch.log_softmax(a, dim=-1)

    def compile_step(self, fn: Callable, name: str = "step") -> Callable:
        if not self.compiled:
            return fn
        if self.cudagraph:
            from eagerbench.frameworks.backends.cudagraph import CapturedStep

            captured = CapturedStep(fn)
            self._captured.append(captured)
            return self.keep_eager(fn, captured)
        return self.keep_eager(fn, torch.compile(
            fn, mode=None if self.compile_mode == "default" else self.compile_mode,
            dynamic=False))

    def trace_count(self) -> int:
        if not self.compiled:
            return 0
        if self.cudagraph:
            return sum(c.captures for c in self._captured)
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])

    def compile_events(self) -> dict:
        if self.cudagraph:
            return {"count": self.trace_count(), "seconds": None}
        return dict(_COMPILES)

    def reset(self) -> None:
        if self.compiled and not self.cudagraph:
            torch._dynamo.reset()
            # Inductor's in-memory kernel caches outlive Dynamo's reset: without this, a unit
            # whose graphs miss the disk cache still skipped compiling kernels an earlier unit
            # built (a first call of 1.2 s instead of 5.3 s at l-BFGS history 100)
            try:
                from torch._inductor.utils import clear_caches
            except ImportError:   # before torch 2.7 (--env): no such call; its kernels stay
                clear_caches = None
            if clear_caches is not None:
                clear_caches()
            _WATCHING["compiles"] = False   # reset clears Dynamo's compile callbacks too
            _watch_compiles()

    def count_ops(self, fn, *args):
        """Every ATen op the call dispatches (views and in-place ops included), counted below
        autograd by a dispatch mode: what eager PyTorch pays a dispatch for."""
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        count = {"ops": 0, "in_place": 0}
        sizes: Counter = Counter()
        fresh: Counter = Counter()

        errors: list = []

        class Counting(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                result = func(*args, **(kwargs or {}))
                try:   # the step goes on whatever the count meets (see ``count_error``)
                    count["ops"] += 1
                    mutates = bool(func._schema.is_mutable)   # add_, copy_, out=
                    count["in_place"] += mutates
                    sizes[max([t.numel() for t in tree_leaves((args, kwargs, result))
                               if isinstance(t, torch.Tensor)] or [1])] += 1
                    if not mutates and not func.is_view:   # a view shares its input's storage
                        fresh.update(t.nbytes for t in tree_leaves(result)
                                     if isinstance(t, torch.Tensor))
                except Exception as exc:  # noqa: BLE001 - reported with the count
                    errors.append(exc)
                return result

        with Counting():
            out = fn(*args)
        return count_error(errors) or {**count, "sizes": dict(sizes), "fresh": dict(fresh)}, out

    def graph_diagnostics(self) -> CompilerCounts:
        if not self.compiled:
            return CompilerCounts()
        if self.cudagraph:
            return CompilerCounts(graphs=self.trace_count())
        from torch._dynamo.utils import counters
        from torch._inductor import metrics

        return CompilerCounts(graphs=int(counters["stats"]["unique_graphs"]),
                              bytes_accessed=float(metrics.num_bytes_accessed),
                              graph_breaks={str(reason): int(n)
                                            for reason, n in counters["graph_break"].items()},
                              compile_split_s=_compile_split())

    def reset_peak_device_memory(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.torch_device)

    def peak_device_memory(self) -> int | None:
        if self.torch_device.type != "cuda":
            return None
        return int(torch.cuda.max_memory_allocated(self.torch_device))

    def compile_cache(self) -> dict:
        if not self.compiled or self.cudagraph:
            return {}
        from torch._dynamo.utils import counters

        return {"graph_hits": int(counters["inductor"]["fxgraph_cache_hit"]),
                "graph_misses": int(counters["inductor"]["fxgraph_cache_miss"])}

    def block(self, tree: Any) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)
