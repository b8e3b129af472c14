"""``higher-order``: the n-th derivative of tanh, by applying the framework's gradient n times.

The article's ``gradients_function`` applied n times. Evaluated on ``size`` points at once (the
derivative of the sum of an element-wise function is its element-wise derivative). PyTorch eager
uses ``autograd.grad(create_graph=True)``, TensorFlow nested tapes (traced into one graph by
``tf.function``), JAX nested ``jax.grad``. The orders of one size share a worker process,
interleaved, so time against order is measured under the same conditions.
"""

from __future__ import annotations

import numpy as np

from eagerbench.presentation import Pivot, Sweep
from eagerbench.workload import Param, Task, Work, Workload

SPAN = 2.0   # points evenly spread over [-SPAN, SPAN], where tanh's derivatives are all O(1)


def points(size: int) -> np.ndarray:
    return np.linspace(-SPAN, SPAN, size)


def tanh_derivative(n: int, x: np.ndarray) -> np.ndarray:
    """Closed form: d^n/dx^n tanh(x) = P_n(tanh x), with P_0(t) = t, P_{k+1} = P_k'(t) (1 - t^2)."""
    poly = np.polynomial.Polynomial([0.0, 1.0])
    one_minus_t2 = np.polynomial.Polynomial([1.0, 0.0, -1.0])
    for _ in range(n):
        poly = poly.deriv() * one_minus_t2
    return poly(np.tanh(x))


def _build(B, params: dict, ctx: dict) -> Task:
    n = params["order"]
    nth = B.compile_function(B.nth_derivative(B.tanh, n), f"derivative_{n}")

    def derivative(st, mem):
        # The derivative is returned (and read by check), so no mode may skip it.
        return {"x": st["x"], "d": nth(st["x"])}, mem

    def check(st, mem):
        # A norm, not a sum: even derivatives of tanh are odd functions, whose sum over the
        # symmetric points cancels to rounding noise.
        d = B.to_numpy(st["d"]).astype(np.float64)
        return {"d_norm": float(np.linalg.norm(d)), "d_mid": float(d[len(d) // 2])}

    x = B.asarray(points(params["size"]))
    return Task(step=derivative, st={"x": x, "d": x}, mem={}, check=check,
                info={"order": n})


def _work(params: dict, dtype: str, observed: dict) -> Work:
    return Work()   # the op count grows with the order in a framework-specific way: time only


WORKLOAD = Workload(
    name="higher-order",
    summary="n-th derivative of tanh by applying the gradient n times (nested tapes, create_graph)",
    # Orders 5 and 6 (``--grid full``) cost the op-by-op modes most: JAX's 6th took 13x its 4th.
    params=(Param("order", (1, 2, 3, 4), "derivative order n (interleaved in one process)",
                  full=(5, 6)),
            Param("size", (1000,), "points the derivative is evaluated at, at once")),
    build=_build,
    work=_work,
    iters=lambda p: 20,
    warmup=lambda p: 2,
    interleave="order",
    quick={"order": [2], "size": 1000},
    views=(Sweep(x="order", panels="size", log_x=False, quartiles=True,
                 ylabel="median ms per n-th derivative", title="higher-order: d^n tanh / dx^n",
                 file="higher_order.png"),
           Pivot(index="order", title="ms per n-th derivative",
                 text="Median ms to compute the n-th derivative of tanh, by mode. Each mode's "
                      "orders ran interleaved in one process.")),
)
