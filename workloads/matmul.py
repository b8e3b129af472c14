"""``matmul``: square matrix products, the compute-bound end where dispatch cost vanishes."""

from __future__ import annotations

import numpy as np

from eagerbench.presentation import Sweep
from eagerbench.workload import Param, Task, Work, Workload


def _build(B, params: dict, ctx: dict) -> Task:
    n = params["size"]
    rng = np.random.default_rng(ctx["seed"])
    a = B.asarray(rng.standard_normal((n, n)) / np.sqrt(n))
    b = B.asarray(rng.standard_normal((n, n)) / np.sqrt(n))

    def product(st, mem):
        # The product is returned, so no mode may skip it.
        return {"a": st["a"], "b": st["b"], "c": B.matmul(st["a"], st["b"])}, mem

    def check(st, mem):
        return {"c_sum": float(np.sum(B.to_numpy(st["c"]), dtype=np.float64))}

    return Task(step=B.compile_step(product), st={"a": a, "b": b, "c": B.matmul(a, b)}, mem={},
                check=check)


def _work(params: dict, dtype: str, observed: dict) -> Work:
    n = params["size"]
    return Work(flops=2.0 * n**3, ops=1)


def _iters(params: dict) -> int:
    return 100 if params["size"] <= 512 else 20


WORKLOAD = Workload(
    name="matmul",
    summary="C = A @ B for square n x n matrices; reports achieved GFLOP/s",
    params=(Param("size", (128, 512, 1024), "matrix side n"),),
    build=_build,
    work=_work,
    iters=_iters,
    quick={"size": 512},
    views=(Sweep(x="size", y="gflops", ylabel="achieved GFLOP/s", file="matmul_gflops.png"),),
)
