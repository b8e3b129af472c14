"""PyTorch implementation of the backend interface."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from eagerbench.backends.base import Backend


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
        # torch.compile traces Python control flow by specialising on it: a data-dependent
        # branch or loop count is a guard that recompiles, not a graph op.
        self.graph_control_flow = False
        # Both pools must be sized before the first parallel op runs; the worker calls this first.
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # already started by an earlier backend in the same process (tests)
            pass
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available to PyTorch on this machine")
        self.torch_device = torch.device("cuda" if device == "cuda" else "cpu")
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]

    def threads(self) -> dict:
        return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}

    def device_name(self) -> str:
        if self.torch_device.type == "cuda":
            return torch.cuda.get_device_name(self.torch_device)
        return "cpu"

    def asarray(self, array: np.ndarray) -> Any:
        array = np.asarray(array)
        t = torch.from_numpy(np.ascontiguousarray(array))
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
        # One fused kernel, as torch.optim.LBFGS writes it; like there, a tensor alpha is read
        # back to the host (torch's arg parser refuses some 0-d tensors as alpha).
        if isinstance(alpha, torch.Tensor):
            alpha = alpha.item()
        return torch.add(y, x, alpha=alpha)

    def value_and_grad(self, f: Callable) -> Callable:
        def vg(x):
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                y = f(x)
                (g,) = torch.autograd.grad(y, x)
            return y.detach(), g

        return vg

    def compile_step(self, fn: Callable, name: str = "step") -> Callable:
        if not self.compiled:
            return fn
        if self.cudagraph:
            from eagerbench.backends.cudagraph import CapturedStep

            captured = CapturedStep(fn)
            self._captured.append(captured)
            return captured
        return torch.compile(fn, mode=None if self.compile_mode == "default" else self.compile_mode,
                             dynamic=False)

    def trace_count(self) -> int:
        if not self.compiled:
            return 0
        if self.cudagraph:
            return sum(c.captures for c in self._captured)
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])

    def block(self, tree: Any) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)
