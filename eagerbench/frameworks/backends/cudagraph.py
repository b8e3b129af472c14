"""Capture one step as a CUDA graph and replay it: PyTorch's launch overhead removed by hand.

``CapturedStep(fn)`` wraps a step ``fn(st, mem) -> (st, mem)``. On its first call it warms ``fn``
up on a side stream and captures it into a ``torch.cuda.CUDAGraph``: the tensors of ``st`` are
copied into static input buffers, the buffers in ``mem`` are captured as they are (they are
updated in place and persist across steps). Each later call copies the new ``st`` tensors into
the static buffers, replays the graph, and returns clones of the outputs it produced (replay
overwrites them, and callers keep outputs across steps); outputs that are inputs passed through
are handed back without a copy. The copy of each changed input tensor into its static buffer
is part of this mode's cost, as it is for anyone replaying CUDA graphs.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten

from eagerbench.workload import Unsupported

WARMUP_RUNS = 3   # torch's recipe: run on a side stream before capture so lazy init is done


class OpTrail(TorchDispatchMode):
    """Remembers the aten op being dispatched, so that a failure names the op it happened in
    (a host sync such as ``aten._local_scalar_dense`` or ``aten._linalg_check_errors`` cannot
    be captured)."""

    def __init__(self):
        super().__init__()
        self.last: str | None = None
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.last, self.count = str(func), self.count + 1
        return func(*args, **(kwargs or {}))

    def describe(self, exc: BaseException) -> str:
        where = f"at {self.last} (op {self.count} of the step)" if self.last else "before any op"
        text = str(exc).strip()
        return f"{where}: {text.splitlines()[0] if text else type(exc).__name__}"


class CapturedStep:
    """A step function replayed as a CUDA graph; ``captures`` counts graph captures."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.graph = None
        self.captures = 0

    def _capture(self, st: Any, mem: Any) -> None:
        flat, self.st_spec = tree_flatten(st)
        self.static_st = [x.clone() if isinstance(x, torch.Tensor) else x for x in flat]
        self.mem_leaves = tree_flatten(mem)[0]
        static_args = (tree_unflatten(self.static_st, self.st_spec), mem)
        # Warm-up runs really execute, and would apply their in-place updates to the buffers
        # a second time: restore them afterwards (capture itself executes nothing).
        saved = [b.clone() for b in self.mem_leaves if isinstance(b, torch.Tensor)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self.fn(*static_args)
        torch.cuda.current_stream().wait_stream(side)
        for buf, copy in zip([b for b in self.mem_leaves if isinstance(b, torch.Tensor)], saved):
            buf.copy_(copy)
        self.graph = torch.cuda.CUDAGraph()
        trail = OpTrail()
        try:
            with torch.cuda.graph(self.graph), trail:
                out = self.fn(*static_args)
        except RuntimeError as exc:  # a host sync or Python branch on a device value
            raise Unsupported(f"step cannot be captured as a CUDA graph "
                              f"{trail.describe(exc)}") from None
        self.static_out, self.out_spec = tree_flatten(out)
        self.captures += 1

    def __call__(self, st: Any, mem: Any) -> Any:
        if self.graph is None:
            self._capture(st, mem)
        assert self.graph is not None
        flat, spec = tree_flatten(st)
        mem_leaves = tree_flatten(mem)[0]
        if spec != self.st_spec or any(a is not b for a, b in zip(mem_leaves, self.mem_leaves)):
            raise Unsupported("the step's inputs changed structure or buffers after capture")
        for static, new in zip(self.static_st, flat):
            if isinstance(static, torch.Tensor):
                static.copy_(new, non_blocking=True)
            elif static != new:
                raise Unsupported(f"a Python value baked into the CUDA graph changed "
                                  f"({static!r} -> {new!r})")
        self.graph.replay()
        passed = {id(s): n for s, n in zip(self.static_st, flat)}
        persistent = {id(b) for b in self.mem_leaves}
        out = []
        for o in self.static_out:
            if not isinstance(o, torch.Tensor) or id(o) in persistent:
                out.append(o)
            elif id(o) in passed:
                out.append(passed[id(o)])
            else:
                out.append(o.clone())
        return tree_unflatten(out, self.out_spec)
